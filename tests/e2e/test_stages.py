"""`pulumi up` of every stage on a fresh cluster: the real CLI, provider, charts and API server.

The objects each stage leaves are read back through the Kubernetes API: the Helm
releases (as Helm records them), the revisions' istiod Deployments, the default
validator, the tag webhooks, the gateway namespace and its canary (each Deployment
labelled with the revision injecting it), the namespace labels. istiod pods are served by the real pilot-discovery of their release, so
the gateway pods are injected by Istio's own injector.
"""

from __future__ import annotations

import pytest

from checks.kube import injected_revision
from meshmodel.proxy_profile import ProxyProfile, istiod_values
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.istioctl import Istioctl, TagRow
from tests.e2e.kube import Kube, eventually, injecting_webhooks
from tests.e2e.stacks import FROM, FROM_REV, TO, TO_REV, mesh_stack

STACK = "e2e"
GATEWAY_NAMESPACE, GATEWAY = "istio-ingress", "istio-ingressgateway"  # its release and Deployment


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("stages", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def test_each_stage_applies_on_the_real_engine(project, cluster, chart_repository, built_toolchain) -> None:
    kube = Kube.of(cluster)
    istioctl = Istioctl.of(cluster, built_toolchain)
    project.write_stack(STACK, mesh_stack(cluster, chart_repository, stage="install"))
    project.init_stack(STACK)

    up = project.up(STACK, label="pulumi up: install")
    assert up.returncode == 0, up.output

    releases = kube.helm_releases("istio-system")
    # istio/base (the CRDs every revision shares) is as new as the newest revision.
    assert {name: r["chart"]["metadata"]["version"] for name, r in releases.items()} == {
        "istio-base": TO, f"istiod-{FROM_REV}": FROM, f"istiod-{TO_REV}": TO,
    }
    assert releases[f"istiod-{TO_REV}"]["config"]["revision"] == TO_REV
    # The production proxy profile reached each revision's release values, as Helm recorded them.
    profile = istiod_values(ProxyProfile())
    for revision in (FROM_REV, TO_REV):
        values = releases[f"istiod-{revision}"]["config"]
        assert values["meshConfig"]["accessLogFormat"] == profile["meshConfig"]["accessLogFormat"]
        assert values["global"]["proxy"]["logLevel"] == profile["global"]["proxy"]["logLevel"]
    for revision in (FROM_REV, TO_REV):
        assert kube.available("istio-system", f"istiod-{revision}")
    validator = kube.validating_webhooks()["istiod-default-validator"]
    assert {w.client_config.service.name for w in validator.webhooks} == {f"istiod-{FROM_REV}"}
    # Only the tag webhooks carry `istio.io/tag`: istioctl and istiod take whatever does for a tag.
    tagged = kube.admission.list_mutating_webhook_configuration(label_selector="istio.io/tag").items
    assert [w.metadata.name for w in tagged] == ["istio-revision-tag-stable"]
    tag = kube.mutating_webhooks()["istio-revision-tag-stable"]
    assert tag.metadata.labels["istio.io/tag"] == "stable" and tag.metadata.labels["istio.io/rev"] == FROM_REV
    assert {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{FROM_REV}"}

    # The gateway lives in its own namespace, not opted out of injection, and its pods are
    # injected by the stable revision's real injector.
    assert "istio-injection" not in kube.namespace_labels("istio-ingress")
    gateway_pods = eventually(lambda: [
        p for p in kube.core.list_namespaced_pod("istio-ingress", label_selector="app=istio-ingressgateway").items
        if p.status.phase == "Running"], what="gateway pods running")
    assert {injected_revision(p) for p in gateway_pods} == {FROM_REV}
    assert kube.helm_releases("istio-ingress")["istio-ingressgateway"]["chart"]["metadata"]["version"] == FROM

    for namespace in ("shop", "payments"):
        labels = kube.namespace_labels(namespace)
        assert labels.get("istio.io/rev") == "stable" and "istio-injection" not in labels
        assert injecting_webhooks(kube, labels, {"app": "x"}) == [
            "istio-revision-tag-stable/rev.namespace.sidecar-injector.istio.io"]
    # Istio's own istioctl reads the tag the stack declares, and the new revision as a revision no tag uses.
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: FROM_REV}
    istioctl.assert_reads(TagRow("stable", FROM_REV, ("payments", "shop")), TagRow("", TO_REV))

    project.set_rollout(STACK, stage="canary")
    up = project.up(STACK, label="pulumi up: canary")
    assert up.returncode == 0, up.output
    canary = kube.helm_releases("istio-ingress")["istio-ingressgateway-canary"]
    assert canary["chart"]["metadata"]["version"] == TO and canary["config"]["revision"] == TO_REV
    canary_pods = eventually(lambda: [
        p for p in kube.core.list_namespaced_pod("istio-ingress", label_selector="app=istio-ingressgateway").items
        if p.status.phase == "Running" and injected_revision(p) == TO_REV], what="canary gateway pod injected")
    assert len(canary_pods) == 1
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: FROM_REV, f"{GATEWAY}-canary": TO_REV}
    istioctl.assert_reads(TagRow("stable", FROM_REV, ("payments", "shop")), TagRow("", TO_REV))
