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

A `components.spec.SpecError` (invalid stack config) is exit 2 as well; a gate that
fails and rolls back cleanly is not an error but a run that ended RolledBack (exit 1).
"""

from __future__ import annotations

from components.spec import SpecError

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_ROLLBACK_FAILED = 3


class MeshliftError(Exception):
    """Base of every error the orchestrator raises on purpose."""


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


def exit_code_for(error: BaseException) -> int:
    """The single place errors become exit codes."""
    if isinstance(error, (UsageError, SpecError)):
        return EXIT_USAGE
    if isinstance(error, RollbackFailed):
        return EXIT_ROLLBACK_FAILED
    if isinstance(error, PlatformError):
        return EXIT_ROLLBACK_FAILED  # the mesh may be half-changed: as serious as a failed rollback
    return EXIT_ROLLBACK_FAILED
