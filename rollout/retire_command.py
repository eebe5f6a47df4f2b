"""`meshlift retire-check`: may the unrevisioned istiod a takeover left be uninstalled now?

Reads the stack's cluster (its `kubernetes:context` / `kubernetes:kubeconfig`)
once, judges it with `rollout.retirement`, and prints what still depends on that
istiod with the fix for each (exit 2), or the command that uninstalls it (exit 0).
It changes nothing: Helm, not meshlift, uninstalls the release (docs/takeover.md).
"""

from __future__ import annotations

import typer
from rich.markup import escape

from rollout import console
from rollout.errors import PlatformError, PlatformUnavailable
from rollout.project import spec_error_at, stack_config
from rollout.schemas import document

def retire_check(stack: str, as_json: bool) -> None:
    """Print the retirement check of the stack's cluster; typer.Exit(2) when refused."""
    from meshmodel.spec import SpecError
    from meshmodel.spec_check import load_spec
    from rollout.preflight import live_reader
    from rollout.retirement import retirement_check

    path, config = stack_config(stack)
    try:
        spec = load_spec(config)
    except SpecError as error:
        raise spec_error_at(error, path) from None
    try:
        reader = live_reader(config)
        check = retirement_check(spec, reader.pods(), reader.revision_sources())
    except PlatformError as error:
        raise PlatformUnavailable(f"cannot judge the unrevisioned istiod's retirement: {error}") from error
    if as_json:
        console.print_json(document("retire-check", stack=stack, **check.to_json(), message=check.message))
    else:
        console.print_line(escape(check.message))  # names and hints are text, not markup
    if check.refused:
        raise typer.Exit(2)

