"""What the cluster's namespaces say about a stack before anything changes: pure rules.

Read from the namespaces as the API server returns them (labels, annotations,
`managedFields`), judged against the spec:

- **`create: true` over an existing namespace is refused.** The provider would
  silently take the namespace into the stack (server-side apply upserts it), and
  the stack would then own a namespace full of a team's workloads. A namespace
  meshlift created carries `app.kubernetes.io/managed-by: meshlift`; any other
  existing namespace must be listed with `create: false` (patched, never owned).
- **An `istio-injection` label that is applied declaratively elsewhere is
  refused.** meshlift removes the label from a namespace it enrols (it overrides
  `istio.io/rev`). If a GitOps tool or `kubectl apply` declares it, their next
  sync puts it back and the namespace silently leaves meshlift's revision. Such
  a label is recognised by its owner: a server-side-apply manager (`operation:
  Apply`: Flux, Argo CD with server-side apply, `kubectl apply --server-side`)
  other than meshlift's, or a client-side `kubectl apply` (Argo CD's default),
  which records it in `kubectl.kubernetes.io/last-applied-configuration`. A label
  set imperatively (`kubectl label`, `kubectl edit`, a one-off patch: `operation:
  Update` and no last-applied record) does not come back, and meshlift takes it
  over as before.
- **Un-listing is shown.** A namespace meshlift created or patched that the
  spec no longer lists: a created one is kept with everything in it (meshlift
  never deletes a namespace); a patched one loses the `istio.io/rev` label
  meshlift set, so the pods created there afterwards get no sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from meshmodel.spec import MeshSpec, Problem, key_path

# What meshlift's components put on a namespace (components._helm.MANAGED_BY and
# components.namespace_enrollment.field_manager; a test keeps them equal).
MANAGED_BY = ("app.kubernetes.io/managed-by", "meshlift")
ENROLL_MANAGER_PREFIX = "meshlift-enroll-"
REVISION_LABEL = "istio.io/rev"
INJECTION_LABEL = "istio-injection"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

Namespace = Mapping[str, Any]


def _meta(namespace: Namespace) -> Mapping[str, Any]:
    return namespace.get("metadata") or {}


def created_by_meshlift(namespace: Namespace) -> bool:
    key, value = MANAGED_BY
    return (_meta(namespace).get("labels") or {}).get(key) == value


def patched_by_meshlift(namespace: Namespace) -> bool:
    name = _meta(namespace).get("name", "")
    return any(entry.get("manager") == f"{ENROLL_MANAGER_PREFIX}{name}"
               for entry in _meta(namespace).get("managedFields") or [])


def existing_namespace_problems(spec: MeshSpec, namespaces: Iterable[Namespace]) -> list[Problem]:
    """`create: true` for a namespace that exists and that meshlift did not create."""
    live = {_meta(ns).get("name"): ns for ns in namespaces}
    problems = []
    for index, wanted in enumerate(spec.namespaces):
        found = live.get(wanted.name)
        if wanted.create and found is not None and not created_by_meshlift(found):
            problems.append(Problem(
                key_path("namespaces", index, "create"),
                f"namespace {wanted.name!r} already exists and was not created by meshlift: with create: true "
                "the stack would take it over, with everything in it. Set `create: false` to enrol it by "
                "patching its labels (meshlift then never owns or deletes it)"))
    return problems


def label_owners(namespace: Namespace, label: str) -> list[str]:
    """Who applies `label` declaratively: server-side-apply managers, and a client-side apply's record."""
    owners = []
    field = f"f:{label}"
    for entry in _meta(namespace).get("managedFields") or []:
        manager = entry.get("manager", "")
        labels = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
        if (field in labels and entry.get("operation") == "Apply"
                and not manager.startswith(ENROLL_MANAGER_PREFIX)):
            owners.append(f"{manager!r} (server-side apply)")
    recorded = (_meta(namespace).get("annotations") or {}).get(LAST_APPLIED)
    if recorded:
        try:
            applied = json.loads(recorded)
        except ValueError:
            applied = {}
        if label in (((applied or {}).get("metadata") or {}).get("labels") or {}):
            owners.append("`kubectl apply` (its last-applied-configuration lists the label)")
    return owners


def foreign_injection_label_problems(spec: MeshSpec, namespaces: Iterable[Namespace]) -> list[Problem]:
    """Listed namespaces whose `istio-injection` label another tool would put back after meshlift removes it."""
    live = {_meta(ns).get("name"): ns for ns in namespaces}
    problems = []
    for index, wanted in enumerate(spec.namespaces):
        found = live.get(wanted.name)
        labels = (_meta(found).get("labels") or {}) if found is not None else {}
        if found is None or INJECTION_LABEL not in labels:
            continue
        owners = label_owners(found, INJECTION_LABEL)
        if owners:
            problems.append(Problem(
                key_path("namespaces", index, "name"),
                f"namespace {wanted.name!r}: its {INJECTION_LABEL}={labels[INJECTION_LABEL]} label is applied by "
                f"{' and '.join(owners)}. meshlift would remove it, the next sync would put it back, and it "
                f"overrides {REVISION_LABEL} (the namespace would leave meshlift's revision). Change it where "
                f"it is declared (in Git): remove {INJECTION_LABEL} and set {REVISION_LABEL}: {wanted.revision}, "
                "or stop that tool managing the label; then run again"))
    return problems


def unlisted_namespace_notes(spec: MeshSpec, namespaces: Iterable[Namespace]) -> list[str]:
    """What the next `pulumi up` does to namespaces meshlift enrolled that the spec no longer lists."""
    listed = {ns.name for ns in spec.namespaces}
    not_enrolled = {spec.istio_namespace, *(gw.namespace for gw in spec.gateways)}
    notes = []
    for namespace in sorted(namespaces, key=lambda ns: _meta(ns).get("name", "")):
        name = _meta(namespace).get("name", "")
        label = (_meta(namespace).get("labels") or {}).get(REVISION_LABEL)
        if name in listed or name in not_enrolled:
            continue
        if created_by_meshlift(namespace) and label:
            notes.append(f"namespace {name} is no longer listed: it is kept with everything in it and keeps "
                         f"{REVISION_LABEL}={label} (meshlift never deletes a namespace; delete it yourself once "
                         "it is empty)")
        elif patched_by_meshlift(namespace) and label:
            notes.append(f"namespace {name} is no longer listed: the next `pulumi up` removes the "
                         f"{REVISION_LABEL}={label} label meshlift set, so pods created there afterwards get no "
                         "sidecar (running pods keep theirs until they restart); list it again to keep it "
                         "enrolled")
    return notes
