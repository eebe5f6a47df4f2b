"""Pods meshlift moves itself: OnDelete workloads evicted one by one, StatefulSet pods stuck on a reverted revision.

Pure decisions on a workload and its pods as the API server returns them; the
orchestrator's rollout wait acts on them through its platform (`evict`,
`delete_pod`).

- An `OnDelete` StatefulSet or DaemonSet restarts nothing on a template change.
  With `meshlift:restarts.onDelete: evict`, its pods whose template annotation is
  not yet the wanted one are evicted one at a time, each only once every pod of
  the workload is Ready again, through the eviction API: a PodDisruptionBudget
  may refuse (the eviction is tried again at the next poll), which is how the
  budget paces the restart. A pod carries its template's annotations, so the
  annotation tells a moved pod from one still to move, whatever the kind.
- A StatefulSet (OrderedReady) whose pod on the broken revision never became
  Ready is not repaired by reverting the template: the controller waits for
  that pod forever (kubernetes/kubernetes#67250, "forced rollback"). During a
  rollback, such a pod (not Ready, not terminating, not on `updateRevision`) is
  deleted so the controller makes it again from the reverted template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshmodel.plan import PROXY_REVISION_ANNOTATION
from rollout.platforms.scope import requirement_text

REVISION_HASH_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class EvictionStep:
    done: bool
    detail: str = ""  # what is pending
    evict: str | None = None  # the pod to evict now, if any


def label_selector(obj: Mapping[str, Any]) -> str:
    """A workload's `spec.selector` in the API's query syntax."""
    selector = (obj.get("spec") or {}).get("selector") or {}
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    parts += [requirement_text(expression) for expression in selector.get("matchExpressions") or []]
    return ",".join(parts)


def eviction_step(obj: Mapping[str, Any], pods: list[Mapping[str, Any]], wanted: str | None) -> EvictionStep:
    """The next move of an evicting restart: done, wait, or evict one pod (the highest-named stale one,
    as a StatefulSet's own rolling update goes from the highest ordinal down)."""
    owned = [pod for pod in pods if _owned_by(pod, obj)]
    terminating = [pod for pod in owned if (pod.get("metadata") or {}).get("deletionTimestamp")]
    running = [pod for pod in owned if pod not in terminating]
    desired = _desired(obj)
    stale = sorted((_name(pod) for pod in running if _annotation(pod) != wanted), reverse=True)
    unready = [_name(pod) for pod in running if not _ready(pod)]
    if terminating or unready or len(running) < desired:
        waiting = len(running) - len(unready)
        return EvictionStep(False, f"{len(stale)} pod(s) to evict; waiting for {waiting} of {desired} pods "
                                   "to be ready before the next")
    if not stale:
        return EvictionStep(True)
    return EvictionStep(False, f"{len(stale)} pod(s) to evict", evict=stale[0])


def stuck_pods(obj: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> list[str]:
    """StatefulSet pods a forced rollback must delete: not Ready, not terminating, not on `updateRevision`."""
    update_revision = (obj.get("status") or {}).get("updateRevision")
    if obj.get("kind") != "StatefulSet" or not update_revision:
        return []
    return sorted(_name(pod) for pod in pods
                  if _owned_by(pod, obj) and not (pod.get("metadata") or {}).get("deletionTimestamp")
                  and ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL) != update_revision
                  and not _ready(pod))


def _desired(obj: Mapping[str, Any]) -> int:
    if obj.get("kind") == "DaemonSet":
        return int((obj.get("status") or {}).get("desiredNumberScheduled") or 0)
    return int((obj.get("spec") or {}).get("replicas", 1))


def _owned_by(pod: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    uid = (obj.get("metadata") or {}).get("uid")
    references = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and (r.get("uid") == uid if uid else r.get("name") == _name(obj))
               for r in references)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _annotation(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(PROXY_REVISION_ANNOTATION)


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
