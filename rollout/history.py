"""Stack history entries, and which one a rollback re-applies.

Every platform keeps a history of its updates like `pulumi stack history` does
(newest first: version, kind, result, the config the update ran with). A rollback
never computes an "inverse": it re-applies the whole `meshlift:*` config of an
earlier good update and runs `up` again, so the mesh converges on a state that
once passed.

Selection (`rollback_target`):
- `--to 12` (an update number): that update; it must be a succeeded `update`.
- `--to 1.39.3` (a version): the newest good update whose data plane ran only
  that version (no rollout, or a rollout still at install/canary from it, or a
  finished cleanup to it).
- neither (automatic, after a gate failure): the newest good update, older than
  `before` (the update the gate rejected), whose data plane ran only one version
  and did not contain the rejected change, i.e. a state before any workload was
  moved or canaried onto the new revision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meshmodel.spec import CONFIG_NAMESPACE, IstioVersion, Stage
from rollout.errors import NoRollbackTarget

ROLLOUT_KEY = f"{CONFIG_NAMESPACE}:rollout"
REVISIONS_KEY = f"{CONFIG_NAMESPACE}:revisions"


@dataclass(frozen=True)
class HistoryEntry:
    """One update of the stack, as `pulumi stack history --json` reports it."""

    version: int
    kind: str  # update | preview | refresh | destroy | rollback ...
    result: str  # succeeded | failed | in-progress
    config: dict[str, str]  # key -> plain value (objects as JSON text, as the CLI prints them)
    message: str = ""
    start_time: datetime | None = None
    secret_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def good(self) -> bool:
        return self.kind == "update" and self.result == "succeeded"

    @property
    def rollout(self) -> dict[str, Any] | None:
        return _json_value(self.config.get(ROLLOUT_KEY))

    @property
    def stage(self) -> Stage | None:
        rollout = self.rollout
        return Stage(str(rollout.get("stage", "install")).lower()) if rollout else None

    @property
    def data_plane_version(self) -> str | None:
        """The one version every proxy ran after this update, or None if mixed/unknown."""
        rollout = self.rollout
        if rollout is None:
            revisions = _json_value(self.config.get(REVISIONS_KEY)) or []
            versions = {str(IstioVersion.parse(r["version"])) for r in revisions if "version" in r}
            return versions.pop() if len(versions) == 1 else None
        stage = self.stage
        if stage is Stage.INSTALL:
            return str(IstioVersion.parse(rollout["from"]))
        if stage is Stage.CLEANUP:
            return str(IstioVersion.parse(rollout["to"]))
        return None  # canary and promote run two versions side by side

    @property
    def data_plane(self) -> str:
        """What the proxies ran after this update, in words: one version, both versions, or '?'."""
        if self.data_plane_version is not None:
            return self.data_plane_version
        rollout, stage = self.rollout, self.stage
        if rollout is None or stage is None or not {"from", "to"} <= set(rollout):
            return "?"
        source, target = (str(IstioVersion.parse(rollout[key])) for key in ("from", "to"))
        waves = self._waves()
        if (stage is Stage.PROMOTE and waves is not None and int(rollout.get("promotedWaves") or 0) >= waves
                and rollout.get("restartedInWave") is None):
            return target  # every wave restarted: only the old control plane is left, serving no proxy
        return f"{source} + {target}"

    def _waves(self) -> int | None:
        namespaces = _json_value(self.config.get(f"{CONFIG_NAMESPACE}:namespaces"))
        if not isinstance(namespaces, list):
            return None
        waves = {ns.get("wave", 1) for ns in namespaces if isinstance(ns, dict)}
        waves |= {w["wave"] for ns in namespaces if isinstance(ns, dict)
                  for w in ns.get("workloads") or [] if isinstance(w, dict) and w.get("wave") is not None}
        return len(waves)

    @property
    def meshlift_config(self) -> dict[str, str]:
        return {k: v for k, v in self.config.items() if k.startswith(CONFIG_NAMESPACE + ":")}

    def decoded_config(self) -> dict[str, Any]:
        """The `meshlift:*` keys with structured values decoded (what a re-apply sets)."""
        return {key: _decoded(value) for key, value in self.meshlift_config.items()}

    def describe(self) -> str:
        rollout = self.rollout
        if rollout is None:
            return f"steady on {self.data_plane_version or '?'}"
        text = f"{rollout.get('from')} -> {rollout.get('to')} stage {rollout.get('stage', 'install')}"
        if rollout.get("promotedWaves"):
            text += f" waves {rollout['promotedWaves']}"
            if rollout.get("restartedInWave") is not None:
                text += f" (first {rollout['restartedInWave']} workload(s) of wave {rollout['promotedWaves']})"
        return text


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        decoded = _json_value(value)
        return value if decoded is None else decoded
    return value


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def rollback_target(
    entries: list[HistoryEntry],
    *,
    to: str | None = None,
    before: int | None = None,
) -> HistoryEntry:
    """The history entry a rollback re-applies (see the module docstring)."""
    newest_first = sorted(entries, key=lambda e: e.version, reverse=True)
    if to is not None and to.strip().isdigit():
        wanted = int(to)
        for entry in newest_first:
            if entry.version == wanted:
                if not entry.good:
                    raise NoRollbackTarget(f"update {wanted} is a {entry.kind} that {entry.result}; "
                                           "pick a succeeded update (`meshlift history`)")
                return entry
        raise NoRollbackTarget(f"update {wanted} is not in the stack's history")
    good = [e for e in newest_first if e.good and (before is None or e.version < before)]
    if to is not None:
        try:
            version = str(IstioVersion.parse(to))
        except ValueError:
            raise NoRollbackTarget(f"--to {to!r} is neither an update number nor a version like 1.39.3") from None
        for entry in good:
            if entry.data_plane_version == version:
                return entry
        raise NoRollbackTarget(f"no succeeded update ran the whole data plane on {version}")
    for entry in good:
        if entry.data_plane_version is not None:
            return entry
    raise NoRollbackTarget("no earlier succeeded update with a single data-plane version to go back to")
