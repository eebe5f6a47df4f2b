"""Injection as Istio's own tools and istiod read it, on the real engine and Istio's real injector.

Both revisions installed, tags `stable` and `default` on the old one. Read back
through the API, and judged by real pods that Istio's injector (the real
pilot-discovery of each revision) injects:

- the configurations labelled `istio.io/tag` (what istiod and `istioctl tag list`
  take for tags) are the two tags; Istio's own `istioctl tag list` shows exactly
  them and the new revision (no tag points at it), and `istioctl analyze -A`
  raises nothing, by default or for either revision, the gateway Deployment
  labelled with the revision injecting it (tests/e2e/istioctl.py). meshlift's pod-revision configurations (named
  `meshlift-pod-revision-<rev>`, so a reader knows them) carry `istio.io/rev=<rev>`
  only, so `istioctl tag generate --revision <rev>` finds two injectors for the
  revision and refuses: the cost of listing the tags right;
- meshlift's pod-revision webhook gets its CA from istiod (a pod it matches is
  created, and injected by the revision it asks for), and keeps it through a Helm
  upgrade of the revision's release, after which a preview proposes no change;
- the tag `default` injects a namespace labelled `istio-injection=enabled` that
  meshlift does not list, and a pod labelled `sidecar.istio.io/inject: "true"`.
"""

from __future__ import annotations

import pytest

from checks.kube import injected_revision
from meshmodel.plan import INJECT_REVISION_LABEL
from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.istioctl import Istioctl, TagRow
from tests.e2e.kube import Kube, eventually
from tests.e2e.stacks import FROM_REV, TO_REV, mesh_stack

STACK = "injection"
POD_REVISION = "pod-revision.sidecar-injector.istio.io"


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("injection", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def bare_pod(kube: Kube, namespace: str, name: str, labels: dict[str, str]) -> None:
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    }, field_manager=TEAM_MANAGER)


def revision_of(kube: Kube, namespace: str, name: str) -> str | None:
    return injected_revision(kube.core.read_namespaced_pod(name, namespace))


def pod_revision_entry(kube: Kube, revision: str):
    """(meshlift's pod-revision webhook, the revision's chart injector)."""
    webhooks = kube.mutating_webhooks()
    own = webhooks.get(f"meshlift-pod-revision-{revision}")
    entry = next((w for w in own.webhooks if w.name == POD_REVISION), None) if own is not None else None
    return entry, webhooks[f"istio-sidecar-injector-{revision}"]


def with_ca(found):
    """`(entry, injector)` once the entry exists and carries a CA bundle, else None."""
    entry, _ = found
    return found if entry is not None and entry.client_config.ca_bundle else None


def test_injection_webhooks_as_istioctl_and_istiod_read_them(project, cluster, chart_repository,
                                                             built_toolchain) -> None:
    kube = Kube.of(cluster)
    kube.core.create_namespace({"metadata": {"name": "legacy", "labels": {"istio-injection": "enabled"}}},
                               field_manager=TEAM_MANAGER)
    kube.core.create_namespace({"metadata": {"name": "gateways-by-hand"}}, field_manager=TEAM_MANAGER)
    config = mesh_stack(cluster, chart_repository, namespaces=[{"name": "shop", "revision": "stable"}],
                        tags={"stable": FROM_REV, "default": FROM_REV})
    project.write_stack(STACK, config)
    project.init_stack(STACK)
    up = project.up(STACK, label="pulumi up: tags stable and default")
    assert up.returncode == 0, up.output

    tagged = kube.admission.list_mutating_webhook_configuration(label_selector="istio.io/tag").items
    assert sorted(w.metadata.name for w in tagged) == ["istio-revision-tag-default", "istio-revision-tag-stable"]
    for revision in (FROM_REV, TO_REV):
        own = kube.admission.list_mutating_webhook_configuration(
            label_selector=f"istio.io/rev={revision},!istio.io/tag").items
        assert sorted(w.metadata.name for w in own) == [
            f"istio-sidecar-injector-{revision}", f"meshlift-pod-revision-{revision}"]
        # istiod patched its CA into meshlift's webhook as into the chart's own.
        entry, injector = eventually(lambda: with_ca(pod_revision_entry(kube, revision)),
                                     what=f"the pod-revision entry of {revision} with istiod's CA")
        chart_bundles = {w.client_config.ca_bundle for w in injector.webhooks}
        assert chart_bundles == {entry.client_config.ca_bundle}

    istioctl = Istioctl.of(cluster, built_toolchain)
    assert kube.deployment_revisions("istio-ingress") == {"istio-ingressgateway": FROM_REV}
    istioctl.assert_reads(TagRow("default", FROM_REV), TagRow("stable", FROM_REV, ("shop",)), TagRow("", TO_REV))
    generated = istioctl.run("tag", "generate", "probe", "--revision", TO_REV)
    assert generated.returncode != 0
    assert f'found multiple canonical webhooks or services with revision "{TO_REV}"' in generated.stderr, generated

    # A canary-style pod asking for the new revision in a tag-enrolled namespace.
    bare_pod(kube, "shop", "asks-for-new", {"app": "web", INJECT_REVISION_LABEL: TO_REV, "istio.io/rev": TO_REV})
    bare_pod(kube, "shop", "plain", {"app": "web"})
    assert revision_of(kube, "shop", "asks-for-new") == TO_REV
    assert revision_of(kube, "shop", "plain") == FROM_REV
    # What an unrevisioned istiod used to serve, served by the tag `default`.
    bare_pod(kube, "legacy", "legacy-web", {"app": "legacy"})
    bare_pod(kube, "gateways-by-hand", "gateway", {"app": "gw", "sidecar.istio.io/inject": "true"})
    bare_pod(kube, "gateways-by-hand", "not-meshed", {"app": "other"})
    assert revision_of(kube, "legacy", "legacy-web") == FROM_REV
    assert revision_of(kube, "gateways-by-hand", "gateway") == FROM_REV
    assert revision_of(kube, "gateways-by-hand", "not-meshed") is None

    # A Helm upgrade of the revision's release (its injector's own entries change) keeps meshlift's webhook.
    config["meshlift:revisions"][1]["values"] = {"sidecarInjectorWebhook": {"reinvocationPolicy": "IfNeeded"}}
    project.write_stack(STACK, config)
    up = project.up(STACK, label="pulumi up: the new revision's release upgraded")
    assert up.returncode == 0, up.output
    assert kube.helm_releases("istio-system")[f"istiod-{TO_REV}"]["version"] == 2
    entry, injector = pod_revision_entry(kube, TO_REV)
    assert entry is not None and entry.client_config.ca_bundle
    assert {w.reinvocation_policy for w in injector.webhooks} == {"IfNeeded"}
    again = project.pulumi("preview", "--expect-no-changes", stack=STACK)
    assert again.returncode == 0, again.output
    bare_pod(kube, "shop", "asks-for-new-again", {"app": "web", INJECT_REVISION_LABEL: TO_REV,
                                                  "istio.io/rev": TO_REV})
    assert revision_of(kube, "shop", "asks-for-new-again") == TO_REV
