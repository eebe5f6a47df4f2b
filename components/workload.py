"""Workload: a stable Deployment meshlift manages, and the Service in front of it.

The pod template carries `meshlift.io/proxy-revision` (the revision its pods must
run after this stage): when a promotion wave moves the workload to the new
revision the annotation changes, the Deployment rolls, and the new pods are
injected by whatever the namespace label now points at. The Deployment is a
promotion resource: it accepts the gate's resource hooks.

The Service selects only `app`, so a canary Deployment of the same app (another
`meshlift.io/track`) receives its share of the traffic without a Service of its
own. Pods hold the application until the proxy is ready
(`proxy.istio.io/config`), whatever the revision's mesh-wide default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apps.v1 import (
    Deployment,
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
    RollingUpdateDeploymentArgs,
)
from pulumi_kubernetes.core.v1 import (
    ContainerArgs,
    ContainerPortArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    Service,
    ServicePortArgs,
    ServiceSpecArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs

from components._helm import MANAGED_BY
from components.plan import PROXY_REVISION_ANNOTATION, WorkloadPlan

PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
HOLD_UNTIL_PROXY_STARTS = json.dumps({"holdApplicationUntilProxyStarts": True})
PORT_NAME = "http"  # Istio's protocol selection reads the port name prefix


def pod_template(*, name: str, image: str, port: int, labels: Mapping[str, str],
                 proxy_revision: str) -> PodTemplateSpecArgs:
    return PodTemplateSpecArgs(
        metadata=ObjectMetaArgs(
            labels=dict(labels),
            annotations={
                PROXY_REVISION_ANNOTATION: proxy_revision,
                PROXY_CONFIG_ANNOTATION: HOLD_UNTIL_PROXY_STARTS,
            },
        ),
        spec=PodSpecArgs(containers=[ContainerArgs(
            name=name,
            image=image,
            ports=[ContainerPortArgs(name=PORT_NAME, container_port=port)],
        )]),
    )


# Restart one pod at a time and never below the desired count: a promotion wave
# must not reduce capacity while pods move to the new proxy.
SAFE_ROLLING_UPDATE = DeploymentStrategyArgs(
    type="RollingUpdate",
    rolling_update=RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
)


@dataclass(frozen=True, kw_only=True)
class WorkloadArgs:
    plan: WorkloadPlan
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class Workload(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Workload", name, None, opts)
        plan = args.plan
        app = plan.labels["app"]
        metadata = ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels={"app": app, **MANAGED_BY})
        self.deployment = Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec=DeploymentSpecArgs(
                replicas=plan.replicas,
                selector=LabelSelectorArgs(match_labels=dict(plan.selector)),
                strategy=SAFE_ROLLING_UPDATE,
                template=pod_template(name=plan.name, image=plan.image, port=plan.port,
                                      labels=plan.labels, proxy_revision=plan.proxy_revision),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), hooks=args.promotion_hooks),
        )
        self.service = Service(
            f"{name}-service",
            metadata=metadata,
            spec=ServiceSpecArgs(
                selector={"app": app},  # stable and canary pods alike
                ports=[ServicePortArgs(name=PORT_NAME, port=plan.port, target_port=plan.port)],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({
            "namespace": plan.namespace,
            "name": plan.name,
            "proxyRevision": plan.proxy_revision,
        })
