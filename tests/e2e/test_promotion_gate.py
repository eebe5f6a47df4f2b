"""A plain `pulumi up` at promotion is gated by the resource hook, on the real engine.

Nothing answers for the proxies here (no stand-in Envoys), so the gate cannot
judge them and must fail closed: the hook raises, the engine stops the promotion
steps, and the tag, the default validator and the namespace enrolled by revision
name keep what they had.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.kube import Kube
from tests.e2e.stacks import FROM_REV, mesh_stack

STACK = "gated"


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("gated", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def test_a_failing_gate_stops_a_plain_pulumi_up_at_promote(project, cluster, chart_repository) -> None:
    kube = Kube.of(cluster)
    namespaces = [{"name": "shop", "revision": "stable", "wave": 1},
                  {"name": "legacy", "revision": FROM_REV, "wave": 1}]
    project.write_stack(STACK, mesh_stack(cluster, chart_repository, stage="install", namespaces=namespaces))
    project.init_stack(STACK)
    for stage in ("install", "canary"):
        project.set_rollout(STACK, stage=stage)
        up = project.up(STACK, label=f"pulumi up: {stage}")
        assert up.returncode == 0, up.output
    assert kube.namespace_labels("legacy")["istio.io/rev"] == FROM_REV

    project.set_rollout(STACK, stage="promote", promotedWaves=1)
    blocked = project.up(STACK, label="pulumi up: promote (gate fails)")
    assert blocked.returncode != 0
    assert "meshlift gate" in blocked.output and "Halt" in blocked.output, blocked.output[-3000:]

    # Nothing that promotes moved.
    assert kube.namespace_labels("legacy")["istio.io/rev"] == FROM_REV
    tag = kube.mutating_webhooks()["istio-revision-tag-stable"]
    assert {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{FROM_REV}"}
    validator = kube.validating_webhooks()["istiod-default-validator"]
    assert {w.client_config.service.name for w in validator.webhooks} == {f"istiod-{FROM_REV}"}
