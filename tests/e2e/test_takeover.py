"""Taking over an Istio that was installed with Helm, the way Istio's docs do it.

Before meshlift: `istio-base`, an `istiod` without a revision and the `istio-ingress`
gateway, installed by the helm CLI from the same charts; the team namespace `shop`
labelled `istio-injection=enabled` and `payments` not in the mesh, each with a
Deployment already running (shop's pods injected by that istiod). The stack adopts
the two releases it also declares (`meshlift:adopt`); the first `pulumi up` imports
them and upgrades them to the config, installs meshlift's revision beside the
unrevisioned istiod, and moves both namespaces onto meshlift's tag.
"""

from __future__ import annotations

import pytest

from checks.kube import injected_revision
from rollout.cluster_rehearsal import TEAM_MANAGER, create_teams, restart_teams
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.helm_install import HelmCli, install_istio_as_documented
from tests.e2e.kube import Kube, eventually, injecting_webhooks
from tests.e2e.stacks import FROM, FROM_REV, takeover_stack

STACK = "takeover"
TAG_INJECTOR = "istio-revision-tag-stable/rev.namespace.sidecar-injector.istio.io"


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("takeover", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def running_revisions(kube: Kube, namespace: str, selector: str) -> set[str | None]:
    return {injected_revision(p) for p in kube.core.list_namespaced_pod(namespace, label_selector=selector).items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def test_takes_over_a_helm_installed_istio(project, cluster, chart_repository, built_toolchain, tmp_path) -> None:
    kube = Kube.of(cluster)
    install_istio_as_documented(HelmCli(built_toolchain, cluster, chart_repository, tmp_path / "helm"), FROM)
    create_teams(kube.core, kube.apps)
    kube.core.patch_namespace("shop", {"metadata": {"labels": {"istio-injection": "enabled"}}},
                              field_manager=TEAM_MANAGER)
    restart_teams(kube.apps, kube.custom)
    eventually(lambda: running_revisions(kube, "shop", "app=web") == {"default"},
               what="shop's pods injected by the unrevisioned istiod")
    # The premise: today the unrevisioned istiod's own webhook injects shop.
    assert injecting_webhooks(kube, kube.namespace_labels("shop"), {"app": "web"}) == [
        "istio-sidecar-injector/namespace.sidecar-injector.istio.io"]

    project.write_stack(STACK, takeover_stack(cluster, chart_repository))
    project.init_stack(STACK)
    up = project.up(STACK, label="pulumi up: take over a Helm-installed Istio")
    assert up.returncode == 0, up.output

    releases = kube.helm_releases("istio-system")
    # istio-base was upgraded in place (Helm revision 2), not installed anew; the team's
    # istiod is untouched; meshlift's revision runs beside it.
    assert releases["istio-base"]["version"] == 2
    assert releases["istio-base"]["config"]["defaultRevision"] == FROM_REV
    assert releases["istiod"]["version"] == 1
    assert releases[f"istiod-{FROM_REV}"]["chart"]["metadata"]["version"] == FROM
    assert kube.available("istio-system", f"istiod-{FROM_REV}")
    validator = kube.validating_webhooks()["istiod-default-validator"]
    assert {w.client_config.service.name for w in validator.webhooks} == {f"istiod-{FROM_REV}"}

    gateway = kube.helm_releases("istio-ingress")["istio-ingress"]
    assert gateway["version"] == 2 and gateway["config"]["revision"] == "stable"
    eventually(lambda: running_revisions(kube, "istio-ingress", "app=istio-ingress") == {FROM_REV},
               what="the adopted gateway's pods on meshlift's revision")

    # Every enrolled namespace: the legacy label gone, meshlift's tag set, and exactly the
    # tag's injector matches a new pod there (none of the unrevisioned istiod's webhooks).
    for namespace, app in (("shop", "web"), ("payments", "api")):
        labels = kube.namespace_labels(namespace)
        assert labels.get("istio.io/rev") == "stable" and "istio-injection" not in labels, labels
        assert injecting_webhooks(kube, labels, {"app": app}) == [TAG_INJECTOR]
    # The teams' Deployments were not restarted by the takeover; their next restart injects
    # meshlift's revision, through Istio's real injector.
    assert running_revisions(kube, "shop", "app=web") == {"default"}
    restart_teams(kube.apps, kube.custom, restarted_at="after-the-takeover")
    for namespace, app in (("shop", "web"), ("payments", "api")):
        eventually(lambda: running_revisions(kube, namespace, f"app={app}") == {FROM_REV}, timeout=90,
                   what=f"{namespace}/{app} restarted onto {FROM_REV}")

    # Adoption happens once: the next run has nothing to import and nothing to change.
    again = project.pulumi("preview", "--expect-no-changes", stack=STACK)
    assert again.returncode == 0, again.output
