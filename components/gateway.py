"""Gateway: an istio/gateway release in its own namespace, with a canary during the canary stage.

- The namespace is created without `istio-injection=disabled`: gateway pods are
  injected through their own `sidecar.istio.io/inject` and `istio.io/rev` pod
  labels (the chart sets both), which the object-level injector webhook only
  honours in a namespace that carries no injection label. It is retained on
  delete, created or imported: removing the gateway or `pulumi destroy` removes
  the release, never the namespace and what others keep in it.
- The gateway carries its own revision or tag (`revision` value) and its chart
  version follows the revision it resolves to, so it upgrades independently of
  the control plane.
- Chart upgrades do not restart gateway pods by themselves, and moving a tag
  changes nothing in the chart's values at all. The pod annotation
  `meshlift.io/proxy-revision` (the resolved revision) changes whenever the
  gateway must run another proxy, which rolls the Deployment.
- Canary stage: a second release `<name>-canary` on the canary revision, with
  the primary's selector labels (`app`, `istio`) and `service.type: None`, so it
  has no Service of its own and the primary's Service sends it a share of the
  traffic. It runs one replica without HPA or PDB, whatever the primary's
  scaling values, so it stays a small share. At promotion the canary release is removed and the primary moves to
  the new revision (the cut-over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components._helm import MANAGED_BY, adopted, layered_values, release
from meshmodel.chart_support import gateway_accepts_pod_disruption_budget
from meshmodel.plan import PROXY_REVISION_ANNOTATION, GatewayPlan
from meshmodel.spec import IstioVersion

CANARY_REPLICAS = 1
# Scaling settings of the primary that would turn the canary into a second primary
# (an HPA with the primary's minimum takes half the traffic); the canary drops them.
_PRIMARY_ONLY_VALUES = ("autoscaling", "podDisruptionBudget", "replicaCount")


@dataclass(frozen=True, kw_only=True)
class GatewayArgs:
    plan: GatewayPlan
    chart_repository: str
    create_namespace: bool = True  # False when another gateway already creates it
    namespace_exists: bool = False  # it holds a release installed before meshlift: imported, not created
    adopt: bool = False  # the primary release was installed before meshlift: imported, then upgraded
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # its injector (istiod, tag)
    canary_depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the canary's istiod
    promotion_hooks: pulumi.ResourceHookBinding | None = None


def selector_labels(name: str) -> dict[str, str]:
    """The labels the chart selects gateway pods by; shared by the primary and its canary."""
    return {"app": name, "istio": name.removeprefix("istio-")}


def gateway_values(plan: GatewayPlan, *, revision_label: str, revision: str, replicas: int,
                   canary: bool, chart_version: str) -> dict[str, Any]:
    user = {k: v for k, v in plan.values.items() if not (canary and k in _PRIMARY_ONLY_VALUES)}
    defaults: dict[str, Any] = {
        "autoscaling": {"enabled": False},  # `replicas` means replicas; enable the HPA in values
    }
    # Charts whose values schema forbids the key fail the whole release if it is set.
    if gateway_accepts_pod_disruption_budget(IstioVersion.parse(chart_version)):
        defaults["podDisruptionBudget"] = {"minAvailable": 1} if replicas > 1 else {}
    service: dict[str, Any] = {"type": "None"}  # the canary hides behind the primary's Service
    if not canary:
        service = {
            "type": plan.service_type,
            "ports": [
                {"name": p["name"], "port": p["port"], "targetPort": p.get("targetPort", p["port"]),
                 "protocol": p.get("protocol", "TCP")}
                for p in plan.ports
            ],
            "annotations": dict(plan.service_annotations),
        }
    owned = {
        "revision": revision_label,
        "replicaCount": replicas,
        "service": service,
        "labels": selector_labels(plan.name),
        "podAnnotations": {PROXY_REVISION_ANNOTATION: revision},
    }
    return layered_values(defaults, user, owned)


class Gateway(pulumi.ComponentResource):
    """One ingress/egress gateway; `release` is the primary, `canary` exists only in the canary stage."""

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Gateway", name, None, opts)
        plan = args.plan
        self.namespace: Namespace | None = None
        placed: list[pulumi.Resource] = []
        if args.create_namespace:
            self.namespace = Namespace(
                f"{name}-namespace",
                metadata=ObjectMetaArgs(name=plan.namespace, labels=dict(MANAGED_BY)),
                # Never deleted: it holds the gateway's TLS `credentialName` secrets (and cert-manager
                # Certificates), which Istio requires in the gateway's own namespace.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True).merge(
                    adopted(plan.namespace if args.namespace_exists else None)),
            )
            placed = [self.namespace]
        self.release = release(
            f"{name}-release",
            release_name=plan.name,
            chart="gateway",
            version=plan.version,
            namespace=plan.namespace,
            repository=args.chart_repository,
            values=gateway_values(plan, revision_label=plan.revision_label, revision=plan.revision,
                                  replicas=plan.replicas, canary=False, chart_version=plan.version),
            adopt=args.adopt,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*placed, *args.depends_on],
                hooks=args.promotion_hooks,  # the cut-over at promotion is a promotion step
            ),
        )
        self.canary = None
        if plan.canary_revision is not None and plan.canary_version is not None:
            self.canary = release(
                f"{name}-canary-release",
                release_name=f"{plan.name}-canary",
                chart="gateway",
                version=plan.canary_version,
                namespace=plan.namespace,
                repository=args.chart_repository,
                values=gateway_values(plan, revision_label=plan.canary_revision, revision=plan.canary_revision,
                                      replicas=CANARY_REPLICAS, canary=True, chart_version=plan.canary_version),
                # After the primary: the canary has no Service and lives behind the primary's.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, *args.canary_depends_on]),
            )
        self.register_outputs({
            "name": plan.name,
            "namespace": plan.namespace,
            "revision": plan.revision,
            "canaryRevision": plan.canary_revision,
        })
