"""The one boundary where the `meshlift` app's errors become an exit code and one message.

Every command, including ones added later (sub-apps, mounted commands), gets the
same treatment: usage errors, stack-file and config errors and unmet
prerequisites print one paragraph naming the flag, file:line or key path (exit
2); a bug prints one line and the file holding its trace (exit 70); with
`--json`, the command's document goes to stdout too, with `error` set. An
interrupt (SIGINT, SIGTERM, SIGHUP), even while the modules still load, unwinds
the program once (the journal keeps the run's place, localmesh stops its Envoys)
and ends with one line and exit 128 + the signal's number.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

# Only the standard library above this line: `main` installs the signal handlers before the
# heavy imports, so an interrupt while they load ends as cleanly as one during a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: unwind like Ctrl-C (journal kept, Envoys stopped), exit 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_stop_signal(signum: int, _frame: Any) -> None:
    if _received:  # already unwinding: the cleanup runs once, the first signal names the exit code
        return
    _received.append(signum)
    raise Interrupted(signum)


def install_stop_handlers() -> None:
    """Every stop signal unwinds the program (finally blocks, the journal, localmesh's cleanup) once."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def interrupted_message(signum: int) -> str:
    return (f"interrupted ({signal.Signals(signum).name}): nothing is left running; a rollout's journal keeps "
            "its place: run the same command again to resume")


def main() -> int:
    """The `meshlift` console script: stop signals handled first, then the app through `run`."""
    install_stop_handlers()
    try:
        from rollout.cli import app

        code = run(app, sys.argv[1:])
        for sig in STOP_SIGNALS:  # the outcome is decided and printed: a late signal cannot change it
            signal.signal(sig, signal.SIG_IGN)
    except KeyboardInterrupt:  # while the modules load, or as `run` returns
        code = _interrupted(sys.argv[1:])
    return code


def run(app: Any, argv: list[str]) -> int:
    """Entry point: run the app and map every error to an exit code and one message (the one place that does).

    Usage errors, config and stack-file errors, unmet prerequisites: one paragraph
    naming the flag, file:line or key path, exit 2. With `--json`, the command's
    document is printed too, with `error` set. A bug: one line, and the trace in a file.
    An interrupt (SIGINT, SIGTERM, SIGHUP): one line, exit 128 + the signal's number.
    """
    import typer

    from rollout import console
    from rollout.errors import EXIT_BUG, describe, write_trace

    args = list(argv)
    if signal.getsignal(signal.SIGTERM) is not _on_stop_signal:
        install_stop_handlers()  # called directly (tests), not through main()
    command = _command_of(args)
    try:
        try:
            code = app(args=args, standalone_mode=False, prog_name="meshlift")
        except typer.Exit as done:
            code = done.exit_code
        code = int(code or 0) if isinstance(code, int) else 0
        if _received or code == 130:  # typer turns KeyboardInterrupt into Exit(130)
            raise Interrupted(_received[0] if _received else signal.SIGINT)
        return code
    except KeyboardInterrupt:
        return _interrupted(args)
    except Exception as error:  # noqa: BLE001 - the one boundary where every error becomes a message
        failure = describe(error, prog=f"meshlift {command}" if command else "meshlift")
        if failure.code == EXIT_BUG:
            trace = write_trace(error)
            failure = type(failure)(EXIT_BUG, f"{failure.message} (a bug in meshlift; the full trace is in {trace})")
        console.print_error(failure.message, details=failure.details)
        _print_json_error(args, command, failure.to_json(), error)
        return failure.code


def _interrupted(args: list[str]) -> int:
    """One line on stderr (and with --json the command's document, `error` set); the exit code."""
    signum = _received[0] if _received else signal.SIGINT
    code, message = 128 + signum, interrupted_message(signum)
    # Plain writes and light imports only: an interrupt during the imports may leave modules half-loaded.
    sys.stderr.write(f"× {message}\n")
    _print_json_error(args, _command_of(args), {"code": code, "message": message, "details": []}, None)
    return code


def _command_of(args: list[str]) -> str | None:
    from rollout.schemas import SCHEMAS

    return next((a for a in args if a in SCHEMAS), None)


def _print_json_error(args: list[str], command: str | None, failure: dict[str, Any], error: BaseException | None) -> None:
    """With --json, the failed command's document still goes to stdout, `error` set."""
    import json

    from rollout.schemas import SCHEMAS, document

    if "--json" not in args or command is None:
        return
    fields: dict[str, Any] = {}
    if command == "validate" and error is not None and _is_spec_error(error):
        lines = getattr(error, "lines", None)
        fields["problems"] = [{"key": p.key, "reason": p.reason, "line": lines(p.key) if lines else None}
                              for p in error.problems]
    _, defaults = SCHEMAS[command]
    if command == "fleet":
        fleet_file = _value_of(args, "--fleet")
        fields["fleet"] = (fleet_file or "fleet.yaml").rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
    for flag in ("-s", "--stack"):
        if "stack" in defaults and flag in args and args.index(flag) + 1 < len(args):
            fields["stack"] = args[args.index(flag) + 1]
    if command in ("upgrade", "rehearse"):
        fields["command"] = command
    sys.stdout.write(json.dumps(document(command, error=failure, **fields), indent=2, default=str) + "\n")


def _is_spec_error(error: BaseException) -> bool:
    from meshmodel.spec import SpecError  # loaded by then: a command raised it

    return isinstance(error, SpecError)


def _value_of(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


if __name__ == "__main__":
    sys.exit(main())
