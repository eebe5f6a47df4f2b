"""Has a restarted workload finished rolling out? Decided on the object as the API server returns it.

The Kubernetes provider does not wait on Patch resources (pulumi-kubernetes
#2455: none of them use its await logic), so after a wave's patches the
orchestrator polls the patched workloads until each is rolled out, the way
`kubectl rollout status` decides it, and fails the wave with the controller's
reason when one cannot finish:

- Deployment: the controller saw the new generation; every replica is updated,
  no old one is left and every updated one is available. A `Progressing`
  condition with reason `ProgressDeadlineExceeded` fails it at once.
- StatefulSet: the new generation is seen; with `RollingUpdate`, the replicas
  above the partition are updated and ready, and the current revision caught up.
- DaemonSet: the new generation is seen; every scheduled pod is updated and
  available.

A workload with the `OnDelete` strategy never rolls on a template change: it is
reported as not waitable (its pods move when its owner replaces them; the
cleanup guard names any left on the old revision).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshmodel.plan import MeshPlan
from rollout.errors import RolloutFailed

WorkloadKey = tuple[str, str, str]  # namespace, kind, name
ListWorkloads = Callable[[Sequence[str]], dict[str, list[dict[str, Any]]]]


@dataclass(frozen=True)
class RolloutStatus:
    workload: str  # "Deployment shop/cart"
    done: bool
    failed: bool = False
    detail: str = ""  # what is still pending, or why it failed

    def __str__(self) -> str:
        return f"{self.workload}: {self.detail}" if self.detail else self.workload


def rollout_status(obj: Mapping[str, Any]) -> RolloutStatus:
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    kind = obj.get("kind", "")
    name = f"{kind} {metadata.get('namespace')}/{metadata.get('name')}"
    generation, observed = metadata.get("generation", 0), status.get("observedGeneration", 0)
    if observed < generation:
        return RolloutStatus(name, False, detail="waiting for the controller to see the new template")
    decide = {"Deployment": _deployment, "StatefulSet": _stateful_set, "DaemonSet": _daemon_set}.get(kind)
    if decide is None:
        return RolloutStatus(name, False, failed=True, detail=f"cannot tell the rollout of a {kind}")
    return decide(name, spec, status)


def _deployment(name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> RolloutStatus:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(name, False, failed=True,
                                 detail=f"progress deadline exceeded ({condition.get('message', '')}); "
                                        f"{status.get('unavailableReplicas', 0)} replica(s) unavailable")
    wanted = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return RolloutStatus(name, False, detail=f"{updated} of {wanted} replicas updated")
    if total > updated:
        return RolloutStatus(name, False, detail=f"{total - updated} old replica(s) pending termination")
    if available < updated:
        return RolloutStatus(name, False, detail=f"{available} of {updated} updated replicas available "
                                                 f"({status.get('unavailableReplicas', updated - available)} "
                                                 "unavailable)")
    return RolloutStatus(name, True)


def _stateful_set(name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> RolloutStatus:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return RolloutStatus(name, True, detail="OnDelete: its pods move when they are replaced")
    wanted = spec.get("replicas", 1)
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    updated, ready = status.get("updatedReplicas", 0), status.get("readyReplicas", 0)
    if updated < wanted - partition:
        return RolloutStatus(name, False, detail=f"{updated} of {wanted - partition} replicas updated")
    if ready < wanted:
        return RolloutStatus(name, False, detail=f"{ready} of {wanted} replicas ready")
    if partition == 0 and status.get("updateRevision") != status.get("currentRevision"):
        return RolloutStatus(name, False, detail="waiting for the current revision to catch up")
    return RolloutStatus(name, True)


def _daemon_set(name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> RolloutStatus:
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return RolloutStatus(name, True, detail="OnDelete: its pods move when they are replaced")
    wanted = status.get("desiredNumberScheduled", 0)
    updated, available = status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0)
    if updated < wanted:
        return RolloutStatus(name, False, detail=f"{updated} of {wanted} pods updated")
    if available < wanted:
        return RolloutStatus(name, False, detail=f"{available} of {wanted} updated pods available "
                                                 f"({status.get('numberUnavailable', wanted - available)} "
                                                 "unavailable)")
    return RolloutStatus(name, True)


def moved_workloads(before: MeshPlan, after: MeshPlan) -> set[WorkloadKey]:
    """The workloads whose restart annotation differs between two stages: the ones that roll."""
    old = {(w.namespace, w.kind, w.name): w.restart_revision for w in before.workloads}
    new = {(w.namespace, w.kind, w.name): w.restart_revision for w in after.workloads}
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def wait_for_rollouts(list_workloads: ListWorkloads, moved: set[WorkloadKey], *, timeout_s: float,
                      poll_s: float) -> None:
    """Poll until every moved workload has rolled out; RolloutFailed with the reason when one cannot."""
    namespaces = sorted({namespace for namespace, _, _ in moved})
    deadline = time.monotonic() + timeout_s
    while True:
        found = {(namespace, obj.get("kind"), (obj.get("metadata") or {}).get("name")): obj
                 for namespace, objects in list_workloads(namespaces).items() for obj in objects}
        statuses = [rollout_status(found[key]) for key in sorted(moved) if key in found]
        failed = [str(status) for status in statuses if status.failed]
        failed += [f"{kind} {namespace}/{name} is gone" for namespace, kind, name in sorted(moved - set(found))]
        if failed:
            raise RolloutFailed("rollout failed: " + "; ".join(failed))
        pending = [status for status in statuses if not status.done]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise RolloutFailed(f"rollout did not complete within {timeout_s:g}s: "
                                + "; ".join(str(status) for status in pending))
        time.sleep(poll_s)
