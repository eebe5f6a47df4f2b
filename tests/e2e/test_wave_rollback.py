"""A wave rollback on the real engine, with pods the moved tag injected in a workload no wave restarted.

Wave 1 moves the tag `stable` to the new revision and restarts shop/web onto it; its new
pods' apps answer 503, so the wave 1 gate fails and the run rolls back. Meanwhile payments/api
(wave 2, never restarted) scales up by one: Istio's real injector, through the moved tag, gives
that pod the new revision, and its pilot-agent and Envoy are the new revision's. The rollback
restarts shop/web back, leaves payments/api alone, and its gate judges the scaled-up pod for the
revision that injected it: the run ends RolledBack and names the pod.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from localcluster.sidecars import SIDECAR_FAULTS
from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.kube import Kube, eventually
from tests.e2e.stacks import FROM_REV, TO, TO_REV
from tests.e2e.test_upgrade import _mesh, injected_revisions, the_mesh_before_the_upgrade


def faulty_first_wave(sidecar) -> None:
    """shop/web's pods restarted onto the new revision by wave 1 (not its canaries) serve 503s."""
    if sidecar.namespace == "shop" and sidecar.revision == TO_REV and "-canary-" not in sidecar.pod:
        SIDECAR_FAULTS["5xx"](sidecar)


@pytest.fixture(scope="module")
def mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("waverollback", clusters, built_toolchain, istiod_runners, tmp_path_factory,
                     on_start=faulty_first_wave)


def tag_injects(kube: Kube, revision: str) -> bool:
    tag = kube.mutating_webhooks().get("istio-revision-tag-stable")
    return tag is not None and {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{revision}"}


def scale_up_once_the_tag_moved(kube: Kube, namespace: str, name: str) -> threading.Thread:
    """A thread that adds one replica to a Deployment, as an HPA would, once the tag injects the new revision."""
    def scale() -> None:
        eventually(lambda: tag_injects(kube, TO_REV), timeout=900, what="the tag moved to the new revision")
        time.sleep(2)  # the API server's webhook configuration catches up
        replicas = kube.apps.read_namespaced_deployment(name, namespace).spec.replicas
        kube.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas + 1}},
                                                    field_manager=TEAM_MANAGER)
        thread.done = True

    thread = threading.Thread(target=scale, daemon=True)
    thread.done = False
    thread.start()
    return thread


def test_a_wave_rollback_leaves_the_pod_the_moved_tag_injected_and_ends_rolled_back(project, mesh,
                                                                                      chart_repository) -> None:
    cluster, kube, proxies = mesh
    the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies, stack="wave")
    originals = {p.metadata.uid for p in kube.core.list_namespaced_pod("payments", label_selector="app=api").items}

    scaled = scale_up_once_the_tag_moved(kube, "payments", "api")
    upgrade = project.meshlift("upgrade", "-s", "wave", "--to", TO, "--json", label="meshlift upgrade (wave 1 fails)")
    scaled.join(timeout=5)

    assert upgrade.returncode == 1, upgrade.output[-6000:]
    document = json.loads(upgrade.stdout)
    assert document["failure"]["gate"] == "wave 1", document["failure"]
    assert scaled.done, "payments/api was scaled up while the tag pointed at the new revision"
    assert document["phase"] == "RolledBack", document.get("rollback")
    assert set(document["failure"]["checks"]) & {"upstream-success-rate", "canary-vs-baseline"}

    # shop/web restarted back; payments/api kept its pods, one of them injected by the new revision.
    assert injected_revisions(kube, "shop", "web") == {FROM_REV}
    api = [p for p in kube.core.list_namespaced_pod("payments", label_selector="app=api").items
           if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    added = [p.metadata.name for p in api if p.metadata.uid not in originals]
    assert len(added) == 1 and injected_revisions(kube, "payments", "api") == {FROM_REV, TO_REV}
    assert {p.metadata.uid for p in api} >= originals, "the rollback did not restart payments/api"

    assert [(p["pod"], p["revision"]) for p in document["rollback"]["left_on_revision"]] == [
        (f"payments/{added[0]}", TO_REV)]
    warning = next(e for e in document["events"] if e["event"] == "warning" and "pods" in e)
    assert warning["pods"] == [f"payments/{added[0]}"]
    rollback_gate = next(e for e in reversed(document["events"])
                         if e["event"] == "gate" and e.get("gate") == "rollback" and e.get("status") == "started")
    assert f"payments/{added[0]}" in rollback_gate["canary"], "the pod was judged, not skipped"
    assert tag_injects(kube, FROM_REV), "the tag moved back"
