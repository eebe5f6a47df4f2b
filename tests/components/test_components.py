"""Focused behaviour of each component, through the real program under mocks."""

from __future__ import annotations

import gc

import pulumi
import pytest

import rollout.hooks
from meshmodel.plan import REVISION_LABEL
from tests.components.cluster import Cluster, live_workload
from tests.components.configs import minimal
from tests.components.program import ProgramRun, run_program, stack_config, with_rollout

NAMESPACE = "kubernetes:core/v1:Namespace"
PATCH = "kubernetes:core/v1:NamespacePatch"


def test_existing_namespace_is_patched_with_a_shared_field_manager_that_drops_istio_injection():
    namespaces = [{"name": "legacy", "revision": "stable", "create": False, "labels": {"team": "a"}}]
    run = run_program(minimal(namespaces=namespaces))
    assert all(r.inputs["metadata"]["name"] != "legacy" for r in run.of_type(NAMESPACE)), \
        "an existing namespace must never become a Namespace resource (taken over)"
    take, enroll = run.named("legacy-take-injection-label"), run.named("legacy-enrollment")
    assert take.type == enroll.type == PATCH
    for patch in (take, enroll):
        annotations = patch.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/patchForce"] == "true", patch.urn
        assert annotations["pulumi.com/patchFieldManager"] == "meshlift-enroll-legacy", patch.urn
    # With istio.io/rev in the same apply: the tag's webhook serves the namespace from this moment.
    assert take.inputs["metadata"]["labels"] == {"istio-injection": "", REVISION_LABEL: "stable", "team": "a"}, \
        take.urn
    # Re-applied later under the shared manager, it would drop istio.io/rev again.
    assert take.ignore_changes == ("metadata.labels",), take.urn
    assert enroll.ignore_changes == (), enroll.urn
    # Written as null (the provider drops it): left out of the shared manager's config.
    assert enroll.wire["metadata"]["labels"] == {"istio-injection": None, REVISION_LABEL: "stable", "team": "a"}
    assert run.depends_on(enroll, take), f"{enroll.urn} must run after {take.urn}"
    assert run.depends_on(enroll, run.named("revision-tags-stable")), enroll.urn


def test_no_namespace_meshlift_creates_or_imports_is_ever_deleted():
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable"},
                {"name": "edge", "namespace": "edge", "revision": "stable"}]
    namespaces = [{"name": "shop", "revision": "stable"}, {"name": "legacy", "revision": "stable", "create": False}]
    run = run_program(minimal(gateways=gateways, namespaces=namespaces, adopt=["istio-ingress/ingress"]))
    namespaces_declared = run.of_type(NAMESPACE)
    assert {r.name for r in namespaces_declared} == {
        "istio-base-namespace", "ingress-namespace", "edge-namespace", "shop-namespace"}
    assert run.named("ingress-namespace").import_id == "istio-ingress"
    for namespace in namespaces_declared:
        # Teams deploy into them, and a gateway's TLS secrets must live in its namespace.
        assert namespace.retain_on_delete, f"{namespace.urn} would be deleted with everything in it"
    # A patched namespace's labels are relinquished (its patch is not retained), the namespace is not touched.
    for patch in run.of_type(PATCH):
        assert not patch.retain_on_delete, patch.urn


def test_created_namespace_carries_the_revision_label_and_no_injection_label():
    run = run_program(minimal())
    namespace = run.named("shop-namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels[REVISION_LABEL] == "stable", namespace.urn
    assert "istio-injection" not in labels, namespace.urn
    assert run.depends_on(namespace, run.named("istiod-1-30-3")), namespace.urn


def test_gateway_namespace_is_not_labelled_for_injection_and_is_created_once_when_shared():
    gateways = [
        {"name": "ingress", "namespace": "edge", "revision": "stable"},
        {"name": "egress", "namespace": "edge", "revision": "1-30-3", "service": {"type": "ClusterIP"}},
    ]
    run = run_program(minimal(gateways=gateways))
    created = [r for r in run.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == "edge"]
    assert [r.name for r in created] == ["ingress-namespace"]
    assert set(created[0].inputs["metadata"].get("labels", {})) == {"app.kubernetes.io/managed-by"}
    egress = run.named("egress-release")
    assert run.depends_on(egress, created[0]), f"{egress.urn} must wait for the shared namespace"
    assert egress.inputs["values"]["revision"] == "1-30-3", egress.urn


def test_gateway_service_settings_and_replicas_are_sent_beside_passthrough_values():
    gateways = [{
        "name": "ingress", "namespace": "istio-ingress", "revision": "stable", "replicas": 3,
        "service": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443, "targetPort": 8443}]},
        "values": {"resources": {"requests": {"cpu": "1"}}, "service": {"loadBalancerSourceRanges": ["10.0.0.0/8"]}},
    }]
    release = run_program(minimal(gateways=gateways)).named("ingress-release")
    values = release.inputs["values"]
    assert values["replicaCount"] == 3, release.urn
    assert values["resources"] == {"requests": {"cpu": "1"}}, release.urn
    assert values["service"]["type"] == "ClusterIP"
    assert values["service"]["ports"] == [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]
    assert values["service"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"], release.urn
    assert values["podDisruptionBudget"] == {"minAvailable": 1}


def test_a_gateway_port_keeps_its_protocol_so_http3_shares_443_with_https():
    ports = [{"name": "https", "port": 443}, {"name": "http3", "port": 443, "protocol": "UDP"}]
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable", "service": {"ports": ports}}]
    release = run_program(minimal(gateways=gateways)).named("ingress-release")
    assert release.inputs["values"]["service"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"},
        {"name": "http3", "port": 443, "targetPort": 443, "protocol": "UDP"}], release.urn


def test_a_gateways_stated_hpa_is_sent_over_meshlifts_default():
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable", "replicas": 3,
                 "values": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6}}}]
    release = run_program(minimal(gateways=gateways)).named("ingress-release")
    values = release.inputs["values"]
    assert values["autoscaling"] == {"enabled": True, "minReplicas": 3, "maxReplicas": 6}, release.urn
    assert values["replicaCount"] == 3, release.urn


def test_istiod_holds_applications_in_both_forms_with_user_values_merged_on_top():
    run = run_program(with_rollout(stack_config("prod"), stage="install"))
    release = run.named("istiod-1-31-0-release")
    values = release.inputs["values"]
    assert values["meshConfig"]["defaultConfig"]["holdApplicationUntilProxyStarts"] is True, release.urn
    assert values["global"]["proxy"]["holdApplicationUntilProxyStarts"] is True, release.urn
    assert values["pilot"]["autoscaleMin"] == 3, f"{release.urn}: the stack's value wins"
    assert values["pilot"]["resources"]["requests"] == {"cpu": "1000m", "memory": "4096Mi"}
    assert values["pilot"]["autoscaleEnabled"] is True, f"{release.urn}: defaults the stack did not set remain"
    assert values["global"]["defaultPodDisruptionBudget"] == {"enabled": True}
    assert values["revisionTags"] == [], f"{release.urn}: tags are separate objects"
    assert values["global"]["istioNamespace"] == "istio-system"


def test_a_revision_may_turn_hold_application_off():
    revisions = [
        {"version": "1.30.3"},
        {"version": "1.31.0", "values": {"meshConfig": {"defaultConfig": {"holdApplicationUntilProxyStarts": False}}}},
    ]
    values = run_program(minimal(revisions=revisions)).named("istiod-1-31-0-release").inputs["values"]
    assert values["meshConfig"]["defaultConfig"]["holdApplicationUntilProxyStarts"] is False


def test_base_keeps_crds_through_helm_and_retains_the_control_plane_namespace():
    run = run_program(minimal())
    release, namespace = run.named("istio-base-release"), run.named("istio-base-namespace")
    assert namespace.retain_on_delete, f"{namespace.urn} holds the root CA"
    assert not release.retain_on_delete, f"{release.urn}: uninstalling must remove the default validator"
    assert release.inputs["values"]["base"]["enableCRDTemplates"] is True, release.urn
    assert release.inputs["skipCrds"] is True, f"{release.urn}: templated CRDs and crds/ would collide"
    assert run.depends_on(release, namespace), release.urn


def test_base_values_can_keep_crds_out_of_the_templates():
    run = run_program(minimal(baseValues={"base": {"enableCRDTemplates": False}}))
    release = run.named("istio-base-release")
    assert release.inputs["values"]["base"]["enableCRDTemplates"] is False, release.urn
    assert not release.inputs.get("skipCrds"), release.urn


def test_charts_come_from_the_configured_repository():
    run = run_program(minimal(chartRepository="oci://registry.example.com/istio"))
    istiod = run.named("istiod-1-30-3-release")
    assert istiod.inputs["chart"] == "oci://registry.example.com/istio/istiod", istiod.urn
    assert "repositoryOpts" not in istiod.inputs, istiod.urn
    https = run_program(minimal()).named("istiod-1-30-3-release")
    assert https.inputs["repositoryOpts"] == {"repo": "https://istio-release.storage.googleapis.com/charts"}


def test_workload_names_stay_distinct_when_namespace_and_workload_names_share_dashes():
    namespaces = [
        {"name": "a-b", "revision": "stable", "workloads": [{"name": "c", "canary": True}]},
        {"name": "a", "revision": "stable", "workloads": [{"name": "b-c", "canary": True}]},
    ]
    cluster = Cluster(live_workload("a-b", "c"), live_workload("a", "b-c"))
    canary = run_program(with_rollout(minimal(namespaces=namespaces), stage="canary"), cluster=cluster)
    clones = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
              for r in canary.of_type("kubernetes:apps/v1:Deployment")}
    assert clones == {("a-b", "c-canary"), ("a", "b-c-canary")}
    cleanup = run_program(with_rollout(minimal(namespaces=namespaces), stage="cleanup"), cluster=cluster)
    assert set(cleanup.restarts()) == {("a-b", "c"), ("a", "b-c")}


def test_gate_hooks_bind_to_the_promotion_resources_only(monkeypatch):
    seen = {}

    def gate_hooks(spec, plan, **options):
        seen["stage"] = plan.stage.value

        def gate(args):
            return None

        return pulumi.ResourceHookBinding(before_create=[gate], before_update=[gate])

    monkeypatch.setattr(rollout.hooks, "gate_hooks", gate_hooks)
    run = run_program(minimal(rollout={"from": "1.30.3", "to": "1.31.0", "stage": "promote", "promotedWaves": 1}))
    assert seen == {"stage": "promote"}
    hooked = {r.name for r in run if r.hooks}
    assert hooked == {"istio-base-release", "revision-tags-stable", "ingress-release", "shop-restarts"}
    for name in hooked:
        assert set(run.named(name).hooks) == {"before_create", "before_update"}, name
    # One registered hook per kind, shared by every promotion resource (not one per resource).
    assert sorted(run.hook_registrations) == ["meshlift-promotion-before_create-0",
                                              "meshlift-promotion-before_update-0"]
    for kind in ("before_create", "before_update"):
        assert {run.named(name).hooks[kind] for name in hooked} == {(f"meshlift-promotion-{kind}-0",)}, kind


def test_before_promotion_the_real_gate_hooks_nothing(monkeypatch, without_gate_hooks):
    monkeypatch.setattr(rollout.hooks, "gate_hooks", without_gate_hooks)
    for stage in ("install", "canary"):
        run = run_program(minimal(rollout={"from": "1.30.3", "to": "1.31.0", "stage": stage}))
        assert [r.urn for r in run if r.hooks] == [], stage


def test_an_error_inside_the_hooks_module_fails_the_program_before_any_resource(monkeypatch):
    def gate_hooks(spec, plan, **options):
        raise RuntimeError("gate misconfigured")

    monkeypatch.setattr(rollout.hooks, "gate_hooks", gate_hooks)
    record = ProgramRun()
    with pytest.raises(RuntimeError, match="gate misconfigured"):
        run_program(minimal(), record=record)
    assert record.stack_urn, "the program did run"
    assert [r.urn for r in record] == []


def test_the_orchestrators_real_gate_hooks_load_into_the_program(monkeypatch, without_gate_hooks):
    monkeypatch.setattr(rollout.hooks, "gate_hooks", without_gate_hooks)
    run = run_program(with_rollout(stack_config("dev"), stage="promote", promotedWaves=1))
    for name in ("revision-tags-stable", "istio-base-release", "shop-restarts"):
        assert set(run.named(name).hooks) == {"before_create", "before_update"}, name
    assert not run.named("shop-namespace").hooks


def test_preview_declares_the_same_resources_as_an_update():
    config = with_rollout(stack_config("prod"), stage="canary")
    preview, update = run_program(config, preview=True), run_program(config)
    assert sorted(r.urn for r in preview) == sorted(r.urn for r in update)
    assert preview.outputs == update.outputs


def test_canary_gateway_stays_one_replica_whatever_the_primarys_scaling_values():
    run = run_program(with_rollout(stack_config("prod"), stage="canary"))
    primary, canary = run.named("istio-ingressgateway-release"), run.named("istio-ingressgateway-canary-release")
    assert primary.inputs["values"]["autoscaling"] == {"enabled": True, "minReplicas": 4, "maxReplicas": 12}
    values = canary.inputs["values"]
    assert values["autoscaling"] == {"enabled": False}, canary.urn
    assert values["replicaCount"] == 1, canary.urn
    assert values["podDisruptionBudget"] == {}, canary.urn
    assert values["labels"] == primary.inputs["values"]["labels"], canary.urn


def test_full_gc_passes_are_deferred_while_the_program_runs_and_only_then():
    before = gc.get_threshold()
    run = run_program(minimal())
    assert run.gc_threshold[:2] == before[:2], "young collections keep their thresholds"
    # __main__.FULL_GC_EVERY_MIDDLE_PASSES: a full pass per 1,000 middle ones instead of Python's 10.
    assert run.gc_threshold[2] == 1000, run.gc_threshold
    assert gc.get_threshold() == before, "the harness restores the test process's GC settings"


def test_a_namespace_enrolled_by_revision_name_is_relabelled_only_behind_the_gate(passing_gate_hooks):
    namespaces = [{"name": "shop", "revision": "stable"}, {"name": "legacy", "revision": "1-30-3"}]
    run = run_program(minimal(namespaces=namespaces, rollout={"from": "1.30.3", "to": "1.31.0", "stage": "promote"}))
    legacy = [r for r in run if r.name.startswith("legacy")]
    assert legacy and all(set(r.hooks) == {"before_create", "before_update"} for r in legacy if r.custom)
    assert not [r for r in run if r.name.startswith("shop") and r.type.endswith("Namespace") and r.hooks]


def test_adopted_releases_and_their_namespaces_are_imported_and_nothing_else():
    revisions = [{"version": "1.30.3"}, {"version": "1.31.0"}]
    run = run_program(minimal(revisions=revisions,
                              adopt=["istio-system/istio-base", "istio-system/istiod-1-30-3", "istio-ingress/ingress"]))
    imported = {r.name: r.import_id for r in run if r.import_id}
    assert imported == {
        "istio-base-namespace": "istio-system",
        "istio-base-release": "istio-system/istio-base",
        "istiod-1-30-3-release": "istio-system/istiod-1-30-3",
        "ingress-namespace": "istio-ingress",
        "ingress-release": "istio-ingress/ingress",
    }
    # Imported, the base release and its namespace keep what meshlift always declares for them.
    assert run.named("istio-base-namespace").retain_on_delete
    assert run.named("istio-base-release").inputs["values"]["defaultRevision"] == "1-30-3"


def test_without_adopt_nothing_is_imported():
    assert not [r.urn for r in run_program(minimal()) if r.import_id]


def _injectors(run: ProgramRun, namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> list[str]:
    """`<configuration>/<webhook>` of meshlift's injection webhooks that a new pod matches, as the API server decides."""
    from tests.label_selectors import selects

    configurations = [*run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"),
                      *run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfigurationPatch")]
    return [f"{c.inputs['metadata']['name']}/{hook['name']}" for c in configurations for hook in c.inputs["webhooks"]
            if selects(hook["namespaceSelector"], namespace_labels) and selects(hook["objectSelector"], pod_labels)]


def test_a_default_tag_serves_istio_injection_enabled_namespaces_and_inject_true_pods_as_istio_does():
    run = run_program(minimal(tags={"stable": "1-30-3", "default": "1-30-3"}))
    default = run.named("revision-tags-default")
    assert default.inputs["metadata"]["name"] == "istio-revision-tag-default"
    assert default.inputs["metadata"]["labels"]["istio.io/tag"] == "default"
    hooks = {h["name"]: h for h in default.inputs["webhooks"]}
    assert list(hooks) == ["rev.namespace.sidecar-injector.istio.io", "rev.object.sidecar-injector.istio.io",
                           "namespace.sidecar-injector.istio.io", "object.sidecar-injector.istio.io"]
    # Istio's revision-tags-mwc.yaml, for the tag `default`:
    assert hooks["namespace.sidecar-injector.istio.io"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}
    assert hooks["object.sidecar-injector.istio.io"]["objectSelector"] == {"matchExpressions": [
        {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
        {"key": "istio.io/rev", "operator": "DoesNotExist"}]}
    assert {h["clientConfig"]["service"]["name"] for h in hooks.values()} == {"istiod-1-30-3"}
    # Each pod that used to rely on an unrevisioned istiod is injected exactly once.
    legacy = {"istio-injection": "enabled"}
    assert _injectors(run, legacy, {"app": "web"}) == ["istio-revision-tag-default/namespace.sidecar-injector.istio.io"]
    assert _injectors(run, legacy, {"app": "web", "sidecar.istio.io/inject": "false"}) == []
    gateway = {"sidecar.istio.io/inject": "true", "app": "istio-ingress"}
    assert _injectors(run, {}, gateway) == ["istio-revision-tag-default/object.sidecar-injector.istio.io"]
    assert _injectors(run, {"istio.io/rev": "stable"}, {"app": "web"}) == [
        "istio-revision-tag-stable/rev.namespace.sidecar-injector.istio.io"]


def test_without_a_default_tag_nothing_injects_legacy_labels():
    run = run_program(minimal())
    assert _injectors(run, {"istio-injection": "enabled"}, {"app": "web"}) == []
    assert _injectors(run, {}, {"sidecar.istio.io/inject": "true"}) == []


def test_while_a_namespace_is_enrolled_its_new_pods_are_injected_exactly_once():
    run = run_program(minimal(tags={"stable": "1-30-3", "default": "1-30-3"}))
    tag = "istio-revision-tag-stable/rev.namespace.sidecar-injector.istio.io"
    # Between the two enrolment patches: istio.io/rev set, istio-injection taken over as "".
    assert _injectors(run, {"istio.io/rev": "stable", "istio-injection": ""}, {"app": "web"}) == [tag]
    assert _injectors(run, {"istio.io/rev": "stable"}, {"app": "web"}) == [tag]
    # The legacy label still decides where it says enabled or disabled, as in Istio.
    assert _injectors(run, {"istio.io/rev": "stable", "istio-injection": "enabled"}, {"app": "web"}) == [
        "istio-revision-tag-default/namespace.sidecar-injector.istio.io"]
    assert _injectors(run, {"istio.io/rev": "stable", "istio-injection": "disabled"}, {"app": "web"}) == []
