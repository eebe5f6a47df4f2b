"""Each gateway Deployment is labelled with the revision injecting its pods, so `istioctl analyze`
reads it only in that revision's view (see components.gateway)."""

from __future__ import annotations

from meshmodel.plan import REVISION_LABEL
from tests.components.configs import minimal
from tests.components.program import ProgramRun, Registration, run_program
from tests.label_selectors import selects

DEPLOYMENT_PATCH = "kubernetes:apps/v1:DeploymentPatch"
WEBHOOKS = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"
ROLLOUT = {"from": "1.30.3", "to": "1.31.0"}


def at(stage: str, **overrides) -> ProgramRun:
    return run_program(minimal(rollout={**ROLLOUT, "stage": stage}, **overrides))


def labels_of(run: ProgramRun) -> dict[str, str]:
    """Deployment name -> the `istio.io/rev` its patch writes, for every gateway label patch."""
    return {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"][REVISION_LABEL]
            for r in run.of_type(DEPLOYMENT_PATCH)}


def assert_sends_only_the_label(patch: Registration, *, deployment: str, revision: str) -> None:
    assert patch.inputs["apiVersion"] == "apps/v1" and patch.inputs["kind"] == "Deployment", patch.urn
    assert set(patch.inputs) == {"apiVersion", "kind", "metadata"}, f"{patch.urn} sends more than its label"
    metadata = patch.inputs["metadata"]
    assert (metadata["name"], metadata["namespace"]) == (deployment, "istio-ingress"), patch.urn
    assert metadata["labels"] == {REVISION_LABEL: revision}, patch.urn
    assert metadata["annotations"] == {"pulumi.com/patchFieldManager": "meshlift-gateway",
                                       "pulumi.com/patchForce": "true", "pulumi.com/skipAwait": "true"}, patch.urn
    # It goes only with its Deployment: nothing to hand back, and no apply to a Deployment already gone.
    assert patch.retain_on_delete, patch.urn


def test_a_tag_labelled_gateway_deployment_carries_the_revision_the_tag_resolves_to():
    run = at("install")
    patch = run.named("ingress-revision-label")
    assert_sends_only_the_label(patch, deployment="ingress", revision="1-30-3")
    release = run.named("ingress-release")
    assert release.inputs["values"]["revision"] == "stable", "the pods keep asking for the tag"
    assert patch.parent == run.named("ingress", type="meshlift:index:Gateway").urn, patch.urn
    assert run.depends_on(patch, release), f"{patch.urn} must follow the release that renders its Deployment"
    # What that revision's analysis sees: the configurations labelled with it; one of them injects the pods.
    pods = {"sidecar.istio.io/inject": "true", REVISION_LABEL: "stable", "app": "ingress", "istio": "ingress"}
    visible = [hook["name"] for c in run.of_type(WEBHOOKS)
               if c.inputs["metadata"]["labels"].get(REVISION_LABEL) == "1-30-3"
               for hook in c.inputs["webhooks"] if selects(hook["objectSelector"], pods)
               and hook["name"].endswith("istio.io") and selects(hook["namespaceSelector"], {})]
    assert visible == ["rev.object.sidecar-injector.istio.io"], visible


def test_the_canary_gateway_carries_its_own_revision_and_the_primary_follows_the_tag_at_promotion():
    canary = at("canary")
    assert labels_of(canary) == {"ingress": "1-30-3", "ingress-canary": "1-31-0"}
    patch = canary.named("ingress-canary-revision-label")
    assert_sends_only_the_label(patch, deployment="ingress-canary", revision="1-31-0")
    assert canary.depends_on(patch, canary.named("ingress-canary-release")), \
        f"{patch.urn} is removed before the canary release it labels"
    # Promoted: the canary release and its label are gone, the primary's label names the new revision.
    assert labels_of(at("promote")) == {"ingress": "1-31-0"}
    assert labels_of(at("cleanup")) == {"ingress": "1-31-0"}


def test_a_gateway_pinned_to_a_revision_name_is_labelled_with_it():
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable"},
                {"name": "edge", "namespace": "istio-ingress", "revision": "1-31-0"}]
    assert labels_of(at("install", gateways=gateways)) == {"ingress": "1-30-3", "edge": "1-31-0"}


def test_a_daemonset_gateway_gets_no_label_patch():
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable",
                 "values": {"kind": "DaemonSet"}}]
    run = at("canary", gateways=gateways)
    assert run.named("ingress-canary-release").inputs["values"]["kind"] == "DaemonSet"
    assert run.of_type(DEPLOYMENT_PATCH) == []


def test_an_adopted_gateway_release_is_labelled_once_imported():
    run = at("install", adopt=["istio-ingress/ingress"])
    patch = run.named("ingress-revision-label")
    assert patch.import_id == "", f"{patch.urn} is meshlift's own field, written, never imported"
    assert_sends_only_the_label(patch, deployment="ingress", revision="1-30-3")
    assert run.depends_on(patch, run.named("ingress-release")), patch.urn


def test_one_label_patch_per_gateway_release_and_none_behind_the_promotion_gate(passing_gate_hooks):
    gateways = [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable"},
                {"name": "egress", "namespace": "istio-egress", "revision": "stable"}]
    for stage in ("canary", "promote"):
        run = at(stage, gateways=gateways)
        releases = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "gateway"]
        patches = run.of_type(DEPLOYMENT_PATCH)
        assert sorted(p.inputs["metadata"]["name"] for p in patches) == sorted(r.inputs["name"] for r in releases)
        assert [p.urn for p in patches if p.hooks] == [], stage
