"""meshlift's Pulumi program: the stack's mesh spec, declared as resources for its stage.

Only reads config and wires components. The stack config is validated first: a
bad config raises before any resource is registered, and so does a takeover
that would replace values the adopted installation runs with (the one read of
the cluster at program time, only for a stack that adopts releases). What each
stage looks like is decided by `meshmodel.plan.plan_for`; this program translates
that plan into resources one to one, and exports the same plan as stack outputs.
"""

from __future__ import annotations

import gc
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.canary import Canaries, CanariesArgs
from components.control_plane import ControlPlaneArgs, ControlPlaneRevision
from components.gateway import Gateway, GatewayArgs
from components.mesh_base import MeshBase, MeshBaseArgs
from components.namespace_enrollment import NamespaceEnrollment, NamespaceEnrollmentArgs
from components.pinned_config import PinnedConfig, PinnedConfigArgs
from components.promotion import registered_once
from components.revision_tags import RevisionTags, RevisionTagsArgs
from components.workload import Workloads, WorkloadsArgs
from meshmodel.outputs import stack_outputs
from meshmodel.plan import BASE_RELEASE_NAME, by_namespace, istiod_release_name, plan_for
from meshmodel.proxy_profile import istiod_values
from meshmodel.spec import MeshSpec, SpecError
from meshmodel.spec_check import load_spec
from rollout import hooks as gate
from rollout import preflight
from rollout.errors import MeshliftError, describe
from rollout.pinned_config import PinnedTargetCheck
from rollout.platforms.kube_live import KubeLive
from rollout.platforms.kubernetes import KubeDiscovery, stack_cluster

PINNED_TARGET_HOOK = "meshlift-pinned-target-exists"

# Python's default is 10. A full (oldest-generation) GC pass re-scans every live
# object, and in a Pulumi program nearly everything lives until the end: every
# resource, its Outputs and the SDK's asyncio tasks. The passes come more often as
# the heap grows, so their cost grows with the square of the resources: at 1,000
# workloads (3,220 resources) 23 of them took over half the program's CPU, the same
# in a real `pulumi up` as under mocks. Young collections still run every 700
# allocations, so short-lived cycles are still freed; peak memory did not change.
FULL_GC_EVERY_MIDDLE_PASSES = 1000


def config_from_pulumi() -> dict[str, Any]:
    """Every config value of the running Pulumi program, keyed `ns:key`."""
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def the_stacks_cluster() -> dict[str, str | None]:
    """The cluster the stack's Kubernetes provider talks to (`kubernetes:kubeconfig`, `kubernetes:context`)."""
    kubernetes = pulumi.Config("kubernetes")
    return stack_cluster({"kubernetes:kubeconfig": kubernetes.get("kubeconfig"),
                          "kubernetes:context": kubernetes.get("context")})


def promotion_hooks(spec, plan, cluster: dict[str, str | None]) -> pulumi.ResourceHookBinding | None:
    """The orchestrator's gate, as hooks on the promotion resources, judging the stack's own cluster."""
    binding = gate.gate_hooks(spec, plan, discover=KubeDiscovery(**cluster))
    return None if binding is None else registered_once(binding)


def pinned_config_hooks(hooks: pulumi.ResourceHookBinding | None) -> pulumi.ResourceHookBinding:
    """The promotion gate, and before any label patch is created: the object it labels exists."""
    exists = pulumi.ResourceHook(PINNED_TARGET_HOOK, PinnedTargetCheck(lambda: KubeLive(**the_stacks_cluster())))
    return pulumi.ResourceHookBinding(before_create=[*((hooks.before_create or []) if hooks else []), exists],
                                      before_update=hooks.before_update if hooks else None)


def refuse_an_unstated_takeover(spec: MeshSpec, config: dict[str, Any]) -> None:
    """A plain `pulumi up` refuses what `meshlift upgrade` refuses of a takeover, with the same message.

    Every run of the program checks, the orchestrator's `up`s too: MESHLIFT_GATED stands only
    the gate hooks down, and the two agree (the orchestrator refused before its first `up`). Helm keeps none of a release's earlier values once new values are
    sent, so what is not stated would be lost by the first update of the adopted releases.
    """
    try:
        preflight.check_takeover(spec, config, stack=pulumi.get_stack())
    except (SpecError, MeshliftError) as error:
        failure = describe(error)
        raise pulumi.RunError("\n  ".join((failure.message, *failure.details))) from error


def main() -> None:
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_EVERY_MIDDLE_PASSES)
    config = config_from_pulumi()
    try:
        spec = load_spec(config)
    except SpecError as error:
        # RunError: Pulumi prints the message (every key path) without a traceback.
        raise pulumi.RunError(str(error)) from error
    refuse_an_unstated_takeover(spec, config)
    plan = plan_for(spec)
    cluster = the_stacks_cluster()
    hooks = promotion_hooks(spec, plan, cluster)

    base = MeshBase("istio-base", MeshBaseArgs(
        istio_namespace=plan.istio_namespace,
        chart_repository=plan.chart_repository,
        version=plan.base_version,
        default_revision=plan.default_revision,
        values=plan.base_values,
        promotion_hooks=hooks,
        namespace_exists=plan.namespace_exists(plan.istio_namespace),
        adopt_release=plan.adopts(plan.istio_namespace, BASE_RELEASE_NAME),
    ))
    planes = {
        cp.revision: ControlPlaneRevision(f"istiod-{cp.revision}", ControlPlaneArgs(
            plan=cp,
            istio_namespace=plan.istio_namespace,
            chart_repository=plan.chart_repository,
            depends_on=[base.crds],
            proxy_values=istiod_values(spec.proxy_profile),
            adopt=plan.adopts(plan.istio_namespace, istiod_release_name(cp.revision)),
        ))
        for cp in plan.control_planes
    }
    tags = RevisionTags("revision-tags", RevisionTagsArgs(
        tags=plan.tags,
        revisions=list(planes),
        istio_namespace=plan.istio_namespace,
        control_planes=planes,
        promotion_hooks=hooks,
    ))

    def injector(label: str, revision: str) -> list[pulumi.Resource]:
        """What must exist before pods labelled `label` can be injected: istiod, and the tag."""
        return [planes[revision], *([tags.webhooks[label]] if label in tags.webhooks else [])]

    # Pinned Istio config follows the tags, before any workload restarts onto the new revision;
    # every label names the same revision, whose istiod must exist first.
    pinned = PinnedConfig("pinned-config", PinnedConfigArgs(
        relabels=plan.relabels, depends_on=[planes[plan.relabels[0].revision]],
        promotion_hooks=pinned_config_hooks(hooks),
    )) if plan.relabels else None

    gateway_namespaces: dict[str, Gateway] = {}
    for gw in plan.gateways:
        owner = gateway_namespaces.get(gw.namespace)
        gateway = Gateway(gw.name, GatewayArgs(
            plan=gw,
            chart_repository=plan.chart_repository,
            create_namespace=owner is None,
            namespace_exists=plan.namespace_exists(gw.namespace),
            adopt=plan.adopts(gw.namespace, gw.name),
            depends_on=[*injector(gw.revision_label, gw.revision), *([owner.namespace] if owner else [])],
            canary_depends_on=[planes[gw.canary_revision]] if gw.canary_revision else [],
            promotion_hooks=hooks,
        ))
        gateway_namespaces.setdefault(gw.namespace, gateway)

    enrolled = {
        ns.name: NamespaceEnrollment(ns.name, NamespaceEnrollmentArgs(
            plan=ns, depends_on=injector(ns.revision_label, ns.revision),
            # A tag label never changes at promotion (the tag moves); a revision label does.
            promotion_hooks=None if ns.revision_label in tags.webhooks else hooks,
        ))
        for ns in plan.namespaces
    }
    # One component per namespace holds its workloads (and one its canaries): a
    # component per workload would double the registrations and add nothing.
    workloads = by_namespace(w for w in plan.workloads if w.restart_revision is not None)
    canaries = by_namespace(plan.canaries)
    for ns in plan.namespaces:
        labelled = enrolled[ns.name].labelled
        if ns.name in workloads:
            Workloads(ns.name, WorkloadsArgs(
                namespace=ns.name, plans=workloads[ns.name], cluster=cluster,
                depends_on=[labelled, *([pinned] if pinned else [])],
                promotion_hooks=hooks,
            ))
        if ns.name in canaries:
            Canaries(ns.name, CanariesArgs(
                namespace=ns.name, plans=canaries[ns.name], depends_on=[labelled], control_planes=planes,
                injectors=tags.pod_revisions,
            ))

    for key, value in stack_outputs(plan).items():
        pulumi.export(key, value)


main()
