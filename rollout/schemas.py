"""The JSON documents `--json` prints: one versioned schema per command.

Every document has the same keys in every outcome, success or error: the
command's fields (with empty values when it could not produce them) and
`error` (null, or `{code, message, details}`). Timestamps are wall-clock
RFC 3339 strings. Within a schema version, fields are only ever added.
docs/json.md describes each schema.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

RUN_FIELDS: dict[str, Any] = {
    "command": None, "stack": None, "params": {}, "run": None, "phase": None, "exit_code": None,
    "waves_done": 0, "failure": None, "rollback": None, "gate_samples": 0, "events": [],
}

# schema name, and each field with the value it has when the command could not fill it
SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "validate": ("meshlift.validate/v1", {
        "stack": None, "valid": False, "problems": [], "revisions": [], "tags": {}, "namespaces": 0,
        "waves": [], "gateways": 0, "rollout": None}),
    "plan": ("meshlift.plan/v1", {"stack": None, "from": None, "to": None, "stages": [], "min_gate_s": None,
                                  "cluster": None, "workloads": [], "workloads_note": None}),
    "upgrade": ("meshlift.run/v1", RUN_FIELDS),
    "rehearse": ("meshlift.run/v1", RUN_FIELDS),
    "promote": ("meshlift.promote/v1", {"stack": None, "run": None, "approved": False, "approval": None,
                                        "result": None}),
    "rollback": ("meshlift.rollback/v1", {"stack": None, "rolled_back_to": None, "describe": None, "update": None}),
    "abandon": ("meshlift.abandon/v1", {"stack": None, "run": None, "abandoned": False}),
    "status": ("meshlift.status/v1", {"stack": None, "run": None, "events": [], "warnings": []}),
    "history": ("meshlift.history/v1", {"stack": None, "entries": []}),
    "retire-check": ("meshlift.retire/v1", {"stack": None, "refused": None, "defaultTag": None, "leftovers": [],
                                            "message": None}),
    "check": ("meshlift.checks/v2", {"success": False, "taken_at": None, "targets": []}),
    "inspect": ("meshlift.inspect/v1", {"proxies": [], "diffs": []}),
    # every fleet subcommand (plan, upgrade, resume, status)
    "fleet": ("meshlift.fleet/v1", {"fleet": None, "run": None, "phase": None, "exit_code": None, "to": None,
                                    "platform": None, "params": {}, "halt": None, "started_at": None,
                                    "updated_at": None, "rings": [], "events": []}),
}


def document(command: str, /, *, error: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The command's document: its schema, every field (defaults where not given), and `error`."""
    schema, defaults = SCHEMAS[command]
    unknown = set(fields) - set(defaults)
    if unknown:
        raise KeyError(f"{schema} has no field(s) {sorted(unknown)}")
    return {"schema": schema, **{key: _fresh(value) for key, value in defaults.items()}, **fields, "error": error}


def rfc3339(timestamp: float | None) -> str | None:
    """A Unix time as RFC 3339 UTC with milliseconds (2026-12-01T20:25:40.123Z)."""
    if timestamp is None:
        return None
    moment = _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_of(moment: _dt.datetime | None) -> str | None:
    """A datetime as rfc3339() writes it; a naive one is taken as UTC (Pulumi's update times are)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=_dt.timezone.utc)
    return rfc3339(aware.timestamp())


def _fresh(value: Any) -> Any:
    return type(value)() if isinstance(value, (dict, list)) else value
