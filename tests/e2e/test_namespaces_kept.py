"""Namespaces that teams use are never deleted or taken over, on the real engine.

Before meshlift: the teams' namespaces `shop` and `payments`, each with a
Deployment, created under the team's own field manager. Then:

- listing `shop` with `create: true` (the default) is refused by `meshlift upgrade`
  before anything is recorded or applied: exit 2, the key and the fix named, the
  namespace untouched;
- after a `pulumi up` that creates `fresh` and the gateway's namespace, the teams
  put a Deployment and Secrets there (and a TLS Secret beside the gateway);
  un-listing `fresh` and `shop` keeps both with everything in them (`shop` loses
  only meshlift's label), `meshlift plan` says so beforehand, and `pulumi destroy`
  keeps every namespace and what is in it.
"""

from __future__ import annotations

import json

import pytest

from rollout.cluster_rehearsal import TEAM_MANAGER, create_teams, stack_config, team_deployment
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.kube import Kube
from tests.e2e.stacks import TO


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    cluster = cluster_with_istiod("kept", clusters, built_toolchain, istiod_runners, tmp_path_factory)
    kube = Kube.of(cluster)
    create_teams(kube.core, kube.apps)
    return cluster


def team_secret(kube: Kube, namespace: str, name: str) -> None:
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": {"key": "value"}},
                                       field_manager=TEAM_MANAGER)


# What the teams put in each namespace: (Deployments, Secrets).
TEAM_OBJECTS = {
    "fresh": ({"cache"}, {"cache-password"}),
    "shop": ({"web"}, {"web-password"}),
    "payments": ({"api"}, set()),
    "istio-ingress": (set(), {"shop-example-com-tls"}),
}


def team_objects(kube: Kube, namespace: str) -> tuple[set[str], set[str]]:
    """The Deployments and Secrets of a namespace that its team (not meshlift or Helm) created."""
    def by_team(items: list) -> set[str]:
        return {i.metadata.name for i in items
                if any(f.manager == TEAM_MANAGER for f in i.metadata.managed_fields or [])}

    return (by_team(kube.apps.list_namespaced_deployment(namespace).items),
            by_team(kube.core.list_namespaced_secret(namespace).items))


def test_create_true_on_an_existing_namespace_exits_2_and_changes_nothing(project, cluster, chart_repository):
    kube = Kube.of(cluster)
    before = kube.core.read_namespace("shop").metadata
    config = stack_config(cluster.kubeconfig, cluster.context, chart_repository.url)
    config["meshlift:namespaces"][0]["create"] = True  # shop exists: its team created it
    project.write_stack("refused", config)
    project.init_stack("refused")

    # KUBECONFIG: the prerequisite check looks for the stack's context there (not in kubernetes:kubeconfig).
    result = project.meshlift("upgrade", "-s", "refused", "--to", TO, env={"KUBECONFIG": str(cluster.kubeconfig)},
                              label="meshlift upgrade: create: true refused")

    assert result.returncode == 2, result.output
    assert "conflicts with what the cluster already holds (1 problem(s)); nothing changed" in result.stderr
    assert ("meshlift:namespaces[0].create: namespace 'shop' already exists and was not created by meshlift"
            in result.stderr), result.stderr
    assert "Set `create: false`" in result.stderr
    after = kube.core.read_namespace("shop").metadata
    assert after.resource_version == before.resource_version and after.labels == before.labels
    assert kube.helm_releases("istio-system") == {}
    history = project.pulumi("stack", "history", "--json", stack="refused")
    assert history.returncode == 0 and json.loads(history.stdout or "[]") == [], history.output
    assert not (project.directory / ".meshlift" / "refused" / "run.json").exists()


def test_unlisting_and_destroy_keep_namespaces_and_everything_in_them(project, cluster, chart_repository):
    kube = Kube.of(cluster)
    config = stack_config(cluster.kubeconfig, cluster.context, chart_repository.url)
    config["meshlift:namespaces"].append({"name": "fresh", "revision": "stable", "wave": 1})
    project.write_stack("kept", config)
    project.init_stack("kept")
    up = project.up("kept", label="pulumi up: fresh created, shop and payments patched")
    assert up.returncode == 0, up.output
    assert kube.namespace_labels("fresh")["istio.io/rev"] == "stable"
    assert kube.namespace_labels("shop")["istio.io/rev"] == "stable"

    # The teams use what meshlift made: a workload in `fresh`, a TLS secret beside the gateway.
    kube.apps.create_namespaced_deployment("fresh", team_deployment("fresh", "cache"), field_manager=TEAM_MANAGER)
    team_secret(kube, "fresh", "cache-password")
    team_secret(kube, "shop", "web-password")
    team_secret(kube, "istio-ingress", "shop-example-com-tls")
    for namespace, held in TEAM_OBJECTS.items():
        assert team_objects(kube, namespace) == held, namespace

    # Un-list `fresh` and `shop`: the plan says what happens before anything does.
    config["meshlift:namespaces"] = [ns for ns in config["meshlift:namespaces"] if ns["name"] == "payments"]
    project.write_stack("kept", config)
    plan = project.meshlift("plan", "-s", "kept", "--to", TO, "--json", label="meshlift plan: un-listed namespaces")
    assert plan.returncode == 0, plan.output
    notes = json.loads(plan.stdout)["cluster"]["notes"]
    assert len(notes) == 2, notes
    assert notes[0].startswith("namespace fresh is no longer listed: it is kept with everything in it")
    assert notes[1].startswith("namespace shop is no longer listed: the next `pulumi up` removes the "
                               "istio.io/rev=stable label")

    up = project.up("kept", label="pulumi up: fresh and shop un-listed")
    assert up.returncode == 0, up.output
    assert kube.namespace_labels("fresh")["istio.io/rev"] == "stable"  # created: kept as it is
    assert "istio.io/rev" not in kube.namespace_labels("shop")  # patched: meshlift's label relinquished
    for namespace, held in TEAM_OBJECTS.items():
        assert team_objects(kube, namespace) == held, namespace

    destroy = project.pulumi("destroy", "--yes", "--skip-preview", "--suppress-progress", stack="kept",
                             label="pulumi destroy: namespaces kept")
    assert destroy.returncode == 0, destroy.output
    assert kube.helm_releases("istio-ingress") == {} and kube.helm_releases("istio-system") == {}
    for namespace, held in TEAM_OBJECTS.items():
        assert kube.core.read_namespace(namespace).status.phase == "Active", namespace
        assert team_objects(kube, namespace) == held, namespace
    assert kube.core.read_namespace("istio-system").status.phase == "Active"  # it holds the root CA
