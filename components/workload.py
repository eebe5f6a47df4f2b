"""Workload restarts: one namespace's running workloads, moved to a revision by patch, never by ownership.

The Deployments, StatefulSets and DaemonSets of an enrolled namespace belong to
their teams (their charts, GitOps, pipelines). meshlift restarts one by a
server-side-apply patch of a single pod-template annotation,
`meshlift.io/proxy-revision`, under its own field manager (components._restarts):

- the API server records meshlift as the manager of that one field; no other
  field is sent, so none is taken or rewritten, and an annotation another
  manager owns is a conflict, never taken over;
- changing the value changes the pod template, so the workload's controller
  rolls its pods, and the new pods are injected by whatever the namespace's
  label now points at. The program never waits: the orchestrator polls each
  wave's rollouts and fails the wave with the controller's reason (see
  rollout.rollouts);
- taking an entry back (a rollback to before the wave) re-applies an empty
  configuration under the same manager: the API server drops only meshlift's
  annotation, the template returns to what its owner wrote, and the pods
  restart back.

A workload gets an entry only once its wave is promoted (or when a past upgrade
already left the annotation, recorded in the inventory), so nothing restarts in
the install and canary stages. The namespace's restarts are one resource
(`<namespace>-restarts`, whose input maps `<Kind>/<name>` to the revision), not
one per workload: the stack's size, and with it the cost of every Pulumi step,
grows with namespaces, not workloads. It is a promotion resource: it accepts the
gate's resource hooks (which let a change that only takes restarts back through).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components._restarts import NamespaceRestarts, restart_key
from meshmodel.plan import WorkloadPlan


def child_name(component: str, workload: str, kind: str) -> str:
    """`<namespace>.<workload>-<kind>`: unique across namespaces, since neither name has a dot."""
    return f"{component}.{workload}-{kind}"


@dataclass(frozen=True, kw_only=True)
class WorkloadsArgs:
    namespace: str
    plans: Sequence[WorkloadPlan]  # this namespace's workloads meshlift patches (restart_revision set)
    cluster: Mapping[str, Any]  # the stack's `kubernetes:kubeconfig` and `kubernetes:context`
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    promotion_hooks: pulumi.ResourceHookBinding | None = None


def restart_map(plans: Sequence[WorkloadPlan]) -> dict[str, str]:
    """`<Kind>/<name>` -> the revision each restarted workload's template names."""
    return {restart_key(plan.kind, plan.name): plan.restart_revision for plan in plans
            if plan.restart_revision is not None}


class Workloads(pulumi.ComponentResource):
    """A namespace's restarts, one `NamespaceRestarts` resource (`restarts`) for all of them."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Workloads", name, None, opts)
        self.restarts = NamespaceRestarts(
            f"{name}-restarts",
            namespace=args.namespace, restarts=restart_map(args.plans), cluster=args.cluster,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), hooks=args.promotion_hooks),
        )
        self.register_outputs({
            "namespace": args.namespace,
            "proxyRevisions": {plan.name: plan.proxy_revision for plan in args.plans},
        })
