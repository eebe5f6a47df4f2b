"""Rollout waiting: `kubectl rollout status` semantics on API-server objects, and the waves that fail on it."""

from __future__ import annotations

import copy

import pytest

from rollout.phases import Phase
from rollout.rollouts import rollout_status
from tests.components.cluster import live_workload
from tests.rollout.doubles import FakeCluster

DEADLINE = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "web-5d9c7b" has timed out progressing.',
            "lastUpdateTime": "2026-12-01T20:40:00Z", "lastTransitionTime": "2026-12-01T20:40:00Z"}


def rolling(obj: dict, **status) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"]["generation"] = 5
    obj["status"] = {"observedGeneration": 5, **status}
    return obj


DEPLOYMENT = live_workload("shop", "web", replicas=2)
STATEFUL = live_workload("pay", "ledger", kind="StatefulSet", replicas=3)


@pytest.mark.parametrize("obj, done, detail", [
    (DEPLOYMENT, True, ""),
    ({**rolling(DEPLOYMENT, replicas=2, updatedReplicas=2, availableReplicas=2),
      "metadata": {**DEPLOYMENT["metadata"], "generation": 6}}, False, "see the new template"),
    (rolling(DEPLOYMENT, replicas=3, updatedReplicas=1, availableReplicas=2), False, "1 of 2 replicas updated"),
    (rolling(DEPLOYMENT, replicas=3, updatedReplicas=2, availableReplicas=2), False, "1 old replica(s) pending"),
    (rolling(DEPLOYMENT, replicas=2, updatedReplicas=2, availableReplicas=1, unavailableReplicas=1), False,
     "1 of 2 updated replicas available (1 unavailable)"),
    (rolling(STATEFUL, replicas=3, updatedReplicas=1, readyReplicas=3), False, "1 of 3 replicas updated"),
    (rolling(STATEFUL, replicas=3, updatedReplicas=3, readyReplicas=3, currentRevision="ledger-6b",
             updateRevision="ledger-7c"), False, "current revision to catch up"),
    (rolling(STATEFUL, replicas=3, updatedReplicas=3, readyReplicas=3, currentRevision="ledger-7c",
             updateRevision="ledger-7c"), True, ""),
], ids=["rolled out", "new generation not seen", "updating", "old replicas left", "unavailable",
        "statefulset updating", "statefulset revision behind", "statefulset rolled out"])
def test_rollout_status_follows_kubectl(obj, done, detail):
    status = rollout_status(obj)
    assert (status.done, status.failed) == (done, False)
    assert detail in status.detail


def test_a_progress_deadline_fails_at_once_with_the_controllers_message():
    status = rollout_status(rolling(DEPLOYMENT, replicas=3, updatedReplicas=1, availableReplicas=2,
                                    unavailableReplicas=1, conditions=[DEADLINE]))
    assert status.failed and "progress deadline exceeded" in status.detail and "timed out progressing" in status.detail
    assert str(status).startswith("Deployment shop/web: ")


def test_a_statefulset_partition_and_an_ondelete_daemonset():
    partitioned = rolling(STATEFUL, replicas=3, updatedReplicas=1, readyReplicas=3)
    partitioned["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert rollout_status(partitioned).done
    daemon = {"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"name": "agent", "namespace": "pay", "generation": 3},
              "spec": {"updateStrategy": {"type": "RollingUpdate"}},
              "status": {"observedGeneration": 3, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4,
                         "numberAvailable": 3, "numberUnavailable": 1}}
    assert "3 of 4 updated pods available (1 unavailable)" in rollout_status(daemon).detail
    daemon["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_status(daemon).done, "OnDelete never rolls on a template change: nothing to wait for"


class Scripted(FakeCluster):
    """shop/web answers `sequence[i]` at its i-th listing during the run (then the last one)."""

    def __init__(self, sequence: list[dict]) -> None:
        super().__init__()
        self.sequence, self.seen = sequence, 0

    def workloads(self, namespace: str):
        objects = super().workloads(namespace)
        if namespace == "shop":
            self.seen += 1
            current = self.sequence[min(self.seen - 1, len(self.sequence) - 1)]
            objects = [copy.deepcopy(current) if o["metadata"]["name"] == "web" else o for o in objects]
        return objects


def test_a_wave_whose_rollout_hits_its_progress_deadline_fails_with_the_reason_and_rolls_back(rig):
    stuck = rolling(live_workload("shop", "web", replicas=2), replicas=3, updatedReplicas=1, availableReplicas=2,
                    unavailableReplicas=1, conditions=[DEADLINE])
    healthy = live_workload("shop", "web", replicas=2)
    # listings: inventory, the wave's workloads still there, drift check at promotion, the wave's wait
    # (stuck), the rollback's wait (healthy)
    rig.cluster = Scripted([healthy, healthy, healthy, stuck, healthy])
    state = rig.run()
    assert state.phase is Phase.ROLLED_BACK, state.rollback
    assert state.failure["gate"] == "wave 1" and state.failure["checks"] == ["rollout"]
    assert state.failure["message"].startswith("Halt wave 1 advancement: rollout failed: Deployment shop/web: "
                                               "progress deadline exceeded")
    assert "1 replica(s) unavailable" in state.failure["message"]
    assert [g[0] for g in rig.gate.calls] == ["canary", "rollback"], "a wave that did not roll out is never gated"
    waits = [d for k, d in rig.reporter.events if k == "rollout"]
    assert [w["status"] for w in waits] == ["waiting", "waiting", "done"], "the rollback waits for the restart back"


def test_a_rollout_that_does_not_finish_in_time_fails_the_wave_naming_what_is_pending(rig):
    pending = rolling(live_workload("shop", "web", replicas=2), replicas=2, updatedReplicas=2, availableReplicas=1,
                      unavailableReplicas=1)
    healthy = live_workload("shop", "web", replicas=2)
    rig.cluster = Scripted([healthy, healthy, healthy, *[pending] * 10_000])
    state = rig.orchestrator(rollout_timeout_s=0.2).run(rig.request())
    assert state.failure["gate"] == "wave 1"
    assert "rollout did not complete within 0.2s: Deployment shop/web: 1 of 2 updated replicas available" \
        in state.failure["message"]
