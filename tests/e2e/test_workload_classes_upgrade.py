"""A whole gated upgrade over a lived-in namespace, on the real engine: each class gets what the plan said.

The namespace `data` of test_workload_classes.py (an OnDelete StatefulSet, a
partitioned one, a paused Deployment, a hostNetwork DaemonSet, a Deployment opted out
of injection, one another object owns, a bare ReplicaSet, and a CronJob elsewhere
pinned to the old revision) joins the teams' mesh as wave 2, with two workloads that
simply roll beside them (`orders`, and `batchd` with the Recreate strategy), and
`meshlift:restarts` set to skip paused Deployments and evict OnDelete pods. Every
injected pod runs its revision's pilot-agent, so the gates judge real sidecars.

`meshlift plan` says what each workload will get; `meshlift upgrade` then does
exactly that: the restarted and evicted workloads' pods are all new and on the new
revision, judged by the wave 2 and verify gates; the left and skipped workloads keep
their very pods (old revision, or no sidecar at all), outside every gate; the run
promotes every wave, passes the verify gate, and cleanup is refused naming exactly
the pods the plan left behind, and the CronJob.
"""

from __future__ import annotations

import json

import pytest

from checks.kube import injected_revision
from localcluster.sidecars import sidecar_resource
from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.kube import Kube, eventually
from tests.e2e.stacks import FROM_REV, TO, TO_REV
from tests.e2e.test_upgrade import _mesh, the_mesh_before_the_upgrade
from tests.e2e.test_workload_classes import INJECTED, NAMESPACE, _workload, create_the_lived_in_namespace, injected

STACK = "mixed"
MOVING = ("orders-", "batchd-")  # pod name prefixes of the two workloads that simply roll


@pytest.fixture(scope="module")
def mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("mixed", clusters, built_toolchain, istiod_runners, tmp_path_factory,
                     more_namespaces=(NAMESPACE,))


def pods_of(kube: Kube, app: str) -> dict[str, tuple[str, str | None]]:
    """uid -> (name, injected revision) of the running pods labelled app=<app> in the namespace."""
    return {p.metadata.uid: (p.metadata.name, injected_revision(p))
            for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector=f"app={app}").items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp}


def enrol_the_lived_in_namespace(project, kube: Kube) -> None:
    """`data` joins the mesh in wave 2 (labelled by a plain `pulumi up`), then its teams deploy."""
    kube.core.create_namespace({"metadata": {"name": NAMESPACE}}, field_manager=TEAM_MANAGER)
    kube.custom.create_namespaced_custom_object("networking.istio.io", "v1", NAMESPACE, "sidecars",
                                                sidecar_resource(NAMESPACE), field_manager=TEAM_MANAGER)
    config = project.stack_config(STACK)
    config["meshlift:namespaces"].append({"name": NAMESPACE, "revision": "stable", "wave": 2, "create": False})
    config["meshlift:restarts"] = {"paused": "skip", "onDelete": "evict"}
    project.write_stack(STACK, config)
    enrolled = project.up(STACK, label="pulumi up: data enrolled (mixed workloads)")
    assert enrolled.returncode == 0, enrolled.output

    create_the_lived_in_namespace(kube)
    kube.apps.create_namespaced_deployment(NAMESPACE, _workload("Deployment", "orders", replicas=2),
                                           field_manager=TEAM_MANAGER)
    kube.apps.create_namespaced_deployment(NAMESPACE, _workload("Deployment", "batchd", strategy={"type": "Recreate"}),
                                           field_manager=TEAM_MANAGER)
    eventually(lambda: all(any(name.startswith(prefix) for name, revision in injected(kube).items()
                               if revision == FROM_REV) for prefix in (*INJECTED, *MOVING)),
               timeout=120, what=f"the data namespace's pods injected by {FROM_REV}")


def test_an_upgrade_does_for_each_class_what_the_plan_said_and_promotes(project, mesh, chart_repository) -> None:
    cluster, kube, proxies = mesh
    the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies, stack=STACK)
    enrol_the_lived_in_namespace(project, kube)
    eventually(lambda: all(any(pod.startswith(f"{NAMESPACE}/{prefix}") for pod in proxies.by_pod())
                           for prefix in (*INJECTED, *MOVING)), timeout=120, what="the data pods' Istio sidecars")

    plan = project.meshlift("plan", "-s", STACK, "--to", TO, "--json", label="meshlift plan (mixed workloads)")
    assert plan.returncode == 0, plan.output
    said = {row["workload"]: row["action"] for row in json.loads(plan.stdout)["workloads"]
            if row["namespace"] == NAMESPACE}
    assert said == {
        "StatefulSet/ledger": "evicts", "StatefulSet/queue": "leaves", "Deployment/reports": "leaves",
        "DaemonSet/node-agent": "skips", "Deployment/legacy-db": "skips", "Deployment/hello": "leaves",
        "Deployment/orders": "restarts", "Deployment/batchd": "restarts",
    }, said
    before = {workload: pods_of(kube, workload.split("/")[1]) for workload in said}
    before["ReplicaSet/canary-rs"] = pods_of(kube, "canary-rs")  # no workload kind of the plan's: left

    upgrade = project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json", label="meshlift upgrade (mixed workloads)")
    assert upgrade.returncode == 2, upgrade.output[-6000:]
    assert "Cleanup refused" in upgrade.output
    events = project.journal(STACK)  # the run waits at cleanup: its events are in the journal
    assert [e["wave"] for e in events if e["event"] == "wave" and e.get("status") == "verified"] == [1, 2]
    assert [(e["gate"], e["outcome"]) for e in events if e["event"] == "gate" and e.get("status") == "done"] == [
        ("canary", "passed"), ("wave 1", "passed"), ("wave 2", "passed"), ("verify", "passed")]
    assert any(e["event"] == "phase" and e["to"] == "CleaningUp" for e in events)

    moved = {w for w, action in said.items() if action in ("restarts", "evicts")}
    started = [e for e in events if e["event"] == "gate" and e.get("status") == "started"]
    judged = {e["gate"]: set(e["canary"]) for e in started}
    read_by_a_gate = set().union(*(set(e["canary"]) | set(e["baseline"]) for e in started))
    for workload, pods in before.items():
        now = pods_of(kube, workload.split("/")[1])
        if workload in moved:
            assert not set(now) & set(pods) and len(now) == len(pods), f"{workload}: every pod replaced"
            assert {revision for _, revision in now.values()} == {TO_REV}, f"{workload}: {now}"
            for gate in ("wave 2", "verify"):
                assert {f"{NAMESPACE}/{name}" for name, _ in now.values()} <= judged[gate], (workload, gate)
        else:
            assert now == pods, f"{workload} ({said.get(workload, 'not in the plan')}): its very pods kept"
            assert not {f"{NAMESPACE}/{name}" for name, _ in now.values()} & read_by_a_gate, f"{workload} is in no gate"
    evicted = [pod for e in events if e["event"] == "rollout" and e.get("status") == "done"
               for pod in e.get("evicted", [])]
    assert sorted(evicted) == sorted(f"{NAMESPACE}/{name}" for name, _ in before["StatefulSet/ledger"].values())

    refusal = upgrade.output.split("Cleanup refused", 1)[1]
    left_behind = {name for workload, pods in before.items() if workload not in moved
                   for name, revision in pods.values() if revision == FROM_REV}
    assert left_behind and all(f"{NAMESPACE}/{name}" in refusal for name in left_behind), refusal
    assert not any(name in refusal for workload in moved for name, _ in pods_of(kube, workload.split("/")[1]).values())
    assert "CronJob batch/report" in refusal
