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
- **A label that comes back is warned about.** Once meshlift enrolled a
  namespace (it created it, or its enrollment patch removed the label), an
  `istio-injection` label there was put back afterwards: a GitOps self-heal
  (Argo CD, Flux) or a hand. meshlift does not remove it again until the
  namespace is enrolled anew, and it overrides `istio.io/rev`: new pods there are
  injected by the default injector, or not at all. Checked before every stage
  and gate of a run and by `meshlift status`; the warning names who set it (the
  namespace's `managedFields`) and the fix.
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


def _label_managers(namespace: Namespace, label: str) -> list[tuple[str, str]]:
    """(manager, operation) of every managedFields entry but meshlift's enrollment that owns `label`."""
    field = f"f:{label}"
    return [(str(entry.get("manager", "")), str(entry.get("operation", "")))
            for entry in _meta(namespace).get("managedFields") or []
            if field in (((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {})
            and not str(entry.get("manager", "")).startswith(ENROLL_MANAGER_PREFIX)]


def _last_applied(namespace: Namespace, label: str) -> list[str]:
    """A client-side `kubectl apply` that lists `label` in its record, named."""
    recorded = (_meta(namespace).get("annotations") or {}).get(LAST_APPLIED)
    if not recorded:
        return []
    try:
        applied = json.loads(recorded)
    except ValueError:
        applied = {}
    listed = label in ((((applied or {}).get("metadata") or {}).get("labels")) or {})
    return ["`kubectl apply` (its last-applied-configuration lists the label)"] if listed else []


def label_owners(namespace: Namespace, label: str) -> list[str]:
    """Who applies `label` declaratively: server-side-apply managers, and a client-side apply's record."""
    return [f"{manager!r} (server-side apply)" for manager, operation in _label_managers(namespace, label)
            if operation == "Apply"] + _last_applied(namespace, label)


def label_setters(namespace: Namespace, label: str) -> list[str]:
    """Everyone but meshlift who set `label`, declaratively or not (`kubectl label` is an Update)."""
    return [f"{manager!r} ({operation or 'Update'})" for manager, operation in _label_managers(namespace, label)
            ] + _last_applied(namespace, label)


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


def returned_injection_label_warnings(spec: MeshSpec, namespaces: Iterable[Namespace], *,
                                      skip_declared: bool = False) -> list[str]:
    """Listed namespaces meshlift enrolled whose `istio-injection` label is back since. `skip_declared`:
    not those whose label is applied declaratively (refused before an upgrade, see above)."""
    live = {_meta(ns).get("name"): ns for ns in namespaces}
    warnings = []
    for wanted in spec.namespaces:
        found = live.get(wanted.name)
        if found is None or not (created_by_meshlift(found) or patched_by_meshlift(found)):
            continue
        labels = _meta(found).get("labels") or {}
        setters = label_setters(found, INJECTION_LABEL)
        if INJECTION_LABEL not in labels or (labels[INJECTION_LABEL] == "" and not setters):
            continue  # absent, or meshlift's own empty value between its two enrollment patches
        if skip_declared and label_owners(found, INJECTION_LABEL):
            continue
        warnings.append(
            f"namespace {wanted.name}: its {INJECTION_LABEL}={labels[INJECTION_LABEL]} label is back since meshlift "
            f"enrolled it, set by {' and '.join(setters) or 'a manager its managedFields do not name'}. It overrides "
            f"{REVISION_LABEL}={labels.get(REVISION_LABEL, wanted.revision)}: new pods there are injected by the "
            f"default injector, or not at all, and meshlift does not remove it again. Remove it where it is declared "
            f"(in Git, if a GitOps tool's self-heal put it back), then `kubectl label namespace {wanted.name} "
            f"{INJECTION_LABEL}-`")
    return warnings


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
