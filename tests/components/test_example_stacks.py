"""Every example stack, at every stage, builds the whole program; the inputs follow the plan."""

from __future__ import annotations

import pytest

from meshmodel.outputs import stack_outputs
from meshmodel.plan import PROXY_REVISION_ANNOTATION, REVISION_LABEL, TRACK_LABEL, plan_for
from meshmodel.spec import STAGE_ORDER
from meshmodel.spec_check import load_spec
from tests.components.program import RESTARTS_TYPE, run_program, stack_config, with_rollout

ENVS = ("dev", "staging", "prod")
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
COMPONENT_TYPES = {
    "meshlift:index:MeshBase", "meshlift:index:ControlPlaneRevision", "meshlift:index:RevisionTags",
    "meshlift:index:Gateway", "meshlift:index:NamespaceEnrollment", "meshlift:index:Workloads",
    "meshlift:index:Canaries",
}
ENROLLMENT, WORKLOADS, CANARIES = (
    "meshlift:index:NamespaceEnrollment", "meshlift:index:Workloads", "meshlift:index:Canaries")


def config_at(env: str, stage: str) -> dict:
    config = stack_config(env)
    waves = config["meshlift:rollout"].get("promotedWaves", 0)
    if stage == "promote":
        waves = 1  # halfway: the first wave restarted, the others not yet
    return with_rollout(config, stage=stage, promotedWaves=waves if stage == "promote" else None)


CASES = [(env, stage.value) for env in ENVS for stage in STAGE_ORDER]


@pytest.fixture(scope="module", params=CASES, ids=[f"{e}-{s}" for e, s in CASES])
def built(request):
    env, stage = request.param
    config = config_at(env, stage)
    plan = plan_for(load_spec(config))
    return plan, run_program(config, stack=env)


def test_every_resource_is_a_meshlift_component_or_parented_by_one(built):
    _, run = built
    components = {r.urn: r for r in run if not r.custom}
    for registration in run:
        if registration.custom:
            parent = components.get(registration.parent)
            assert parent is not None, f"{registration.urn} is not parented by a meshlift component"
            # `<component>-<part>`, or `<namespace>.<workload>-<part>` under a namespace's Workloads/Canaries.
            assert registration.name.startswith((f"{parent.name}-", f"{parent.name}.")), (
                f"{registration.urn}: child names start with their component's name ({parent.name})")
        else:
            assert registration.type in COMPONENT_TYPES, f"{registration.urn}: unexpected component type"
            assert registration.parent == run.stack_urn, f"{registration.urn} is not a top-level component"


def test_stack_outputs_are_the_plan(built):
    plan, run = built
    assert run.outputs == _as_wire(stack_outputs(plan))


def test_one_istiod_release_per_planned_revision_with_chart_version_and_revision(built):
    plan, run = built
    istiods = {r.inputs["name"]: r for r in run.of_type(RELEASE) if r.inputs["chart"] == "istiod"}
    assert set(istiods) == {f"istiod-{cp.revision}" for cp in plan.control_planes}
    for cp in plan.control_planes:
        release = istiods[f"istiod-{cp.revision}"]
        assert release.inputs["version"] == cp.version, release.urn
        assert release.inputs["values"]["revision"] == cp.revision, release.urn
        assert release.inputs["namespace"] == plan.istio_namespace, release.urn
        assert run.depends_on(release, run.named("istio-base")), f"{release.urn} must wait for the CRDs"


def test_base_chart_points_the_default_validator_at_an_installed_revision(built):
    plan, run = built
    base = run.named("istio-base-release")
    assert base.inputs["chart"] == "base", base.urn
    assert base.inputs["version"] == plan.base_version, base.urn
    assert base.inputs["values"]["defaultRevision"] == plan.default_revision, base.urn
    assert plan.default_revision in {cp.revision for cp in plan.control_planes}, base.urn


def test_tag_webhooks_point_at_the_planned_revision(built):
    plan, run = built
    # What `istioctl tag list` and istiod take for tags: every configuration labelled istio.io/tag.
    webhooks = [w for w in run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration")
                if "istio.io/tag" in w.inputs["metadata"]["labels"]]
    assert {w.inputs["metadata"]["labels"]["istio.io/tag"]: w.inputs["metadata"]["labels"][REVISION_LABEL]
            for w in webhooks} == plan.tags
    for webhook in webhooks:
        revision = webhook.inputs["metadata"]["labels"][REVISION_LABEL]
        services = {h["clientConfig"]["service"]["name"] for h in webhook.inputs["webhooks"]}
        assert services == {f"istiod-{revision}"}, webhook.urn
        assert run.depends_on(webhook, run.named(f"istiod-{revision}")), webhook.urn


def test_every_installed_revision_injects_pods_that_ask_for_it_by_label(built):
    plan, run = built
    # A configuration of its own per revision, labelled so that istiod patches its CA (istio.io/rev), and
    # not as a tag (istio.io/tag): Istio's tools read it as the revision itself.
    webhooks = {w.inputs["metadata"]["name"]: w
                for w in run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration")
                if w.inputs["metadata"]["name"].startswith("meshlift-pod-revision-")}
    assert set(webhooks) == {f"meshlift-pod-revision-{cp.revision}" for cp in plan.control_planes}
    for cp in plan.control_planes:
        webhook = webhooks[f"meshlift-pod-revision-{cp.revision}"]
        assert webhook.name == f"revision-tags-pod-revision-{cp.revision}", webhook.urn
        labels = webhook.inputs["metadata"]["labels"]
        assert labels["istio.io/rev"] == cp.revision and "istio.io/tag" not in labels, webhook.urn
        [hook] = webhook.inputs["webhooks"]
        assert hook["name"] == "pod-revision.sidecar-injector.istio.io", webhook.urn
        assert hook["clientConfig"]["service"]["name"] == f"istiod-{cp.revision}", webhook.urn
        assert "caBundle" not in hook["clientConfig"], f"{webhook.urn}: istiod owns the CA"
        assert run.depends_on(webhook, run.named(f"istiod-{cp.revision}")), webhook.urn


def test_gateways_run_their_revision_and_a_canary_only_when_planned(built):
    plan, run = built
    for gateway in plan.gateways:
        primary = run.named(f"{gateway.name}-release")
        assert primary.inputs["chart"] == "gateway", primary.urn
        assert primary.inputs["version"] == gateway.version, primary.urn
        assert primary.inputs["namespace"] == gateway.namespace, primary.urn
        assert primary.inputs["values"]["revision"] == gateway.revision_label, primary.urn
        assert primary.inputs["values"]["podAnnotations"][PROXY_REVISION_ANNOTATION] == gateway.revision
        assert run.depends_on(primary, run.named(f"istiod-{gateway.revision}")), primary.urn
        canary = run.maybe(f"{gateway.name}-canary-release")
        assert (canary is not None) == (gateway.canary_revision is not None), primary.urn
    # One label patch per gateway release: istio.io/rev on its Deployment names the revision injecting it.
    labels = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]):
              r.inputs["metadata"]["labels"][REVISION_LABEL] for r in run.of_type("kubernetes:apps/v1:DeploymentPatch")}
    assert labels == {
        **{(g.namespace, g.name): g.revision for g in plan.gateways},
        **{(g.namespace, f"{g.name}-canary"): g.canary_revision for g in plan.gateways if g.canary_revision},
    }


def test_live_workloads_are_only_ever_restarted_by_meshlifts_one_annotation_once_their_wave_comes(built):
    plan, run = built
    restarts = run.restarts()
    kinds = run.restart_kinds()
    for workload in plan.workloads:
        key = (workload.namespace, workload.name)
        owned = [r for r in run if r.type.startswith("kubernetes:apps/v1:")
                 and r.inputs["metadata"]["name"] == workload.name
                 and r.inputs["metadata"]["namespace"] == workload.namespace]
        assert owned == [], f"{workload.namespace}/{workload.name} must never become a resource meshlift owns"
        if workload.restart_revision is None:
            assert key not in restarts, f"{key}: nothing restarts before its wave"
            continue
        assert restarts[key] == workload.restart_revision, key
        assert kinds[key] == workload.kind, key
    for resource in run.of_type(RESTARTS_TYPE):
        assert not resource.retain_on_delete, f"{resource.urn}: deleting it must drop the annotations (restart back)"
        enrollment = run.named(resource.inputs["namespace"], type=ENROLLMENT)
        assert run.depends_on(resource, enrollment), f"{resource.urn} must wait for its namespace's enrollment"


def test_each_namespace_holds_its_restarts_in_one_resource_and_its_canaries_in_one_component(built):
    plan, run = built
    patched = [w for w in plan.workloads if w.restart_revision is not None]
    for component in run.of_type(WORKLOADS):
        held = run.children(component)
        assert [r.type for r in held] == [RESTARTS_TYPE], component.urn
        assert held[0].inputs["namespace"] == component.name, component.urn
    assert {r.name for r in run.of_type(WORKLOADS)} == {w.namespace for w in patched}
    for kind, planned in ((CANARIES, plan.canaries),):
        namespaces = {item.namespace for item in planned}
        components = {r.name: r for r in run.of_type(kind)}
        assert set(components) == namespaces, f"one {kind} per namespace with any"
        for namespace, component in components.items():
            held = sorted(r.inputs["metadata"]["name"] for r in run.children(component))
            assert held == sorted(item.name for item in planned if item.namespace == namespace), component.urn
            assert all(r.inputs["metadata"]["namespace"] == namespace for r in run.children(component))


def test_canaries_exist_exactly_as_planned(built):
    plan, run = built
    canaries = {r.inputs["metadata"]["name"]: r for r in run.of_type(DEPLOYMENT)
                if r.inputs["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == "canary"}
    assert set(canaries) == {c.name for c in plan.canaries}
    for planned in plan.canaries:
        deployment = canaries[planned.name]
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels[REVISION_LABEL] == planned.revision, deployment.urn
        assert deployment.name == f"{planned.namespace}.{planned.name}-deployment", deployment.urn
        assert deployment.parent == run.named(planned.namespace, type=CANARIES).urn, deployment.urn
        assert run.depends_on(deployment, run.named(f"istiod-{planned.revision}")), deployment.urn
        assert run.depends_on(deployment, run.named(planned.namespace, type=ENROLLMENT)), deployment.urn
        injector = run.named(f"revision-tags-pod-revision-{planned.revision}")
        assert run.depends_on(deployment, injector), f"{deployment.urn} must wait for the webhook injecting it"


def _as_wire(value):
    """Outputs travel as protobuf Struct values: every number is a float."""
    if isinstance(value, dict):
        return {k: _as_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_wire(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
