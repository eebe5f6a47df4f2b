"""Errors of the orchestrator, and the one table that maps them to exit codes.

    MeshliftError
     ├── UsageError          a command that cannot run as asked (exit 2)
     │    ├── RolloutBusy    another process holds the stack's lock
     │    ├── NoRollbackTarget  no update in the stack's history to go back to
     │    ├── CleanupRefused  pods (or tags) still need the old revision: the run
     │    │                  waits at cleanup; the same command resumes it
     │    └── PlatformUnavailable  the platform cannot be reached at all (no Pulumi
     │                          CLI, no backend): nothing was changed
     ├── PlatformError       applying a stage failed (`pulumi up`, a proxy start);
     │    │                  inside a run it triggers a rollback
     │    └── RolloutFailed  a restarted workload did not roll out (progress
     │                       deadline, unavailable replicas): fails its wave
     └── RollbackFailed      going back failed too: a human must look (exit 3)

A `meshmodel.spec.SpecError` (invalid stack config), its `ClusterConflict` (a
config the cluster contradicts, found before anything changes) and a
`meshmodel.stackfile.StackFileError` (unreadable or malformed stack file) are
exit 2 as well; so are typer's usage errors (unknown command or flag, a flag
without its value). A gate that fails and rolls back cleanly is not an error but a
run that ended RolledBack (exit 1). Anything else is a bug: exit 70, one line,
and the full trace in a file (`describe_bug`).
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import dataclass

import typer

from meshmodel.spec import SpecError
from meshmodel.stackfile import StackFileError

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_ROLLBACK_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_BUG = 70  # EX_SOFTWARE: meshlift itself is wrong


class MeshliftError(Exception):
    """Base of every error the orchestrator raises on purpose; `details` are printed one per line."""

    def __init__(self, *args: object, details: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(*args)
        self.details = tuple(details)


class UsageError(MeshliftError):
    pass


class RolloutBusy(UsageError):
    pass


class NoRollbackTarget(UsageError):
    pass


class CleanupRefused(UsageError):
    pass


class PlatformError(MeshliftError):
    pass


class RolloutFailed(PlatformError):
    pass


class PlatformUnavailable(UsageError):
    pass


class RollbackFailed(MeshliftError):
    pass


class PrerequisiteMissing(UsageError):
    """What a command needs is not there (a CLI on PATH, a backend, a kube context); nothing was recorded."""


class ConfigTooLarge(UsageError):
    """The stack config would not fit the channel Pulumi hands it to the program through; nothing was changed."""


class ClusterConflict(SpecError):
    """The config contradicts what the cluster already holds (each problem at its key path); nothing changed."""


class StateUnreadable(UsageError):
    """A file under `.meshlift/<stack>/` cannot be read back."""


def exit_code_for(error: BaseException) -> int:
    """The single place errors become exit codes."""
    if isinstance(error, (UsageError, SpecError, StackFileError)):
        return EXIT_USAGE
    if isinstance(error, (typer.TyperException, typer.Abort)):  # typer's (vendored click) usage errors
        return EXIT_USAGE
    if isinstance(error, RollbackFailed):
        return EXIT_ROLLBACK_FAILED
    if isinstance(error, PlatformError):
        return EXIT_ROLLBACK_FAILED  # the mesh may be half-changed: as serious as a failed rollback
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_BUG


@dataclass(frozen=True)
class Failure:
    """What the user is told about an error: its exit code, one paragraph, and detail lines."""

    code: int
    message: str
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "details": list(self.details)}


def describe(error: BaseException, *, prog: str = "meshlift") -> Failure:
    """Every error meshlift knows, as the paragraph the user sees (never a traceback)."""
    code = exit_code_for(error)
    if isinstance(error, StackFileError):
        return Failure(code, f"{error.path} cannot be used as a stack file; nothing changed",
                       tuple(f"{error.where(line)}: {reason}" for line, reason in error.problems))
    if isinstance(error, SpecError):
        where = getattr(error, "path", None) or "stack config"
        lines = getattr(error, "lines", None)
        what = ("conflicts with what the cluster already holds" if isinstance(error, ClusterConflict)
                else "invalid meshlift stack config")
        return Failure(code, f"{where}: {what} ({len(error.problems)} problem(s)); nothing changed",
                       tuple(_located(problem, where, lines) for problem in _by_line(error.problems, lines)))
    if isinstance(error, typer.TyperException):
        return Failure(code, _usage_message(error, prog))
    if isinstance(error, typer.Abort):  # typer's answer to an input that ended (EOF) mid-command
        return Failure(code, f"{prog}: aborted: the input ended before an answer; nothing changed")
    if isinstance(error, MeshliftError):
        return Failure(code, str(error), error.details)
    return Failure(code, f"internal error: {type(error).__name__}: {str(error)[:200]}")


def _by_line(problems: list, lines: object) -> list:
    """Problems in the order of the file's lines (those without a line last, as found)."""
    if not callable(lines):
        return list(problems)
    return sorted(problems, key=lambda problem: lines(getattr(problem, "key", "")) or float("inf"))


def _located(problem: object, path: str, lines: object) -> str:
    line = lines(getattr(problem, "key", "")) if callable(lines) else None
    return f"{path}:{line}: {problem}" if line else str(problem)


def _usage_message(error: typer.TyperException, prog: str) -> str:
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else prog
    text = error.format_message()
    if text.startswith("Usage:"):  # a group called without its command (no_args_is_help)
        group = getattr(ctx, "command", None)
        names = ", ".join(group.list_commands(ctx)) if hasattr(group, "list_commands") else ""
        return f"{command}: no command given" + (f"; commands: {names}" if names else "") + \
            f". Try '{command} --help'."
    text = text.replace("No such command", "no such command").replace("No such option", "no such option")
    text = text.replace("Option '", "option '").replace("requires an argument", "requires a value")
    if not text.endswith((".", "?")):
        text += "."
    return f"{command}: {text} Try '{command} --help'."


def write_trace(error: BaseException) -> str:
    """Write the full trace of an escaped bug to a file; return its path."""
    directory = os.environ.get("MESHLIFT_CRASH_DIR") or tempfile.gettempdir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"meshlift-crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(error)))
    return path
