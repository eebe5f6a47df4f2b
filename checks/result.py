"""Results: one check on one target, one target's checks, one sample's report.

Results are plain data (JSON-serialisable through `to_dict`) and render
themselves with rich (`__rich_console__`); only `report.py` decides layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

__all__ = ["Status", "CheckResult", "TargetReport", "Report"]


# The message of a check left out by --check/--skip or the gates' checks/skipChecks.
SKIPPED_BY_CONFIGURATION = "skipped by configuration"


class Status(str, Enum):
    """The `result` of a check in the JSON schema."""

    PASS = "pass"
    WARN = "warn"  # a warning-level check failed, or a breach that is not yet significant
    FAIL = "fail"
    ERROR = "error"  # the admin interface could not be read: fail closed
    SKIP = "skip"  # not applicable, deselected, or no data (see `no_data`)

    @property
    def mark(self) -> str:
        return _MARKS[self]

    @property
    def style(self) -> str:
        return _STYLES[self]


_MARKS = {Status.PASS: "√", Status.WARN: "‼", Status.FAIL: "×", Status.ERROR: "×", Status.SKIP: "-"}
_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "red",
    Status.ERROR: "red",
    Status.SKIP: "dim",
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one target.

    `no_data` marks "nothing to judge" (e.g. no traffic): the status is `skip`,
    it is never a failure, but a gate does not count it as a pass either.
    `observed` and `threshold` are JSON values (numbers, strings, small dicts).
    """

    check_id: str
    status: Status
    message: str
    category: str = ""
    description: str = ""
    fatal: bool = True
    hint: str = ""
    observed: Any = None
    threshold: Any = None
    no_data: bool = False
    details: dict[str, Any] | None = None

    @property
    def headline(self) -> str:
        """The message without its parenthesised context, for halt messages."""
        return self.message.split(" (", 1)[0]

    @property
    def blocking(self) -> bool:
        """True when this result should stop a promotion."""
        return self.fatal and self.status in (Status.FAIL, Status.ERROR)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "category": self.category,
            "description": self.description,
            "result": self.status.value,
            "fatal": self.fatal,
            "no_data": self.no_data,
            "observed": self.observed,
            "threshold": self.threshold,
            "message": self.message,
            "details": self.details,
            "hint": self.hint if self.status in (Status.FAIL, Status.ERROR, Status.WARN) else "",
        }

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = Text()
        line.append(f"{self.status.mark} ", style=self.status.style)
        line.append(self.description or self.check_id)
        if self.status is not Status.PASS and self.message:
            line.append(f": {self.message}", style=self.status.style if self.status is not Status.SKIP else "dim")
        yield line
        if self.hint and self.status in (Status.FAIL, Status.ERROR, Status.WARN):
            yield Text(f"    {self.hint}", style="dim")


@dataclass(frozen=True)
class TargetReport:
    """All check results for one target in one sample."""

    target: str
    admin_url: str
    role: str
    results: tuple[CheckResult, ...] = ()
    endpoint: Any = None  # checks.endpoint.Endpoint: is this an Envoy admin at all (None: not judged)

    @property
    def success(self) -> bool:
        return not any(r.blocking for r in self.results)

    @property
    def failing(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.blocking)

    @property
    def no_data(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.no_data and r.fatal)

    def result(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.check_id == check_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.target,
            "admin_url": self.admin_url,
            "role": self.role,
            "success": self.success,
            "endpoint": self.endpoint.to_dict() if self.endpoint is not None else None,
            "checks": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Report:
    """One sample: every target's results, taken at `taken_at` (seconds, the caller's clock)."""

    targets: tuple[TargetReport, ...] = ()
    taken_at: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    # Raw observations, oldest first, per target (the last one is this sample's). Kept so
    # `run_checks(previous=report)` can judge counters as deltas; never serialised.
    history: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return all(t.success for t in self.targets)

    def __iter__(self) -> Iterator[TargetReport]:
        return iter(self.targets)

    def target(self, name: str) -> TargetReport:
        return next(t for t in self.targets if t.target == name)

    def failing(self, *, roles: tuple[str, ...] = ("canary", "proxy", "baseline")) -> list[tuple[str, CheckResult]]:
        return [(t.target, r) for t in self.targets if t.role in roles for r in t.failing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            # Wall-clock RFC 3339; `taken_at` the attribute is the sampling clock (monotonic), never shown.
            "taken_at": self.meta.get("time"),
            "targets": [t.to_dict() for t in self.targets],
        }
