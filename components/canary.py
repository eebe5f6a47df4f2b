"""Canaries: during the canary stage, a `<workload>-canary` Deployment per canaried workload of a namespace.

One component per namespace, like `components.workload.Workloads`; each
Deployment is named `<namespace>.<workload>-canary-deployment`.

Its pods carry the pod-level `istio.io/rev: <target>` label (and
`meshlift.io/inject-revision: <target>`, which meshlift's injector webhooks act
on), `meshlift.io/track: canary` and the workload's `app` label, so the workload's Service routes a share
of the traffic to them and the checks find them by their selector. They hold the
application until the proxy is ready. The canary exists only in the canary
stage: the plan drops it at promotion, and Pulumi deletes it.

Istio lets a namespace's `istio.io/rev` win over a pod's (istio/istio #37088,
#48316). Canary workloads therefore live in tag-enrolled namespaces (the
validator insists), where meshlift's own webhooks let the pod's label decide
(see `components.revision_tags`); the checks' proxy-version gate
(`canaries[].expectedProxyVersion`) still verifies what was injected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apps.v1 import Deployment, DeploymentSpecArgs
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs

from components._helm import MANAGED_BY
from components.plan import INJECT_REVISION_LABEL, REVISION_LABEL, CanaryPlan
from components.workload import SAFE_ROLLING_UPDATE, child_name, pod_template


@dataclass(frozen=True, kw_only=True)
class CanariesArgs:
    namespace: str
    plans: Sequence[CanaryPlan]  # this namespace's canaries, in spec order
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    control_planes: Mapping[str, pulumi.Resource]  # revision -> its ControlPlaneRevision (a canary's target)


class Canaries(pulumi.ComponentResource):
    """A namespace's canary Deployments; `deployments[name]` per canary (`<workload>-canary`)."""

    def __init__(self, name: str, args: CanariesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Canaries", name, None, opts)
        # One options instance per target revision (in practice one): constructors copy them.
        options = {
            revision: pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, args.control_planes[revision]])
            for revision in {plan.revision for plan in args.plans}
        }
        self.deployments: dict[str, Deployment] = {}
        for plan in args.plans:
            self.deployments[plan.name] = Deployment(
                child_name(name, plan.name, "deployment"),
                metadata=ObjectMetaArgs(
                    name=plan.name, namespace=plan.namespace, labels={"app": plan.labels["app"], **MANAGED_BY},
                ),
                spec=DeploymentSpecArgs(
                    replicas=plan.replicas,
                    selector=LabelSelectorArgs(match_labels=dict(plan.selector)),
                    strategy=SAFE_ROLLING_UPDATE,
                    template=pod_template(
                        name=plan.workload,
                        image=plan.image,
                        port=plan.port,
                        labels={**plan.labels, REVISION_LABEL: plan.revision, INJECT_REVISION_LABEL: plan.revision},
                        proxy_revision=plan.revision,
                    ),
                ),
                opts=options[plan.revision],
            )
        self.register_outputs({
            "namespace": args.namespace,
            "canaries": {
                plan.name: {"revision": plan.revision, "expectedProxyVersion": plan.expected_proxy_version}
                for plan in args.plans
            },
        })
