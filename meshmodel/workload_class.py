"""How a live workload's controller answers meshlift's restart, decided when the inventory is recorded.

meshlift restarts a workload by changing one pod-template annotation; what the
controller then does depends on the workload, and a wave gate that expects the
new proxy on pods that never restart fails the whole upgrade. So each selected
workload is classified from its live object (API-server JSON) before anything
changes, `meshlift plan` shows the classes, and the plan acts on them:

- `rolls`: a Deployment, a RollingUpdate StatefulSet or DaemonSet: the patch
  rolls its pods. A `Recreate` Deployment rolls too, but stops every pod before
  starting new ones (an outage during its wave): it is flagged, not refused.
- `onDelete`: `updateStrategy: OnDelete` restarts nothing on a template change;
  its pods move only when they are deleted. meshlift can evict them one by one
  (`meshlift:restarts.onDelete: evict`, through the eviction API, so
  PodDisruptionBudgets pace it); otherwise it will not move.
- `partitioned`: a StatefulSet whose `rollingUpdate.partition` is above zero:
  the ordinals below it stay on the current revision even when deleted (the
  controller recreates them from it), until its owner lowers the partition. It
  will not move.
- `paused`: a paused Deployment creates no new ReplicaSet and never reports a
  progress deadline; refused by default, or skipped (`meshlift:restarts.paused: skip`).
- `outsideMesh`: pods Istio never injects (`hostNetwork`, or
  `sidecar.istio.io/inject: "false"` as a pod label or annotation): skipped,
  restarting them would change nothing.
- `owned`: another controller owns the object (an `ownerReferences` entry with
  `controller: true`: an operator, Knative): it may revert the annotation, so it
  is not patched; its owner must restart it.

Workloads that will not move are left out of the wave gates (their pods keep
the old proxy) and the cleanup guard names their pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Movement = Literal["rolls", "onDelete", "partitioned", "paused", "outsideMesh", "owned"]
MOVEMENTS: tuple[str, ...] = ("rolls", "onDelete", "partitioned", "paused", "outsideMesh", "owned")
INJECT_KEY = "sidecar.istio.io/inject"
# What Istio's injector reads as "no" in the annotation (inject.go lower-cases it); the
# webhooks' object selector excludes the label value "false" only.
_ANNOTATION_NO = ("false", "n", "no", "off")


@dataclass(frozen=True)
class Classification:
    movement: Movement
    note: str = ""  # why, in a few words ("updateStrategy OnDelete", "owned by Elasticsearch/logs")
    recreate: bool = False  # a Recreate Deployment: every pod stops before the new ones start


def classify(live: Mapping[str, Any]) -> Classification:
    """The class of one live Deployment, StatefulSet or DaemonSet (API-server JSON)."""
    metadata, spec = live.get("metadata") or {}, live.get("spec") or {}
    template = spec.get("template") or {}
    pod_meta, pod_spec = template.get("metadata") or {}, template.get("spec") or {}
    kind = live.get("kind", "")
    recreate = kind == "Deployment" and (spec.get("strategy") or {}).get("type") == "Recreate"
    outside = _outside_mesh(pod_meta, pod_spec)
    if outside:
        return Classification("outsideMesh", outside, recreate)
    owner = controller_owner(metadata)
    if owner:
        return Classification("owned", f"owned by {owner}", recreate)
    if kind == "Deployment" and spec.get("paused"):
        return Classification("paused", "spec.paused: true", recreate)
    strategy = spec.get("updateStrategy") or {}
    if kind in ("StatefulSet", "DaemonSet") and strategy.get("type") == "OnDelete":
        return Classification("onDelete", "updateStrategy OnDelete")
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if kind == "StatefulSet" and partition > 0:
        return Classification("partitioned", f"partition {partition}: ordinals below it stay")
    return Classification("rolls", "Recreate strategy: all pods stop before new ones start" if recreate else "",
                          recreate)


def controller_owner(metadata: Mapping[str, Any]) -> str | None:
    """`Kind/name` of the object's managing controller, if one owns it."""
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller"):
            return f"{reference.get('kind')}/{reference.get('name')}"
    return None


def mounts_claims(template: Mapping[str, Any]) -> list[str]:
    """Names of the PersistentVolumeClaims a pod template mounts directly (not through claim templates)."""
    volumes = (template.get("spec") or {}).get("volumes") or []
    return [str((v.get("persistentVolumeClaim") or {}).get("claimName")) for v in volumes
            if v.get("persistentVolumeClaim")]


def _outside_mesh(pod_meta: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> str:
    if pod_spec.get("hostNetwork"):
        return "hostNetwork: Istio never injects it"
    label = (pod_meta.get("labels") or {}).get(INJECT_KEY)
    if label is not None:  # the label wins over the annotation
        return f'{INJECT_KEY}: "false" label' if label == "false" else ""
    annotation = str((pod_meta.get("annotations") or {}).get(INJECT_KEY, "")).lower()
    return f'{INJECT_KEY}: "{annotation}" annotation' if annotation in _ANNOTATION_NO else ""
