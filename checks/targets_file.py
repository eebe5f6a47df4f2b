"""A targets file: proxies to read, as JSON, for tools that did not start them.

    {"schema": "meshlift.targets/v1",
     "targets": [{"name": "shop/web-0", "admin_url": "http://127.0.0.1:41234", "role": "baseline",
                  "labels": {"namespace": "shop", "workload": "web"}}]}

The rehearsal writes one for its running proxies (`.meshlift/rehearsal/targets.json`);
`meshlift inspect --targets-file` and `--rehearsal` read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .target import Target

__all__ = ["TARGETS_SCHEMA", "write_targets", "read_targets"]

TARGETS_SCHEMA = "meshlift.targets/v1"


def write_targets(path: Path, targets: Sequence[Target]) -> None:
    """Write atomically: a reader never sees half a file."""
    document = {"schema": TARGETS_SCHEMA, "targets": [
        {"name": t.name, "admin_url": t.admin_url, "role": t.role, "labels": dict(t.labels)} for t in targets]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1))
    tmp.replace(path)


def read_targets(path: Path) -> list[Target]:
    """The targets of `path`; ValueError naming the file and the entry when it is not one."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read targets file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    entries = document.get("targets") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: no 'targets' list (schema {TARGETS_SCHEMA})")
    targets = []
    for index, entry in enumerate(entries):
        try:
            targets.append(Target(name=str(entry["name"]), admin_url=str(entry["admin_url"]),
                                  role=entry.get("role", "proxy"), labels=dict(entry.get("labels") or {})))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{path}: targets[{index}] is not a target ({exc})") from None
    return targets
