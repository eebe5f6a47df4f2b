"""Which workloads a gate judges, from the plan: shared by every platform.

A selector names pods the way Kubernetes would (namespace + labels); the
Kubernetes platform hands it to target discovery, the local platform matches it
against the proxies it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshmodel.plan import CANARY_OF_LABEL, REVISION_LABEL, MeshPlan, WorkloadPlan
from meshmodel.spec import MeshSpec, Stage
from rollout.errors import MeshliftError
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

    without: tuple[str, ...] = ()  # label keys the pods must not carry
    expressions: tuple[dict[str, Any], ...] = ()  # the workload's matchExpressions
    sample: int | None = None  # pods of it a gate reads (None: every one; 0: none, the workload is left out)
    # (revision, version): another revision its pods may run (see GateScope.strays)
    also_runs: tuple[tuple[str, str], ...] = ()

    def version_for(self, revision: str | None) -> str | None:
        """The version a pod injected by `revision` must run: that revision's, when the workload may
        hold its pods, else the workload's own (a pod of any other revision fails the version check)."""
        return dict(self.also_runs).get(revision or "", self.expected_version)

    @property
    def workload(self) -> str:
        """`namespace/name`: how gate reports name the workload."""
        return f"{self.namespace}/{self.name}"

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod with `labels` is one of these, as the API server decides for `label_selector`."""
        return (all(labels.get(key) == value for key, value in self.labels.items())
                and not any(key in labels for key in self.without)
                and all(_holds(expression, labels) for expression in self.expressions))

    @property
    def label_selector(self) -> str:
        return ",".join([f"{key}={value}" for key, value in sorted(self.labels.items())]
                        + [requirement_text(expression) for expression in self.expressions]
                        + [f"!{key}" for key in self.without])


def _holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry against a pod's labels (In needs the key, NotIn does not)."""
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (operator == "Exists")


def requirement_text(expression: Mapping[str, Any]) -> str:
    """One matchExpressions entry in the label-selector syntax the API server parses."""
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "Exists":
        return key
    if operator == "DoesNotExist":
        return f"!{key}"
    return f"{key} {'in' if operator == 'In' else 'notin'} ({','.join(sorted(values))})"


def selectors_for(plan: MeshPlan, scope: GateScope) -> list[PodSelector]:
    """The pods under test (role canary, every one) and the stable comparison (role baseline,
    `scope.baseline_pods` of each workload).

    A wave gate's baseline is every workload not yet promoted; it reads `scope.baseline_workloads`
    of them, chosen by a hash of `namespace/name` (`checks.sampling.choose`), and the others stay in
    the list with `sample=0`: not read, but reported. They are only the canaries' error-rate
    reference (no promoted workload has a pod among them to compare config or memory with). A
    canary gate's baselines are the canaried workloads' own pods, and are all read.
    """
    from checks.sampling import choose

    selectors = [replace(s, sample=scope.baseline_pods) if s.role == "baseline" else s
                 for s in _workloads(plan, scope) + _gateways(plan, scope)]
    if scope.kind != "wave":
        return selectors
    baseline = [s for s in selectors if s.role == "baseline"]
    read = {id(s) for s in choose(baseline, scope.baseline_workloads, name=lambda s: s.workload)}
    return [s if s.role != "baseline" or id(s) in read else replace(s, sample=0) for s in selectors]


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
    """Workload pods by their live selector; a workload no inventory recorded has none and is
    left out (a gate with no target fails closed rather than judging the wrong pods)."""
    selectors: list[PodSelector] = []
    if scope.kind == "canary":
        apps = set()
        for canary in plan.canaries:
            apps.add((canary.namespace, canary.workload))
            selectors.append(PodSelector(canary.namespace, canary.name, dict(canary.selector), "canary",
                                         canary.expected_proxy_version))
        for workload in plan.workloads:
            if (workload.namespace, workload.name) in apps and _selects(workload):
                selectors.append(_live(workload, "baseline"))
        return selectors
    # Workloads that will not move keep the old proxy: they are in no wave's gate.
    strays = {(s.namespace, s.kind, s.name): ((s.revision, s.version),) for s in scope.strays}
    for workload in (w for w in plan.workloads if _selects(w) and w.moves):
        under_test = scope.kind == "verify" or workload.wave in scope.waves
        selectors.append(_live(workload, "canary" if under_test else "baseline",
                               strays.get((workload.namespace, workload.kind, workload.name), ())))
    return selectors


def _selects(workload: WorkloadPlan) -> bool:
    return bool(workload.selector or workload.selector_expressions)


def _live(workload: WorkloadPlan, role: str, also_runs: tuple[tuple[str, str], ...] = ()) -> PodSelector:
    # The live selector (often `app` alone) matches its canary clone's pods too.
    return PodSelector(workload.namespace, workload.name, dict(workload.selector), role, workload.proxy_version,
                       workload.wave, without=(CANARY_OF_LABEL,), expressions=workload.selector_expressions,
                       also_runs=also_runs)


def promotion_warnings(spec: MeshSpec, live_workloads: Callable[[Sequence[str]], dict[str, list[dict[str, Any]]]]
                       ) -> list[str]:
    """At the first promotion (the first part of wave 1): canaried workloads whose template changed since the
    run recorded them."""
    from rollout.inventory import changed_canaried, inventory_of
    from rollout.stages import wave_parts

    rollout = spec.rollout
    if rollout is None or rollout.stage is not Stage.PROMOTE or rollout.promoted_waves > 1 or spec.inventory is None:
        return []
    if rollout.promoted_waves and wave_parts(spec, 1)[0] != rollout.restarted_in_wave:
        return []  # a later part of wave 1: its first part said it
    namespaces = [ns.name for ns in spec.namespaces if any(w.canary for w in ns.workloads)]
    if not namespaces:
        return []
    try:
        live = live_workloads(namespaces)
    except MeshliftError as error:  # the update itself succeeded: say so, never roll back for this
        return [f"could not tell whether the canaried workloads changed during the canary stage: {error}"]
    return changed_canaried(spec, inventory_of(namespaces, live))
