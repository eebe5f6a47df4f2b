"""The project a command works on, and its stack files read strictly.

The project is `$MESHLIFT_PROJECT_DIR`, else the nearest directory (from the
current one up) with `Pulumi.yaml` or `stacks/`. A stack's file is
`stacks/Pulumi.<stack>.yaml`, read by `meshmodel.stackfile` (which names
file:line); spec problems are then located on the lines of their keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshmodel.spec import SpecError
from meshmodel.stackfile import StackDocument, read_stack_file
from rollout.errors import UsageError


def project_dir() -> Path:
    """The Pulumi project: $MESHLIFT_PROJECT_DIR, else the nearest parent with Pulumi.yaml or stacks/."""
    if os.environ.get("MESHLIFT_PROJECT_DIR"):
        return Path(os.environ["MESHLIFT_PROJECT_DIR"]).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").exists() or (candidate / "stacks").is_dir():
            return candidate
    return Path(__file__).resolve().parents[1]


def stack_config(stack: str) -> tuple[Path, dict[str, Any]]:
    """The stack file's path and `config:`, read strictly (StackFileError names file:line)."""
    path = project_dir() / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                       for p in path.parent.glob("Pulumi.*.yaml"))
        raise UsageError(f"--stack {stack}: no stack file {path} (stacks here: {', '.join(known) or 'none'})")
    shown = Path(os.path.relpath(path))  # messages name the file as the user would type it
    if shown.parts[:1] == ("..",):
        shown = path
    stack_file = read_stack_file(str(shown))
    _documents[str(shown)] = stack_file
    return shown, stack_file.config


_documents: dict[str, StackDocument] = {}  # path -> the document read, for the lines of spec problems


def spec_error_at(error: SpecError, path: Path) -> SpecError:
    """`error` with the file and the line of each problem's key (read by `errors.describe`)."""
    stack_file = _documents.get(str(path))
    error.path = str(path)  # type: ignore[attr-defined]
    error.lines = stack_file.line_of if stack_file else None  # type: ignore[attr-defined]
    return error
