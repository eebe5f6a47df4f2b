"""Canaries: during the canary stage, a `<workload>-canary` clone of each canaried live workload.

One component per namespace, like `components.workload.Workloads`. For each
canary the program reads the live workload the Pulumi way, a resource read
(`Deployment.get` / `StatefulSet.get`, child `<namespace>.<workload>-live`,
which Pulumi never changes or deletes), and declares the clone from its pod
template (see meshmodel.clone): `<namespace>.<workload>-canary-deployment`
(or `-statefulset`). The clone records the fingerprint of the template it was
cloned from (`meshlift.io/source-template-hash`).

Its pods ask meshlift's pod-revision webhook for the target revision, so the
clone depends on that webhook (`meshlift-pod-revision-<rev>`) as well as on the
target's istiod and the namespace's enrollment: a pod created before its
injector exists would start without the new proxy. The clone exists only in the
canary stage: the plan drops it at promotion (or a rollback does), and Pulumi
deletes it; the live workload is only ever read.

Istio lets a namespace's `istio.io/rev` win over a pod's (istio/istio #37088,
#48316). Canary workloads therefore live in tag-enrolled namespaces (the
validator insists), where meshlift's own webhooks let the pod's label decide
(see `components.revision_tags`); the checks' proxy-version gate
(`canaries[].expectedProxyVersion`) still verifies what was injected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi._types import is_output_type, output_type_to_dict  # the SDK's own wire-name table
from pulumi_kubernetes.apps.v1 import Deployment, StatefulSet
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components._helm import MANAGED_BY
from components.workload import child_name
from meshmodel.clone import SOURCE_TEMPLATE_HASH_ANNOTATION, clone_spec, template_hash
from meshmodel.plan import CANARY_OF_LABEL, CanaryPlan

_KINDS = {"Deployment": Deployment, "StatefulSet": StatefulSet}


@dataclass(frozen=True, kw_only=True)
class CanariesArgs:
    namespace: str
    plans: Sequence[CanaryPlan]  # this namespace's canaries, in plan order
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespace's enrollment
    control_planes: Mapping[str, pulumi.Resource]  # revision -> its ControlPlaneRevision (a canary's target)
    injectors: Mapping[str, pulumi.Resource]  # revision -> the webhook that injects pods asking for it


class Canaries(pulumi.ComponentResource):
    """A namespace's canary clones; `clones[name]` and `live[workload]` per canary."""

    def __init__(self, name: str, args: CanariesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:Canaries", name, None, opts)
        options = {
            revision: pulumi.ResourceOptions(parent=self, depends_on=[
                *args.depends_on, args.control_planes[revision], args.injectors[revision],
            ])
            for revision in {plan.revision for plan in args.plans}
        }
        read_opts = pulumi.ResourceOptions(parent=self)
        self.live: dict[str, pulumi.CustomResource] = {}
        self.clones: dict[str, pulumi.CustomResource] = {}
        for plan in args.plans:
            kind = _KINDS[plan.kind]
            live = kind.get(child_name(name, plan.workload, "live"), f"{plan.namespace}/{plan.workload}",
                            opts=read_opts)
            self.live[plan.workload] = live
            self.clones[plan.name] = kind(
                child_name(name, plan.name, plan.kind.lower()),
                metadata=ObjectMetaArgs(
                    name=plan.name,
                    namespace=plan.namespace,
                    labels={CANARY_OF_LABEL: plan.workload, **MANAGED_BY},
                    annotations={SOURCE_TEMPLATE_HASH_ANNOTATION: live.spec.apply(_template_hash)},
                ),
                spec=live.spec.apply(lambda spec, plan=plan: clone_spec(
                    api_shape(spec), kind=plan.kind, workload=plan.workload, revision=plan.revision,
                    replicas=plan.replicas)),
                opts=options[plan.revision],
            )
        self.register_outputs({
            "namespace": args.namespace,
            "canaries": {
                plan.name: {"revision": plan.revision, "expectedProxyVersion": plan.expected_proxy_version}
                for plan in args.plans
            },
        })


def _template_hash(spec: object) -> str:
    return template_hash(api_shape(spec).get("template") or {})


def api_shape(value: Any) -> Any:
    """A read resource's typed output as the API server's JSON (camelCase field names).

    The provider's output types are dicts keyed by Python names (`service_name`);
    their wire names come from the types themselves, so map keys such as label
    names (which may contain `_`) are never rewritten.
    """
    if is_output_type(type(value)):
        return {name: api_shape(item) for name, item in output_type_to_dict(value).items()}
    if isinstance(value, dict):
        return {key: api_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [api_shape(item) for item in value]
    return value
