"""What a check function sees (`Context`) and what it returns (`Verdict`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .observe import Observation
from .result import Status
from .stats import Stats
from .target import Target

__all__ = ["Context", "Verdict", "GateSettingsLike", "Span", "BaselineView", "Baselines"]

T = TypeVar("T")


class GateSettingsLike(Protocol):
    """The fields of `meshmodel.spec.GateSettings` that checks read."""

    window: float
    interval: float
    consecutive_passes: int
    failure_limit: int
    min_success_rate: float
    max_error_rate_delta: float
    min_requests: int
    min_cert_validity_days: float
    max_connect_failures: int
    max_memory_bytes: int | None
    max_memory_ratio: float
    checks: list[str] | None
    skip_checks: list[str]


@dataclass(frozen=True)
class Verdict:
    """A check function's answer; the runner adds the catalog data to make a `CheckResult`."""

    status: Status
    message: str
    observed: Any = None
    threshold: Any = None
    no_data: bool = False
    details: dict[str, Any] | None = None

    @classmethod
    def ok(cls, message: str, **kw: Any) -> Verdict:
        return cls(Status.PASS, message, **kw)

    @classmethod
    def fail(cls, message: str, **kw: Any) -> Verdict:
        return cls(Status.FAIL, message, **kw)

    @classmethod
    def warn(cls, message: str, **kw: Any) -> Verdict:
        return cls(Status.WARN, message, **kw)

    @classmethod
    def skip(cls, message: str, **kw: Any) -> Verdict:
        return cls(Status.SKIP, message, **kw)


@dataclass(frozen=True)
class Span:
    """A stretch of time over which counters are compared: `earlier` is None for "since proxy start"."""

    label: str
    now: Stats
    earlier: Stats | None

    def delta(self, name: str) -> float:
        return self.now.delta(self.earlier, name)


@dataclass(frozen=True)
class BaselineView:
    """A baseline proxy's current and reference observations (canary-vs-baseline comparison)."""

    target: Target
    obs: Observation
    recent: Observation | None = None
    start: Observation | None = None


class Baselines(tuple):  # type: ignore[type-arg]
    """A sample's baseline views, one object shared by every target's `Context`.

    What a check derives from all the baselines is the same for every canary of the
    sample, so it is derived once (`derive`), not once per canary: a wave gate
    over hundreds of canaries and baselines spent most of its CPU repeating it.
    """

    def __new__(cls, views: Iterable[BaselineView] = ()) -> Baselines:
        made = super().__new__(cls, views)
        made._derived = {}
        return made

    def derive(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`, once per `key` for these baselines (it must not depend on the canary asking)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]


@dataclass(frozen=True)
class Context:
    """Everything one check may look at for one target in one sample.

    `previous` is the sample just before this one, `recent` the one about
    `RATE_LOOKBACK_SAMPLES` samples back (rates are judged over that span),
    `start` the first sample of the gate window. All are None for a one-off
    check: counters are then judged since the proxy started.
    """

    target: Target
    settings: GateSettingsLike
    obs: Observation
    now: datetime
    previous: Observation | None = None
    recent: Observation | None = None
    start: Observation | None = None
    baselines: Baselines = field(default_factory=Baselines)

    def __post_init__(self) -> None:
        if not isinstance(self.baselines, Baselines):  # a plain sequence of views, as tests give
            object.__setattr__(self, "baselines", Baselines(self.baselines))

    def spans(self) -> list[Span]:
        """The spans rates are judged over: the recent lookback and the whole window so far."""
        now = self.obs.stats
        if self.recent is None and self.start is None:
            return [Span("since proxy start", now, None)]
        spans: list[Span] = []
        refs = [(self.recent, "recent"), (self.start, "window")]
        seen: set[int] = set()
        for ref, kind in refs:
            if ref is None or id(ref) in seen or ref.stats_or_none() is None:
                continue
            seen.add(id(ref))
            seconds = self.obs.taken_at - ref.taken_at
            label = f"last {seconds:.0f}s" if kind == "recent" else f"window ({seconds:.0f}s)"
            spans.append(Span(label, now, ref.stats))
        return spans or [Span("since proxy start", now, None)]
