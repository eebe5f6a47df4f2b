"""Workload restarts: one namespace's running workloads, moved to a revision by patch, never by ownership.

The Deployments, StatefulSets and DaemonSets of an enrolled namespace belong to
their teams (their charts, GitOps, pipelines). meshlift restarts one by a
server-side-apply patch of a single pod-template annotation,
`meshlift.io/proxy-revision`, under its own field manager `meshlift`
(`DeploymentPatch` / `StatefulSetPatch` / `DaemonSetPatch` with
`pulumi.com/patchFieldManager: meshlift`):

- the API server records meshlift as the manager of that one field; no other
  field is sent, so none is taken or rewritten. `pulumi.com/patchForce` is not
  set: if another manager owned the annotation the patch would fail with a
  conflict instead of taking it;
- changing the value changes the pod template, so the workload's controller
  rolls its pods, and the new pods are injected by whatever the namespace's
  label now points at. The provider does not wait on Patch resources
  (pulumi-kubernetes #2455), and the program never waits: the orchestrator
  polls each wave's rollouts and fails the wave with the controller's reason
  (see rollout.rollouts);
- deleting the patch resource (a rollback to before the wave) re-applies an
  empty configuration under the same manager: the API server drops only
  meshlift's annotation, the template returns to what its owner wrote, and the
  pods restart back. The patch is therefore not `retainOnDelete`.

A workload gets a patch only once its wave is promoted (or when a past upgrade
already left the annotation, recorded in the inventory), so nothing restarts in
the install and canary stages. The patches are promotion resources: they
accept the gate's resource hooks.

One component per namespace, not per workload: a component per workload would
double the registrations and add nothing. Children are named
`<namespace>.<workload>-restart` (a dot cannot appear in either name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apps.v1 import (
    DaemonSetPatch,
    DaemonSetSpecPatchArgs,
    DeploymentPatch,
    DeploymentSpecPatchArgs,
    StatefulSetPatch,
    StatefulSetSpecPatchArgs,
)
from pulumi_kubernetes.core.v1 import PodTemplateSpecPatchArgs
from pulumi_kubernetes.meta.v1 import ObjectMetaPatchArgs

from components.namespace_enrollment import PATCH_FIELD_MANAGER
from meshmodel.plan import PROXY_REVISION_ANNOTATION, WorkloadPlan

FIELD_MANAGER = "meshlift"

_PATCHES = {
    "Deployment": (DeploymentPatch, DeploymentSpecPatchArgs),
    "StatefulSet": (StatefulSetPatch, StatefulSetSpecPatchArgs),
    "DaemonSet": (DaemonSetPatch, DaemonSetSpecPatchArgs),
}


def child_name(component: str, workload: str, kind: str) -> str:
    """`<namespace>.<workload>-<kind>`: unique across namespaces, since neither name has a dot."""
    return f"{component}.{workload}-{kind}"


@dataclass(frozen=True, kw_only=True)
class WorkloadsArgs:
    namespace: str
    plans: Sequence[WorkloadPlan]  # this namespace's workloads meshlift patches (restart_revision set)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class Workloads(pulumi.ComponentResource):
    """A namespace's restart patches; `patches[name]` per patched workload."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Workloads", name, None, opts)
        # Resource constructors copy their options, so one instance serves every patch.
        patch_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                            hooks=args.promotion_hooks)
        self.patches: dict[str, pulumi.CustomResource] = {}
        for plan in args.plans:
            if plan.restart_revision is None:
                continue
            patch, spec_args = _PATCHES[plan.kind]
            self.patches[plan.name] = patch(
                child_name(name, plan.name, "restart"),
                metadata=ObjectMetaPatchArgs(
                    name=plan.name, namespace=plan.namespace, annotations={PATCH_FIELD_MANAGER: FIELD_MANAGER},
                ),
                spec=spec_args(template=PodTemplateSpecPatchArgs(
                    metadata=ObjectMetaPatchArgs(annotations={PROXY_REVISION_ANNOTATION: plan.restart_revision}),
                )),
                opts=patch_opts,
            )
        self.register_outputs({
            "namespace": args.namespace,
            "proxyRevisions": {plan.name: plan.proxy_revision for plan in args.plans},
        })
