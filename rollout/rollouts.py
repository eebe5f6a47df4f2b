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
reported as done (the inventory classified it: it is patched only when meshlift
evicts its pods itself, `rollout.pod_restarts`; otherwise the cleanup guard names
its pods left on the old revision).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshmodel.plan import MeshPlan
from rollout.errors import PlatformError, RolloutFailed
from rollout.platforms.base import StrayRevision

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


def stray_revisions(failed: MeshPlan, restored: MeshPlan) -> tuple[StrayRevision, ...]:
    """After rolling `failed` back to `restored`: the workloads the rollback does not restart whose
    namespace the failed stage enrolled in another revision that `restored` still runs (a moved tag).
    Their pods created meanwhile run that revision; restarting them would disrupt workloads no wave
    touched, during an incident, so the rollback gate judges each pod for the revision that injected it."""
    enrolled = {namespace.name: namespace.revision for namespace in failed.namespaces}
    installed = {plane.revision: plane.version for plane in restored.control_planes}
    moved = moved_workloads(failed, restored)
    strays = []
    for workload in restored.workloads:
        revision = enrolled.get(workload.namespace)
        key = (workload.namespace, workload.kind, workload.name)
        if key in moved or revision is None or revision == workload.proxy_revision or revision not in installed:
            continue
        strays.append(StrayRevision(*key, revision=revision, version=installed[revision]))
    return tuple(strays)


@dataclass(frozen=True)
class RolloutBudget:
    """How long each restarted workload may take to roll out (`meshlift:restarts`).

    `base_s + per_replica_s x replicas` (a DaemonSet's replicas are the pods it
    schedules), and a Deployment at least its `progressDeadlineSeconds`: the
    controller itself reports a Deployment that stopped progressing, so
    meshlift's clock never cuts one short. `fixed_s` gives every workload the
    same deadline instead.
    """

    base_s: float = 120.0
    per_replica_s: float = 30.0
    fixed_s: float | None = None

    def seconds(self, obj: Mapping[str, Any]) -> float:
        if self.fixed_s is not None:
            return self.fixed_s
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if obj.get("kind") == "DaemonSet":
            replicas = int(status.get("desiredNumberScheduled") or 0)
        else:
            replicas = int(spec.get("replicas", 1) or 0)
        budget = self.base_s + self.per_replica_s * replicas
        if obj.get("kind") == "Deployment":
            budget = max(budget, float(spec.get("progressDeadlineSeconds") or 600))
        return budget


class PodActions(Protocol):
    """What the wait may do to pods itself (the platform)."""

    def workload_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def evict(self, namespace: str, pod: str) -> bool: ...

    def delete_pod(self, namespace: str, pod: str) -> None: ...


@dataclass
class RolloutOutcome:
    """What the wait saw besides rollouts finishing: workloads deleted meanwhile (skipped), pods it
    evicted, and StatefulSet pods it deleted because a reverted template could not replace them."""

    gone: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    unstuck: list[str] = field(default_factory=list)


def wait_for_rollouts(list_workloads: ListWorkloads, moved: set[WorkloadKey], *, budget: RolloutBudget,
                      poll_s: float, evicting: Mapping[WorkloadKey, str | None] | None = None,
                      pods: PodActions | None = None, forced_rollback: bool = False,
                      on_progress: Callable[[list[str]], None] | None = None, progress_s: float = 30.0,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> RolloutOutcome:
    """Poll until every moved workload has rolled out; RolloutFailed with the reason when one cannot.

    Churn is not failure: a listing that fails (the API server restarting, 429s)
    is polled again until the deadline; a workload deleted meanwhile is skipped and
    reported in the outcome. Each workload has a deadline of its own (`budget`),
    from when the wait starts. `evicting` names OnDelete workloads whose pods
    are evicted one by one, with the annotation value their pods must carry;
    `forced_rollback` deletes StatefulSet pods stuck on a reverted revision.
    """
    namespaces = sorted({namespace for namespace, _, _ in moved})
    evicting = dict(evicting or {})
    started = last_progress = clock()
    deadlines: dict[WorkloadKey, float] = {}
    remaining = set(moved)
    outcome = RolloutOutcome()
    pending: list[str] = [f"{kind} {namespace}/{name}: not listed yet" for namespace, kind, name in sorted(moved)]
    while True:
        try:
            listed = list_workloads(namespaces)
        except PlatformError as error:  # transient or not, the deadline decides
            pending = [f"cannot list the workloads ({error}); trying again"]
        else:
            found = {(namespace, obj.get("kind"), (obj.get("metadata") or {}).get("name")): obj
                     for namespace, objects in listed.items() for obj in objects}
            for namespace, kind, name in sorted(remaining - set(found)):
                outcome.gone.append(f"{kind} {namespace}/{name}")
            remaining &= set(found)
            statuses = {}
            for key in sorted(remaining):
                deadlines.setdefault(key, started + budget.seconds(found[key]))
                statuses[key] = _status(found[key], key, evicting, pods, forced_rollback, outcome)
            failed = [str(status) for status in statuses.values() if status.failed]
            if failed:
                raise RolloutFailed("rollout failed: " + "; ".join(failed))
            remaining = {key for key, status in statuses.items() if not status.done}
            if not remaining:
                return outcome
            pending = [str(statuses[key]) for key in sorted(remaining)]
        now = clock()
        late = sorted(key for key in remaining if now >= deadlines.get(key, started + budget.seconds({})))
        if late:
            limits = sorted({round(deadlines.get(key, now) - started, 1) for key in late})
            within = f"{limits[0]:g}s" if len(limits) == 1 else "its deadline (" + ", ".join(
                f"{kind} {namespace}/{name}: {deadlines.get((namespace, kind, name), now) - started:g}s"
                for namespace, kind, name in late) + ")"
            raise RolloutFailed(f"rollout did not complete within {within}: " + "; ".join(pending))
        if on_progress is not None and now - last_progress >= progress_s:
            on_progress(pending)
            last_progress = now
        sleep(poll_s)


def _status(obj: Mapping[str, Any], key: WorkloadKey, evicting: Mapping[WorkloadKey, str | None],
            pods: PodActions | None, forced_rollback: bool, outcome: RolloutOutcome) -> RolloutStatus:
    from rollout.pod_restarts import eviction_step, label_selector, stuck_pods

    namespace, kind, name = key
    label = f"{kind} {namespace}/{name}"
    if key in evicting and pods is not None:
        try:
            step = eviction_step(obj, pods.workload_pods(namespace, label_selector(obj)), evicting[key])
            if step.evict is not None:
                if pods.evict(namespace, step.evict):
                    outcome.evicted.append(f"{namespace}/{step.evict}")
                    return RolloutStatus(label, False, detail=f"{step.detail}; evicted {step.evict}")
                return RolloutStatus(label, False, detail=f"{step.detail}; a PodDisruptionBudget does not allow "
                                                          f"evicting {step.evict} now")
        except PlatformError as error:
            return RolloutStatus(label, False, detail=f"cannot evict its pods yet ({error})")
        return RolloutStatus(label, step.done, detail=step.detail)
    status = rollout_status(obj)
    if forced_rollback and not status.done and kind == "StatefulSet" and pods is not None:
        try:
            stuck = stuck_pods(obj, pods.workload_pods(namespace, label_selector(obj)))
        except PlatformError:
            return status  # listed again at the next poll
        for pod in stuck:
            try:
                pods.delete_pod(namespace, pod)
            except PlatformError as error:
                raise RolloutFailed(
                    f"{label}: pod {pod} is stuck on the reverted revision and its controller will not replace "
                    f"it (kubernetes/kubernetes#67250), and meshlift may not delete it ({error}); delete it: "
                    f"kubectl delete pod {pod} -n {namespace}") from error
            outcome.unstuck.append(f"{namespace}/{pod}")
    return status
