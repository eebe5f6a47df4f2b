"""Canary clones of live workloads, and the fingerprint of a pod template.

Pure functions on plain dicts in the API server's own shape (camelCase keys, as
`kubectl get -o json` prints them and as the Kubernetes provider returns a read
resource's state). No Pulumi and no Kubernetes client here: the program calls
them on the object a `Deployment.get` read, the platforms on what they list,
and the tests on recorded API objects.

A clone keeps the live pod template whole (containers, volumes, service
account, every label, so the workload's Service routes a share of the traffic to
it) and changes only what makes it a canary:

- its own selector, `meshlift.io/canary-of: <workload>` + `meshlift.io/track:
  canary`. The live pods never carry `canary-of`, so the clone never claims
  them; the live selector may match the clone's pods (they share `app`), but
  every canary pod is owned by the clone's ReplicaSet, and a controller adopts
  only orphans;
- the target revision: pod labels `meshlift.io/inject-revision` and
  `istio.io/rev` (see components.revision_tags for why both);
- the proxy held until it is ready: `holdApplicationUntilProxyStarts` merged
  into the pod's `proxy.istio.io/config`, the workload's own settings kept;
- a StatefulSet's clone stays out of its cluster's storage and naming: no
  governing Service and no claim templates (each claim's volume is an emptyDir,
  deleted with its pod). A template that mounts a claim directly is never cloned
  (the validation refuses `canary: true` for it, from the inventory).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from meshmodel.plan import (
    CANARY_OF_LABEL,
    INJECT_REVISION_LABEL,
    PROXY_REVISION_ANNOTATION,
    REVISION_LABEL,
    TRACK_LABEL,
)
from meshmodel.workload_class import classify, mounts_claims

PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
SOURCE_TEMPLATE_HASH_ANNOTATION = "meshlift.io/source-template-hash"  # on the clone: what it was cloned from
HOLD_KEY = "holdApplicationUntilProxyStarts"

# Workload-level fields a clone keeps, per kind (replicas and selector are the clone's own). A
# StatefulSet's clone keeps neither its governing Service (`serviceName`: its pods would get DNS
# names among the peers) nor its claim templates (it would start on fresh claims that outlive it and
# that the next upgrade's clone would reuse): each claim becomes an emptyDir, gone with the pod.
_CARRIED = {
    "Deployment": ("minReadySeconds", "progressDeadlineSeconds", "strategy"),
    "StatefulSet": ("minReadySeconds", "podManagementPolicy", "updateStrategy"),
}


def plain(value: Any) -> Any:
    """A deep copy made of plain dicts, lists and scalars (the provider's typed outputs are dict subclasses)."""
    return json.loads(json.dumps(value))


def template_hash(template: Mapping[str, Any]) -> str:
    """A fingerprint of a pod template, blind to meshlift's own restart annotation.

    Read through Pulumi, a template differs from the API server's JSON in form
    only: numbers travel as doubles (30 becomes 30.0) and null fields are left
    out. Both are normalized, so either source gives the same fingerprint.
    """
    template = _integral(copy.deepcopy(dict(template)))
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    annotations.pop(PROXY_REVISION_ANNOTATION, None)
    text = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _integral(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def holding_proxy_config(existing: str | None) -> str:
    """`proxy.istio.io/config` with the application held until the proxy is ready.

    The annotation is a ProxyConfig in YAML (JSON is YAML too); the workload's own
    settings stay. Unreadable text is replaced: the clone must hold its application.
    """
    try:
        config = yaml.safe_load(existing) if existing else {}
    except yaml.YAMLError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    return json.dumps({**config, HOLD_KEY: True}, sort_keys=True)


def canary_selector(workload: str) -> dict[str, str]:
    return {CANARY_OF_LABEL: workload, TRACK_LABEL: "canary"}


def clone_spec(live_spec: Mapping[str, Any], *, kind: str, workload: str, revision: str,
               replicas: int) -> dict[str, Any]:
    """The spec of `<workload>-canary`: the live pod template on `revision`, with its own selector."""
    live = plain(live_spec)
    template = live.get("template") or {}
    metadata = template.setdefault("metadata", {})
    metadata.pop("creationTimestamp", None)
    selector = canary_selector(workload)
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        REVISION_LABEL: revision,
        INJECT_REVISION_LABEL: revision,
        **selector,
    }
    annotations = dict(metadata.get("annotations") or {})
    annotations[PROXY_CONFIG_ANNOTATION] = holding_proxy_config(annotations.get(PROXY_CONFIG_ANNOTATION))
    annotations[PROXY_REVISION_ANNOTATION] = revision
    metadata["annotations"] = annotations
    if kind == "StatefulSet":
        _claims_as_scratch(template, live.get("volumeClaimTemplates") or [])
    clone: dict[str, Any] = {key: live[key] for key in _CARRIED.get(kind, ()) if key in live}
    clone.update({"replicas": replicas, "selector": {"matchLabels": selector}, "template": template})
    return clone


def _claims_as_scratch(template: dict[str, Any], claim_templates: list[dict[str, Any]]) -> None:
    """Each claim template's volume as an emptyDir of the same name, so the containers' mounts resolve."""
    spec = template.setdefault("spec", {})
    volumes = list(spec.get("volumes") or [])
    named = {volume.get("name") for volume in volumes}
    for claim in claim_templates:
        name = (claim.get("metadata") or {}).get("name")
        if name and name not in named:
            volumes.append({"name": name, "emptyDir": {}})
    if volumes:
        spec["volumes"] = volumes


def inventory_entry(live: Mapping[str, Any], autoscalers: Sequence[str] = ()) -> dict[str, Any]:
    """What `meshlift:inventory` records of one live workload object (API server shape).

    Keys at their default are left out: Pulumi hands the whole config to the
    program in one environment variable, so every byte per workload counts.
    """
    metadata, spec = live.get("metadata") or {}, live.get("spec") or {}
    template = spec.get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    selector = spec.get("selector") or {}
    entry: dict[str, Any] = {
        "kind": live["kind"],
        "name": metadata["name"],
        "labels": dict(metadata.get("labels") or {}),
        "selector": dict(selector.get("matchLabels") or {}),
        "templateHash": template_hash(template),
    }
    if selector.get("matchExpressions"):
        entry["selectorExpressions"] = [
            {"key": e.get("key"), "operator": e.get("operator"), "values": list(e.get("values") or [])}
            for e in selector["matchExpressions"]]
    if PROXY_REVISION_ANNOTATION in annotations:
        entry["proxyRevision"] = annotations[PROXY_REVISION_ANNOTATION]
    classification = classify(live)
    if classification.movement != "rolls":
        entry["movement"] = classification.movement
    if classification.note:
        entry["note"] = classification.note
    if classification.recreate:
        entry["recreate"] = True
    claims = mounts_claims(template)
    if claims:
        entry["claims"] = claims
    if autoscalers:
        entry["autoscalers"] = list(autoscalers)
    return entry


def autoscalers_of(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(kind, name) of each scaled workload -> the autoscalers (HPA, VPA objects) that target it."""
    found: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        spec = obj.get("spec") or {}
        target = spec.get("scaleTargetRef") or spec.get("targetRef") or {}
        if target.get("kind") and target.get("name"):
            found.setdefault((target["kind"], target["name"]), []).append(
                f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}")
    return found
