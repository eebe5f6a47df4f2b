"""The 1.30.3 -> 1.31.0 canary upgrade of the dev stack, one `pulumi up` per stage.

dev: tag `stable` on 1-30-3, gateway `istio-ingressgateway` on `stable`,
namespaces `shop` (wave 1: frontend canary, cart) and `payments` (wave 2:
payments-api canary), both on `stable`. The Deployments were installed by their
teams (Helm); the config carries the inventory `meshlift upgrade` records of
them, and the program reads the live objects it clones.
"""

from __future__ import annotations

import pytest

from meshmodel.plan import CANARY_OF_LABEL, INJECT_REVISION_LABEL, PROXY_REVISION_ANNOTATION, REVISION_LABEL, TRACK_LABEL
from tests.components.cluster import Cluster, live_workload
from tests.components.program import ProgramRun, run_program, stack_config, with_rollout
from tests.label_selectors import selects

OLD, NEW = "1-30-3", "1-31-0"
GATEWAY = "istio-ingressgateway"
CLUSTER = Cluster(
    live_workload("shop", "frontend", replicas=2),
    live_workload("shop", "cart", replicas=1),
    live_workload("payments", "payments-api", replicas=2, port=9000),
)


def up(stage: str, promoted_waves: int = 0) -> ProgramRun:
    config = with_rollout(stack_config("dev"), stage=stage, promotedWaves=promoted_waves or None)
    config["meshlift:inventory"] = CLUSTER.inventory("shop", "payments")
    return run_program(config, stack="dev", cluster=CLUSTER)


@pytest.fixture(scope="module")
def stages() -> dict[str, ProgramRun]:
    return {
        "install": up("install"),
        "canary": up("canary"),
        "promote-0": up("promote"),
        "promote-1": up("promote", 1),
        "promote-2": up("promote", 2),
        "cleanup": up("cleanup"),
    }


def istiod_versions(run: ProgramRun) -> dict[str, str]:
    return {r.inputs["name"]: r.inputs["version"] for r in run.of_type("kubernetes:helm.sh/v3:Release")
            if r.inputs["chart"] == "istiod"}


def tag_target(run: ProgramRun, tag: str = "stable") -> str:
    webhook = run.named(f"revision-tags-{tag}")
    labelled = webhook.inputs["metadata"]["labels"][REVISION_LABEL]
    services = {w["clientConfig"]["service"]["name"] for w in webhook.inputs["webhooks"]}
    assert services == {f"istiod-{labelled}"}, f"{webhook.urn}: label and Service disagree"
    return labelled


def restart_revision(run: ProgramRun, namespace: str, workload: str) -> str | None:
    """The value meshlift's restart gives the workload's pod-template annotation (None: not restarted)."""
    return run.restarts().get((namespace, workload))


def live_pod_labels(namespace: str, workload: str) -> dict[str, str]:
    return CLUSTER.read("Deployment", f"{namespace}/{workload}")["spec"]["template"]["metadata"]["labels"]


def canaries(run: ProgramRun) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type("kubernetes:apps/v1:Deployment")
            if r.inputs["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == "canary"}


def test_install_runs_the_new_revision_beside_the_old_one_without_moving_anything(stages):
    run = stages["install"]
    assert istiod_versions(run) == {"istiod-1-30-3": "1.30.3", "istiod-1-31-0": "1.31.0"}
    base = run.named("istio-base-release")
    assert base.inputs["version"] == "1.31.0", f"{base.urn}: CRDs must be the newest revision's"
    assert base.inputs["values"]["defaultRevision"] == OLD, base.urn
    assert tag_target(run) == OLD
    assert run.named(f"{GATEWAY}-release").inputs["version"] == "1.30.3"
    assert run.maybe(f"{GATEWAY}-canary-release") is None
    assert canaries(run) == {}
    assert run.reads == [], "nothing is cloned before the canary stage"
    assert {restart_revision(run, ns, w) for ns, w in (("shop", "frontend"), ("shop", "cart"),
                                                       ("payments", "payments-api"))} == {None}, \
        "a workload meshlift never patched is not touched before its wave"
    assert run.outputs["stage"] == "install"


def test_canary_clones_the_live_deployments_onto_the_new_revision(stages):
    run = stages["canary"]
    found = canaries(run)
    assert set(found) == {"frontend-canary", "payments-api-canary"}  # cart gets no canary
    assert sorted((r.id, r.type) for r in run.reads) == [
        ("payments/payments-api", "kubernetes:apps/v1:Deployment"), ("shop/frontend", "kubernetes:apps/v1:Deployment")]
    live = CLUSTER.read("Deployment", "shop/frontend")
    frontend = found["frontend-canary"]
    template = frontend["spec"]["template"]
    assert template["spec"]["containers"] == [_as_wire(c) for c in live["spec"]["template"]["spec"]["containers"]]
    assert template["metadata"]["labels"] == {
        **live["spec"]["template"]["metadata"]["labels"],  # app and version: the Service routes to it
        REVISION_LABEL: NEW, INJECT_REVISION_LABEL: NEW, CANARY_OF_LABEL: "frontend", TRACK_LABEL: "canary"}
    assert frontend["spec"]["selector"]["matchLabels"] == {CANARY_OF_LABEL: "frontend", TRACK_LABEL: "canary"}
    assert frontend["spec"]["replicas"] == 1
    assert frontend["metadata"]["namespace"] == "shop"
    annotations = template["metadata"]["annotations"]
    assert '"holdApplicationUntilProxyStarts": true' in annotations["proxy.istio.io/config"]
    assert annotations["prometheus.io/scrape"] == "true", "the live template's annotations stay"
    recorded = {w["name"]: w["templateHash"] for w in CLUSTER.inventory("shop")["shop"]}
    assert frontend["metadata"]["annotations"]["meshlift.io/source-template-hash"] == recorded["frontend"], \
        "the clone records the same fingerprint the inventory took from the API server"
    # Nothing moved yet: the tag stays, and no live workload is patched.
    assert tag_target(run) == OLD
    assert restart_revision(run, "shop", "frontend") is None
    assert run.outputs["canaries"] == [
        {"namespace": "shop", "name": "frontend-canary", "workload": "frontend", "kind": "Deployment",
         "selector": {CANARY_OF_LABEL: "frontend", TRACK_LABEL: "canary"}, "revision": NEW,
         "expectedProxyVersion": "1.31.0"},
        {"namespace": "payments", "name": "payments-api-canary", "workload": "payments-api", "kind": "Deployment",
         "selector": {CANARY_OF_LABEL: "payments-api", TRACK_LABEL: "canary"}, "revision": NEW,
         "expectedProxyVersion": "1.31.0"},
    ]


def _as_wire(value):
    """Inputs travel as protobuf Struct values: every number is a float."""
    if isinstance(value, dict):
        return {k: _as_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_wire(v) for v in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def test_canary_gateway_shares_the_primary_selector_without_a_service_of_its_own(stages):
    run = stages["canary"]
    primary, canary = run.named(f"{GATEWAY}-release"), run.named(f"{GATEWAY}-canary-release")
    assert canary.inputs["name"] == f"{GATEWAY}-canary", canary.urn
    assert canary.inputs["version"] == "1.31.0", canary.urn
    assert canary.inputs["values"]["revision"] == NEW, canary.urn
    assert canary.inputs["values"]["service"]["type"] == "None", canary.urn
    assert canary.inputs["values"]["labels"] == primary.inputs["values"]["labels"] == {
        "app": GATEWAY, "istio": "ingressgateway"}
    assert primary.inputs["values"]["service"]["type"] == "NodePort", primary.urn
    assert primary.inputs["version"] == "1.30.3", f"{primary.urn}: the primary stays put during the canary"
    assert run.depends_on(canary, run.named("istiod-1-31-0")), canary.urn
    assert run.outputs["gateways"][GATEWAY]["canary"] == {
        "name": f"{GATEWAY}-canary", "revision": NEW, "version": "1.31.0"}


def test_canary_pods_are_injected_by_their_own_revision_in_a_tag_enrolled_namespace(stages):
    """The selectors, evaluated as the API server would, send each pod to exactly one istiod."""
    run = stages["canary"]
    configurations = [*run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"),
                      *run.of_type("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfigurationPatch")]
    webhooks = [hook for r in configurations for hook in r.inputs["webhooks"]]
    shop = run.named("shop-namespace").inputs["metadata"]["labels"]
    stable = live_pod_labels("shop", "frontend")
    canary = run.named("shop.frontend-canary-deployment").inputs["spec"]["template"]["metadata"]["labels"]

    def injected_by(namespace_labels, pod_labels):
        return [h["clientConfig"]["service"]["name"] for h in webhooks
                if _selects(h["namespaceSelector"], namespace_labels) and _selects(h["objectSelector"], pod_labels)]

    assert injected_by(shop, stable) == [f"istiod-{OLD}"]
    assert injected_by(shop, canary) == [f"istiod-{NEW}"]
    # The injection template labels pods with the injecting revision; no other webhook
    # may match the mutated pod, or it would be injected twice.
    assert injected_by(shop, {**stable, REVISION_LABEL: OLD}) == [f"istiod-{OLD}"]
    assert injected_by(shop, {**canary, REVISION_LABEL: NEW}) == [f"istiod-{NEW}"]
    assert injected_by(shop, {**stable, REVISION_LABEL: NEW}) == [f"istiod-{OLD}"], \
        "a pod's istio.io/rev alone changes nothing (Istio's own precedence)"
    # Gateway pods (own namespace, no label on it) go by their tag label.
    gateway_pod = {"istio.io/rev": "stable", "sidecar.istio.io/inject": "true"}
    assert injected_by({"kubernetes.io/metadata.name": "istio-ingress"}, gateway_pod) == [f"istiod-{OLD}"]
    canary_gateway_pod = {"istio.io/rev": NEW, "sidecar.istio.io/inject": "true"}
    assert injected_by({}, canary_gateway_pod) == []  # istiod-1-31-0's own chart webhook takes these


def _selects(selector: dict, labels: dict) -> bool:
    return selects(selector, labels)


def test_promote_moves_the_tag_and_default_and_cuts_gateways_over_but_restarts_no_wave_yet(stages):
    run = stages["promote-0"]
    assert tag_target(run) == NEW
    base = run.named("istio-base-release")
    assert base.inputs["values"]["defaultRevision"] == NEW, base.urn
    gateway = run.named(f"{GATEWAY}-release")
    assert gateway.inputs["version"] == "1.31.0", gateway.urn
    assert gateway.inputs["values"]["revision"] == "stable", gateway.urn
    # The tag's move changes no chart value; the annotation is what restarts the pods.
    assert gateway.inputs["values"]["podAnnotations"][PROXY_REVISION_ANNOTATION] == NEW, gateway.urn
    assert run.maybe(f"{GATEWAY}-canary-release") is None
    assert canaries(run) == {}
    assert restart_revision(run, "shop", "frontend") is None
    assert restart_revision(run, "payments", "payments-api") is None


def test_promote_restarts_wave_by_wave(stages):
    wave_1, wave_2 = stages["promote-1"], stages["promote-2"]
    assert restart_revision(wave_1, "shop", "frontend") == restart_revision(wave_1, "shop", "cart") == NEW
    assert restart_revision(wave_1, "payments", "payments-api") is None
    assert restart_revision(wave_2, "payments", "payments-api") == NEW
    assert [w["proxyVersion"] for w in wave_1.outputs["workloads"]] == ["1.31.0", "1.31.0", "1.30.3"]


def test_cleanup_removes_the_old_revision_and_nothing_else(stages):
    run, before = stages["cleanup"], stages["promote-2"]
    assert istiod_versions(run) == {"istiod-1-31-0": "1.31.0"}
    assert run.maybe("istiod-1-30-3") is None
    assert run.outputs["removedRevisions"] == [OLD]
    assert tag_target(run) == NEW
    remaining = {r.urn for r in run}
    removed = {r.urn for r in before} - remaining
    assert {urn.rsplit("::", 1)[-1] for urn in removed} == {
        "istiod-1-30-3", "istiod-1-30-3-release", "revision-tags-pod-revision-1-30-3"}


def test_rolling_back_a_stage_moves_the_same_tag_object_back(stages):
    promoted, canary = stages["promote-0"], stages["canary"]
    # Same URN in both stages: going back is an update of the webhook, not a new object.
    assert promoted.named("revision-tags-stable").urn == canary.named("revision-tags-stable").urn
    assert (tag_target(promoted), tag_target(canary)) == (NEW, OLD)
