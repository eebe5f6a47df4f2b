"""Canary: during the canary stage, a `<workload>-canary` Deployment on the target revision.

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

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apps.v1 import Deployment, DeploymentSpecArgs
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs

from components._helm import MANAGED_BY
from components.plan import INJECT_REVISION_LABEL, REVISION_LABEL, CanaryPlan
from components.workload import SAFE_ROLLING_UPDATE, pod_template


@dataclass(frozen=True, kw_only=True)
class CanaryArgs:
    plan: CanaryPlan
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # enrollment, target istiod


class Canary(pulumi.ComponentResource):
    def __init__(self, name: str, args: CanaryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Canary", name, None, opts)
        plan = args.plan
        self.deployment = Deployment(
            f"{name}-deployment",
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({
            "namespace": plan.namespace,
            "name": plan.name,
            "revision": plan.revision,
            "expectedProxyVersion": plan.expected_proxy_version,
        })
