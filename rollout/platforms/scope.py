"""Which workloads a gate judges, from the plan: shared by every platform.

A selector names pods the way Kubernetes would (namespace + labels); the
Kubernetes platform hands it to target discovery, the local platform matches it
against the proxies it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.plan import REVISION_LABEL, MeshPlan
from rollout.platforms.base import GateScope


@dataclass(frozen=True)
class PodSelector:
    namespace: str
    name: str  # the Deployment (workload or canary) the pods belong to
    labels: dict[str, str]
    role: str  # canary | baseline
    expected_version: str | None = None
    wave: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label_selector(self) -> str:
        return ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))


def selectors_for(plan: MeshPlan, scope: GateScope) -> list[PodSelector]:
    """The pods under test (role canary) and the stable comparison (role baseline)."""
    return _workloads(plan, scope) + _gateways(plan, scope)


def _gateways(plan: MeshPlan, scope: GateScope) -> list[PodSelector]:
    """Gateway pods, told apart by `istio.io/rev`: a canary release during the canary stage,
    the primary (upgraded in place, restarted by its proxy-revision annotation) after promotion."""
    if not plan.gateways:
        return []
    from components.gateway import selector_labels  # the chart's pod labels; imports Pulumi, so lazily

    selectors = []
    for gateway in plan.gateways:
        labels = selector_labels(gateway.name)
        if scope.kind == "canary":
            if gateway.canary_revision is None:
                continue
            selectors.append(PodSelector(gateway.namespace, f"{gateway.name}-canary",
                                         {**labels, REVISION_LABEL: gateway.canary_revision}, "canary",
                                         gateway.canary_version))
            selectors.append(PodSelector(gateway.namespace, gateway.name,
                                         {**labels, REVISION_LABEL: gateway.revision_label}, "baseline",
                                         gateway.version))
        else:
            selectors.append(PodSelector(gateway.namespace, gateway.name,
                                         {**labels, REVISION_LABEL: gateway.revision_label}, "canary",
                                         gateway.version))
    return selectors


def _workloads(plan: MeshPlan, scope: GateScope) -> list[PodSelector]:
    selectors: list[PodSelector] = []
    if scope.kind == "canary":
        apps = set()
        for canary in plan.canaries:
            apps.add((canary.namespace, canary.workload))
            selectors.append(PodSelector(canary.namespace, canary.name, dict(canary.selector), "canary",
                                         canary.expected_proxy_version))
        for workload in plan.workloads:
            if (workload.namespace, workload.name) in apps:
                selectors.append(PodSelector(workload.namespace, workload.name, dict(workload.selector),
                                             "baseline", workload.proxy_version, workload.wave))
        return selectors
    for workload in plan.workloads:
        under_test = scope.kind == "verify" or workload.wave in scope.waves
        selectors.append(PodSelector(workload.namespace, workload.name, dict(workload.selector),
                                     "canary" if under_test else "baseline", workload.proxy_version,
                                     workload.wave))
    return selectors
