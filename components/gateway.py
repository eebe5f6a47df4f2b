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
- Each release's Deployment carries the metadata label `istio.io/rev=<the revision
  injecting its pods>` (the resolved revision, never the tag), written by a
  server-side-apply patch of that one label beside the release. `istioctl analyze`
  reads a Deployment labelled `istio.io/rev` only in that revision's analysis, and
  there that revision's injectors are visible (every injector of a mesh of
  revisions carries its revision); an unlabelled gateway Deployment is read by
  every analysis, and each one that cannot see its injector warns IST0146 (`image:
  auto` without a matching injector). The chart has no value for a label of the
  Deployment alone (`labels` also lands on the pod template), hence the patch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apps.v1 import DeploymentPatch
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.helm.v3 import Release
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs, ObjectMetaPatchArgs

from components._helm import MANAGED_BY, adopted, layered_values, release
from components.namespace_enrollment import PATCH_FIELD_MANAGER, PATCH_FORCE
from meshmodel.chart_support import gateway_accepts_pod_disruption_budget
from meshmodel.plan import PROXY_REVISION_ANNOTATION, REVISION_LABEL, GatewayPlan
from meshmodel.spec import IstioVersion

CANARY_REPLICAS = 1
# Scaling settings of the primary that would turn the canary into a second primary
# (an HPA with the primary's minimum takes half the traffic); the canary drops them.
_PRIMARY_ONLY_VALUES = ("autoscaling", "podDisruptionBudget", "replicaCount")
# The manager of the one label meshlift writes onto the Deployments of its gateway releases.
FIELD_MANAGER = "meshlift-gateway"
SKIP_AWAIT = "pulumi.com/skipAwait"


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


def renders_deployment(plan: GatewayPlan) -> bool:
    """Whether the chart renders the gateway as a Deployment (its `kind` value, Deployment unless set)."""
    return (plan.values.get("kind") or "Deployment") == "Deployment"


def revision_label_patch(resource_name: str, *, deployment: str, namespace: str, revision: str,
                         release: Release, parent: pulumi.Resource) -> DeploymentPatch:
    """`istio.io/rev=<revision>` on the release's Deployment, and nothing else, by server-side apply.

    The chart never renders that label on the Deployment (only on its pod template), so
    Helm never claims it: an upgrade's three-way merge keeps a label it never rendered.
    Forced, so a hand-set value is taken over rather than failing the run; only this
    field is sent. It depends on the release: created after it, and it follows the
    release's revision at promotion and on a rollback. It takes no promotion hook: the
    release it follows is the gated step, and a label changes no pod and no traffic.

    Retained on delete: a patch goes only with its Deployment (the canary release at
    promotion, a gateway taken out of the stack, a gateway switched to a DaemonSet),
    so there is no label to hand back, and the provider's hand-back applies an empty
    configuration, which for a Deployment already gone would try to create one and
    fail the run.
    """
    return DeploymentPatch(
        resource_name,
        metadata=ObjectMetaPatchArgs(
            name=deployment, namespace=namespace, labels={REVISION_LABEL: revision},
            annotations={
                PATCH_FIELD_MANAGER: FIELD_MANAGER, PATCH_FORCE: "true",
                # The release already waited for its pods; a label rolls nothing to wait for.
                SKIP_AWAIT: "true",
            },
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[release], retain_on_delete=True),
    )


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
        # A DaemonSet gateway gets no label: the analyzer behind IST0146 judges Pods and Deployments only.
        self.revision_labels: list[DeploymentPatch] = []
        if renders_deployment(plan):
            self.revision_labels.append(revision_label_patch(
                f"{name}-revision-label", deployment=plan.name, namespace=plan.namespace, revision=plan.revision,
                release=self.release, parent=self))
            if self.canary is not None and plan.canary_revision is not None:
                self.revision_labels.append(revision_label_patch(
                    f"{name}-canary-revision-label", deployment=f"{plan.name}-canary", namespace=plan.namespace,
                    revision=plan.canary_revision, release=self.canary, parent=self))
        self.register_outputs({
            "name": plan.name,
            "namespace": plan.namespace,
            "revision": plan.revision,
            "canaryRevision": plan.canary_revision,
        })
