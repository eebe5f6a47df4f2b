"""Workloads: one namespace's stable Deployments meshlift manages, and the Service in front of each.

One component per namespace, not per workload: a component adds a registration,
an outputs registration and a source-position stack trace to every `pulumi up`,
and gives nothing a workload needs (its Deployment and Service are named and
labelled after it anyway). Children keep the names `<namespace>.<workload>-deployment`
and `-service` (a dot cannot appear in either name, so they never collide).

The pod template carries `meshlift.io/proxy-revision` (the revision its pods must
run after this stage): when a promotion wave moves the workload to the new
revision the annotation changes, the Deployment rolls, and the new pods are
injected by whatever the namespace label now points at. The Deployments are
promotion resources: they accept the gate's resource hooks.

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


def child_name(component: str, workload: str, kind: str) -> str:
    """`<namespace>.<workload>-<kind>`: unique across namespaces, since neither name has a dot."""
    return f"{component}.{workload}-{kind}"


@dataclass(frozen=True, kw_only=True)
class WorkloadsArgs:
    namespace: str
    plans: Sequence[WorkloadPlan]  # this namespace's workloads, in spec order
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class Workloads(pulumi.ComponentResource):
    """A namespace's workloads; `deployments[name]` and `services[name]` per workload."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Workloads", name, None, opts)
        # Resource constructors copy their options, so one instance per kind serves every workload.
        deployment_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                                 hooks=args.promotion_hooks)
        service_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.deployments: dict[str, Deployment] = {}
        self.services: dict[str, Service] = {}
        for plan in args.plans:
            app = plan.labels["app"]
            metadata = ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels={"app": app, **MANAGED_BY})
            self.deployments[plan.name] = Deployment(
                child_name(name, plan.name, "deployment"),
                metadata=metadata,
                spec=DeploymentSpecArgs(
                    replicas=plan.replicas,
                    selector=LabelSelectorArgs(match_labels=dict(plan.selector)),
                    strategy=SAFE_ROLLING_UPDATE,
                    template=pod_template(name=plan.name, image=plan.image, port=plan.port,
                                          labels=plan.labels, proxy_revision=plan.proxy_revision),
                ),
                opts=deployment_opts,
            )
            self.services[plan.name] = Service(
                child_name(name, plan.name, "service"),
                metadata=metadata,
                spec=ServiceSpecArgs(
                    selector={"app": app},  # stable and canary pods alike
                    ports=[ServicePortArgs(name=PORT_NAME, port=plan.port, target_port=plan.port)],
                ),
                opts=service_opts,
            )
        self.register_outputs({
            "namespace": args.namespace,
            "proxyRevisions": {plan.name: plan.proxy_revision for plan in args.plans},
        })
