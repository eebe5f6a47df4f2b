"""`meshlift fleet upgrade` on the real engine: two clusters, one kubeconfig context per stack.

Ring `dev` (its own cluster) upgrades, soaks and is re-gated before ring `prod`
(another cluster) starts; each stack's gates judge the pods of its own cluster
through its own kubeconfig and context.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.e2e.kube import Kube
from tests.e2e.stacks import FROM_REV, TO, TO_REV
from tests.e2e.test_upgrade import _mesh, injected_revisions, the_mesh_before_the_upgrade


@pytest.fixture(scope="module")
def dev_mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("fleet-dev", clusters, built_toolchain, istiod_runners, tmp_path_factory)


@pytest.fixture(scope="module")
def prod_mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("fleet-prod", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def test_a_fleet_upgrades_ring_by_ring_each_stack_on_its_own_cluster(project, dev_mesh, prod_mesh, chart_repository):
    for stack, (cluster, kube, proxies) in (("dev", dev_mesh), ("prod", prod_mesh)):
        the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies, stack=stack)
    fleet = project.directory / "stacks" / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"rings": [{"name": "dev", "stacks": ["dev"], "soak": "5s"},
                                               {"name": "prod", "stacks": ["prod"], "soak": "0s"}]}))

    upgrade = project.meshlift("fleet", "upgrade", "--to", TO, "--fleet", str(fleet), "--json",
                               label="meshlift fleet upgrade (two clusters)")
    assert upgrade.returncode == 0, upgrade.output[-5000:]

    for cluster, kube, _ in (dev_mesh, prod_mesh):
        tag = kube.mutating_webhooks()["istio-revision-tag-stable"]
        assert {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{TO_REV}"}, cluster.name
        assert f"istiod-{FROM_REV}" not in kube.helm_releases("istio-system"), cluster.name
        assert injected_revisions(kube, "shop", "web") == {TO_REV}, cluster.name
    document = json.loads(upgrade.stdout)
    assert document["phase"] == "Succeeded"
    assert [ring["name"] for ring in document["rings"]] == ["dev", "prod"]
    assert all(ring["status"] == "passed" for ring in document["rings"]), document["rings"]
