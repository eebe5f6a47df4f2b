"""Churn during an upgrade, on the real engine: what a lived-in cluster does while meshlift runs.

One cluster, one stack, two runs in order (the first ends RolledBack at the install
stage, where the second starts):

- A StatefulSet `shop/ledger` (one replica, OrderedReady, RollingUpdate) whose pod on
  the new revision never becomes Ready (its readiness fails, as a probe would: the
  test sets its Ready condition False). The wave 1 rollout wait gives up on it and the
  run rolls back; the reverted template does not replace that pod (the StatefulSet
  controller waits for it forever, kubernetes/kubernetes#67250), so the rollback
  deletes it; the controller makes it again from the reverted template, the tag
  injects the old revision, and the run ends RolledBack.
- The same upgrade again, healthy, while the cluster churns: the canary pod is deleted
  during the canary gate (as an HPA scale-down or a node drain would), and
  kube-apiserver is stopped and started again while wave 1's workloads roll. Neither
  fails a gate nor rolls the wave back: the gate judges the canary's successor, the
  rollout wait keeps polling through the outage, and the upgrade promotes and cleans up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from checks.kube import injected_revision
from localcluster.sidecars import APP_PORT
from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.kube import Kube, act_once, eventually
from tests.e2e.project import Project
from tests.e2e.stacks import FROM_REV, TO, TO_REV
from tests.e2e.test_upgrade import _mesh, injected_revisions, the_mesh_before_the_upgrade

STACK = "churn"


@pytest.fixture(scope="module")
def mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("churn", clusters, built_toolchain, istiod_runners, tmp_path_factory)


@pytest.fixture(scope="module")
def churn_project(tmp_path_factory, built_toolchain) -> Project:
    """One project for the module: the second run continues the stack the first one rolled back."""
    return Project.create(tmp_path_factory.mktemp("churn") / "project", built_toolchain)


@pytest.fixture(scope="module")
def ledger(churn_project, mesh, chart_repository) -> str:
    """The mesh before the upgrade, plus the team's StatefulSet shop/ledger on the stable revision."""
    cluster, kube, proxies = mesh
    the_mesh_before_the_upgrade(churn_project, cluster, chart_repository, kube, proxies, stack=STACK)
    container = {"name": "ledger", "image": "registry.example.com/shop/ledger:1.0",
                 "ports": [{"name": "http", "containerPort": APP_PORT}]}
    kube.apps.create_namespaced_stateful_set("shop", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ledger", "namespace": "shop"},
        "spec": {"replicas": 1, "serviceName": "ledger", "selector": {"matchLabels": {"app": "ledger"}},
                 "template": {"metadata": {"labels": {"app": "ledger"}}, "spec": {"containers": [container]}}},
    }, field_manager=TEAM_MANAGER)
    eventually(lambda: injected_revisions(kube, "shop", "ledger") == {FROM_REV}, timeout=120,
               what=f"shop/ledger-0 injected by {FROM_REV}")
    eventually(lambda: "shop/ledger-0" in proxies.by_pod(), timeout=120, what="shop/ledger-0's sidecar")
    return "ledger-0"


def when_journaled(project: Project, since: float, match: Callable[[dict[str, Any]], bool],
                   act: Callable[[dict[str, Any]], Any]) -> threading.Thread:
    """A thread that calls `act(event)` once the run journals an event `match` accepts; its result in `.result`."""
    return act_once(lambda: next((e for e in project.journal(STACK, since=since) if match(e)), None), act,
                    timeout=900, every=0.2)


class NeverReady:
    """Keeps shop/ledger's pods on the new revision not Ready, as a failing readiness probe would."""

    def __init__(self, kube: Kube) -> None:
        self.kube, self.seen, self._stop = kube, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> NeverReady:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                for pod in self.kube.core.list_namespaced_pod("shop", label_selector="app=ledger").items:
                    if injected_revision(pod) == TO_REV and not pod.metadata.deletion_timestamp and _ready(pod):
                        self.kube.core.patch_namespaced_pod_status(pod.metadata.name, "shop", {"status": {
                            "conditions": [{"type": "Ready", "status": "False", "reason": "ReadinessProbeFailed"},
                                           {"type": "ContainersReady", "status": "False"}]}})
                        self.seen[pod.metadata.uid] = pod.metadata.name
            except Exception:  # noqa: BLE001 - the next poll tries again
                pass


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def events_of(document: dict[str, Any], kind: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in document["events"] if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())]


def test_a_wave_rollback_deletes_the_statefulset_pod_stuck_on_the_new_revision_and_ends_rolled_back(
        churn_project, mesh, ledger) -> None:
    cluster, kube, proxies = mesh
    config = churn_project.stack_config(STACK)
    config["meshlift:restarts"] = {"budget": "20s", "perReplica": "5s"}  # ledger's rollout gives up after 25 s
    churn_project.write_stack(STACK, config)
    before = kube.core.read_namespaced_pod(ledger, "shop").metadata.uid

    with NeverReady(kube) as stuck:
        upgrade = churn_project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json",
                                         label="meshlift upgrade (a StatefulSet pod stuck on the new revision)")
    assert upgrade.returncode == 1, upgrade.output[-6000:]
    document = json.loads(upgrade.stdout)
    assert document["failure"]["gate"] == "wave 1" and document["failure"]["checks"] == ["rollout"], document["failure"]
    assert "StatefulSet shop/ledger" in document["failure"]["message"]
    assert list(stuck.seen.values()) == [ledger], "the pod on the new revision was kept from becoming Ready"
    assert document["phase"] == "RolledBack", document.get("rollback")

    # The rollback deleted the stuck pod; its controller made it again from the reverted template.
    unstuck = events_of(document, "rollout", status="unstuck")
    assert [e["pods"] for e in unstuck] == [[f"shop/{ledger}"]], unstuck
    pod = kube.core.read_namespaced_pod(ledger, "shop")
    assert pod.metadata.uid not in stuck.seen and pod.metadata.uid != before
    assert injected_revision(pod) == FROM_REV and _ready(pod)
    statefulset = kube.apps.read_namespaced_stateful_set("ledger", "shop")
    assert statefulset.status.current_revision == statefulset.status.update_revision
    assert injected_revisions(kube, "shop", "web") == {FROM_REV}
    rollback_gate = next(e for e in reversed(document["events"])
                         if e["event"] == "gate" and e.get("gate") == "rollback" and e.get("status") == "started")
    assert f"shop/{ledger}" in rollback_gate["canary"], "the recreated pod was judged by the rollback gate"


def test_a_canary_pod_deleted_and_an_api_server_restart_neither_fail_a_gate_nor_roll_back(
        churn_project, mesh, ledger) -> None:
    cluster, kube, proxies = mesh
    config = churn_project.stack_config(STACK)
    config.pop("meshlift:restarts", None)
    # Six passing samples in a row: the canary gate lasts long enough to lose its pod mid-window.
    config["meshlift:gates"] = {**config["meshlift:gates"], "consecutivePasses": 6, "window": "40s"}
    churn_project.write_stack(STACK, config)
    # web's new pods count as available 10 s after they are Ready: wave 1 rolls for about 20 s.
    kube.apps.patch_namespaced_deployment("web", "shop", {"spec": {"minReadySeconds": 10}},
                                          field_manager=TEAM_MANAGER)
    since = time.time()

    def delete_the_canary(event: dict[str, Any]) -> str:
        pod = next(name for name in event["canary"] if name.startswith("shop/web-canary-"))
        time.sleep(2)  # a sample or two judged it
        kube.core.delete_namespaced_pod(pod.split("/")[1], "shop")  # as a drain does: the default grace period
        return pod

    def restart_the_api_server(event: dict[str, Any]) -> tuple[float, float, float]:
        stopped = time.time()
        down = cluster.restart_api_server(down_s=5)
        return stopped, time.time(), down

    deleted = when_journaled(churn_project, since, lambda e: e.get("event") == "gate" and e.get("gate") == "canary"
                             and e.get("status") == "started", delete_the_canary)
    restarted = when_journaled(churn_project, since, lambda e: e.get("event") == "rollout"
                               and e.get("status") == "waiting" and "Deployment shop/web" in e.get("workloads", []),
                               restart_the_api_server)
    upgrade = churn_project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json",
                                     label="meshlift upgrade (a canary pod deleted, the API server restarted)")
    deleted.join(timeout=5)
    restarted.join(timeout=60)
    assert upgrade.returncode == 0, upgrade.output[-6000:]
    document = json.loads(upgrade.stdout)
    assert document["phase"] == "Succeeded" and not document.get("failure"), document.get("failure")

    # The canary gate lost the pod it started with and judged its successor.
    assert deleted.result, "a canary pod was deleted during the canary gate"
    journaled = churn_project.journal(STACK, since=since)
    canary_done = [e for e in journaled if e.get("event") == "gate" and e.get("gate") == "canary"
                   and e.get("status") == "done"]  # the journal keeps the evidence: the deciding sample
    assert [e["outcome"] for e in canary_done] == ["passed"], canary_done
    last_sample = canary_done[0]["evidence"]["samples"][-1]
    judged = [t["name"] for t in last_sample["report"]["targets"] if t["role"] == "canary"]
    assert deleted.result not in judged and [n for n in judged if n.startswith("shop/web-canary-")], judged

    # kube-apiserver was down while wave 1's workloads rolled; the wave was verified, not rolled back.
    assert restarted.result, "kube-apiserver was restarted during wave 1's rollout"
    stopped, serving, down = restarted.result
    assert down >= 5
    wave1_waiting = next(e for e in journaled if e.get("event") == "rollout"
                         and e.get("status") == "waiting" and "Deployment shop/web" in e.get("workloads", []))
    wave1_done = next(e for e in journaled if e.get("event") == "rollout"
                      and e.get("status") == "done" and e["ts"] > wave1_waiting["ts"])
    assert wave1_waiting["ts"] <= stopped and serving <= wave1_done["ts"] + 1, (wave1_waiting, wave1_done, stopped)
    assert [e["wave"] for e in events_of(document, "wave", status="verified")] == [1, 2]
    assert not events_of(document, "rollback")

    for namespace, app in (("shop", "web"), ("shop", "ledger"), ("payments", "api")):
        assert injected_revisions(kube, namespace, app) == {TO_REV}, f"{namespace}/{app}"
    assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{TO_REV}"}
