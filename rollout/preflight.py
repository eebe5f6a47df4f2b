"""What the cluster already holds, judged before an upgrade changes anything.

`meshlift upgrade` reads the stack's cluster once, right after the prerequisite
checks and before a run is recorded, and refuses (exit 2, each problem with its
key path and stack-file line) a config that would take over or fight over what
others run there (`rollout.namespace_checks`; an `istio-injection` label put back
by hand since meshlift enrolled the namespace is a note, and is checked again
before every stage), or that would silently drop Istio
config pinned to the revision it leaves (`rollout.pinned_config`), or replace the
values an adopted installation runs with (`rollout.adopted_values`). `meshlift plan` reads the same
facts and shows them with its stages; a cluster it cannot reach is said, not
fatal, since the upgrade checks again. `meshlift status` reads the namespaces again
for labels put back since they were enrolled.

The Pulumi program refuses the same takeover by itself (`check_takeover`), so a
plain `pulumi up` or `pulumi preview` of a stack that adopts releases stops with
the same problems before it registers anything: only Helm's release records are
read there, once per run of the program, and only when the stack adopts something.

The reader is the one `rollout.platforms.kube_live.KubeLive` of the stack's
cluster (`kubernetes:context` / `kubernetes:kubeconfig` of the stack file, which
the Kubernetes provider reads too); tests replace `live_reader`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.kube import kubeconfig_is_text
from meshmodel.spec import MeshSpec, Problem
from rollout.errors import ClusterConflict, MeshliftError, PlatformError, PlatformUnavailable
from rollout.namespace_checks import (
    existing_namespace_problems,
    foreign_injection_label_problems,
    returned_injection_label_warnings,
    unlisted_namespace_notes,
)
from rollout.adopted_values import adopted_value_problems
from rollout.pinned_config import PinnedObject, pinned_config_notes, pinned_config_problems, pinned_objects
from rollout.project import spec_error_at, stack_config

PLAN_TIMEOUT_S = 5.0  # `meshlift plan` must stay quick when the cluster is away


@dataclass(frozen=True)
class Findings:
    problems: list[Problem] = field(default_factory=list)  # refuse the upgrade
    notes: list[str] = field(default_factory=list)  # what the plan says besides its stages
    pinned: list[PinnedObject] = field(default_factory=list)  # Istio config pinned to the rollout's `from`


def live_reader(config: Mapping[str, Any], *, timeout_s: float | None = None, retry_s: float | None = None) -> Any:
    """The stack's cluster, read-only (a KubeLive)."""
    from rollout.platforms.kube_live import REQUEST_TIMEOUT_S, RETRY_S, KubeLive

    def text(key: str) -> str | None:
        value = config.get(key)
        return str(value) if value not in (None, "") else None

    return KubeLive(context=text("kubernetes:context"), kubeconfig=text("kubernetes:kubeconfig"),
                    timeout_s=timeout_s or REQUEST_TIMEOUT_S, retry_s=RETRY_S if retry_s is None else retry_s)


def findings(spec: MeshSpec, reader: Any) -> Findings:
    """Every problem and note about the cluster; PlatformError when it cannot be read."""
    namespaces = reader.namespaces()
    pinned = pinned_objects(reader, spec.rollout.from_revision) if spec.rollout else []
    return Findings(
        problems=[*existing_namespace_problems(spec, namespaces), *foreign_injection_label_problems(spec, namespaces),
                  *pinned_config_problems(spec, pinned), *adopted_value_problems(spec, reader)],
        notes=[*unlisted_namespace_notes(spec, namespaces), *pinned_config_notes(spec, pinned),
               *returned_injection_label_warnings(spec, namespaces, skip_declared=True)],
        pinned=pinned,
    )


def check_before_upgrade(spec: MeshSpec, config: Mapping[str, Any], path: Path) -> Findings:
    """Refuse (ClusterConflict, exit 2) a config the cluster contradicts; nothing is recorded or changed."""
    try:
        found = findings(spec, live_reader(config))
    except PlatformError as error:
        raise PlatformUnavailable(f"cannot start: {error}; nothing was recorded or changed") from error
    if found.problems:
        raise spec_error_at(ClusterConflict(found.problems), path)
    return found


def check_takeover(spec: MeshSpec, config: Mapping[str, Any], *, stack: str) -> None:
    """The Pulumi program's check, before it registers anything: a stack that adopts releases is refused
    (ClusterConflict, at the stack file's lines) while the installation runs with values it does not state,
    the problems `meshlift upgrade` refuses with. A cluster that cannot be read refuses too (PlatformUnavailable,
    naming it): unchecked, the takeover would replace those values unasked. A stack that adopts nothing is
    not read."""
    if not spec.adopt:
        return
    try:
        problems = adopted_value_problems(spec, live_reader(config))
    except PlatformError as error:
        raise PlatformUnavailable(
            f"cannot read the Helm releases this stack adopts from {cluster_named(config)}: {error}. A takeover "
            "replaces the values they run with unless the stack states them, so it is not applied unchecked; "
            "nothing changed") from error
    if problems:
        raise _in_stack_file(ClusterConflict(problems), stack)


def cluster_named(config: Mapping[str, Any]) -> str:
    """The stack's cluster as a person names it: its context and kubeconfig (never an inline kubeconfig's text)."""
    context, kubeconfig = config.get("kubernetes:context"), config.get("kubernetes:kubeconfig")
    text = str(kubeconfig or "")
    if text and not os.path.exists(text) and kubeconfig_is_text(text):
        where = "the kubeconfig given inline in kubernetes:kubeconfig"
    else:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the kubeconfig of KUBECONFIG or ~/.kube/config"
    return f"context {context!r} of {where}" if context else f"the current context of {where}"


def _in_stack_file(error: ClusterConflict, stack: str) -> ClusterConflict:
    """`error` at the lines of the stack's file; without them (no readable file) the key paths still say where."""
    from meshmodel.stackfile import StackFileError

    try:
        path, _ = stack_config(stack)
    except (MeshliftError, StackFileError, OSError):
        return error
    return spec_error_at(error, path)  # type: ignore[return-value]


def findings_for_plan(spec: MeshSpec, config: Mapping[str, Any]) -> tuple[Findings, str | None]:
    """The findings, or why the cluster could not be read (the plan still shows its stages)."""
    try:
        return findings(spec, live_reader(config, timeout_s=PLAN_TIMEOUT_S)), None
    except PlatformError as error:
        return Findings(), str(error)


def namespace_warnings(config: Mapping[str, Any]) -> list[str]:
    """`meshlift status`: `istio-injection` labels put back on namespaces the stack enrolled, read briefly."""
    from meshmodel.spec import SpecError
    from meshmodel.spec_check import load_spec

    try:
        spec = load_spec(dict(config))
        # One quick read: a status must not wait out an API server that is away.
        reader = live_reader(config, timeout_s=PLAN_TIMEOUT_S, retry_s=0)
        return returned_injection_label_warnings(spec, reader.namespaces())
    except SpecError:
        return []  # `meshlift validate` says what is wrong; status reports the run
    except PlatformError as error:
        return [f"cannot check the enrolled namespaces' istio-injection labels: {error}"]
