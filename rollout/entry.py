"""The one boundary where the `meshlift` app's errors become an exit code and one message.

Every command, including ones added later (sub-apps, mounted commands), gets the
same treatment: usage errors, stack-file and config errors and unmet
prerequisites print one paragraph naming the flag, file:line or key path (exit
2); a bug prints one line and the file holding its trace (exit 70); with
`--json`, the command's document goes to stdout too, with `error` set.
"""

from __future__ import annotations

import signal
from typing import Any

import typer

from meshmodel.spec import SpecError
from rollout import console
from rollout.errors import EXIT_BUG, EXIT_INTERRUPTED, describe, write_trace
from rollout.schemas import SCHEMAS, document

INTERRUPTED = "interrupted: the journal keeps the run's place (local Envoys were stopped); run the same command again to resume"


def run(app: typer.Typer, argv: list[str]) -> int:
    """Entry point: run the app and map every error to an exit code and one message (the one place that does).

    Usage errors, config and stack-file errors, unmet prerequisites: one paragraph
    naming the flag, file:line or key path, exit 2. With `--json`, the command's
    document is printed too, with `error` set. A bug: one line, and the trace in a file.
    """
    args = list(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts background jobs with SIGINT ignored; `kill -INT` still means "stop".
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = app(args=args, standalone_mode=False, prog_name="meshlift")
        code = int(code or 0) if isinstance(code, int) else 0
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130)
            console.print_error(INTERRUPTED)
        return code
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except KeyboardInterrupt:
        console.print_error(INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one boundary where every error becomes a message
        command = _command_of(args)
        failure = describe(error, prog=f"meshlift {command}" if command else "meshlift")
        if failure.code == EXIT_BUG:
            trace = write_trace(error)
            failure = type(failure)(EXIT_BUG, f"{failure.message} (a bug in meshlift; the full trace is in {trace})")
        console.print_error(failure.message, details=failure.details)
        _print_json_error(args, command, failure, error)
        return failure.code


def _command_of(args: list[str]) -> str | None:
    return next((a for a in args if a in SCHEMAS), None)


def _print_json_error(args: list[str], command: str | None, failure: Any, error: BaseException) -> None:
    """With --json, the failed command's document still goes to stdout, `error` set."""
    if "--json" not in args or command is None:
        return
    fields: dict[str, Any] = {}
    if command == "validate" and isinstance(error, SpecError):
        lines = getattr(error, "lines", None)
        fields["problems"] = [{"key": p.key, "reason": p.reason, "line": lines(p.key) if lines else None}
                              for p in error.problems]
    _, defaults = SCHEMAS[command]
    for flag in ("-s", "--stack"):
        if "stack" in defaults and flag in args and args.index(flag) + 1 < len(args):
            fields["stack"] = args[args.index(flag) + 1]
    if command in ("upgrade", "rehearse"):
        fields["command"] = command
    console.print_json(document(command, error=failure.to_json(), **fields))
