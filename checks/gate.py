"""Gates: judge canary proxies over a window of samples and decide passed, failed or inconclusive.

Samples are taken every `interval` seconds, for at most `window` seconds. A
sample *fails* when a fatal check fails or errors on a canary; it *passes* when
no fatal check blocks and every fatal check had data; otherwise it is
*no data* (typically no traffic yet), which is neither. The gate passes after
`consecutive_passes` passing samples in a row, fails after `failure_limit`
failing samples, and is inconclusive when the window runs out first; "no
traffic" is reported as such, apart from a breach (as Flagger does).

Baseline proxies are sampled alongside, read only for the checks that compare
canaries with them (`runner.BASELINE_REFERENCE`); their own failures are
reported but never gate.
Without a `client`, the gate reads through one sized for its targets and
interval (`client.limits_for`): more reads in flight and longer per-read limits
as the targets grow, so a large mesh is not judged inconclusive for lack of them.

Time is injected (`sleep`, `clock`), so tests and the orchestrator's resume
logic control it. `on_sample` is called with every `GateSample` (sync or async)
so the orchestrator can journal evidence as it comes.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from .client import AdminClient
from .context import GateSettingsLike
from .result import CheckResult, Report
from .runner import run_checks
from .target import Target

__all__ = ["GateOutcome", "GateSample", "GateResult", "run_gate", "evidence_kept_from_collection"]


class GateOutcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class GateSample:
    """One sample of a gate: its verdict (`pass`, `fail`, `no-data`, `retargeted`) and full report."""

    index: int
    elapsed: float
    verdict: str
    failing: tuple[tuple[str, CheckResult], ...]
    no_data: tuple[tuple[str, CheckResult], ...]
    report: Report

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "elapsed": round(self.elapsed, 3),
            "verdict": self.verdict,
            "failing": [{"target": t, "check": r.check_id, "message": r.message} for t, r in self.failing],
            "no_data": [{"target": t, "check": r.check_id, "message": r.message} for t, r in self.no_data],
            "report": self.report.to_dict(),
        }


@dataclass(frozen=True)
class GateResult:
    """The decision: `outcome`, a Flagger-style `message`, the failing check ids, and the evidence."""

    name: str
    outcome: GateOutcome
    message: str
    failing_checks: tuple[str, ...]
    samples: tuple[GateSample, ...]
    elapsed: float

    @property
    def passed(self) -> bool:
        return self.outcome is GateOutcome.PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": self.outcome.value,
            "success": self.passed,
            "message": self.message,
            "failing_checks": list(self.failing_checks),
            "elapsed": round(self.elapsed, 3),
            "samples": [s.to_dict() for s in self.samples],
        }


def _classify(report: Report) -> tuple[str, tuple[tuple[str, CheckResult], ...], tuple[tuple[str, CheckResult], ...]]:
    gated = [t for t in report.targets if t.role != "baseline"]
    failing = tuple((t.target, r) for t in gated for r in t.failing)
    no_data = tuple((t.target, r) for t in gated for r in t.no_data)
    if failing:
        return "fail", failing, no_data
    return ("no-data" if no_data else "pass"), failing, no_data


def default_gate_name(targets: Sequence[Target]) -> str:
    revs = {t.labels.get("istio.io/rev") or (t.expected_version or "").replace(".", "-") for t in targets}
    revs.discard("")
    if len(revs) == 1:
        return f"canary {revs.pop()}"
    return ",".join(t.name for t in targets[:3]) + (" …" if len(targets) > 3 else "")


def _describe(items: Sequence[tuple[str, CheckResult]], several_targets: bool) -> str:
    first_target, first = items[0]
    text = first.headline + (f" on {first_target}" if several_targets else "")
    others = len(items) - 1
    return text + (f" (and {others} more)" if others else "")


async def run_gate(
    canary_targets: Sequence[Target],
    settings: GateSettingsLike,
    *,
    baseline_targets: Sequence[Target] = (),
    client: AdminClient | None = None,
    on_sample: Callable[[GateSample], Awaitable[None] | None] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] | None = None,
    name: str | None = None,
    only: Sequence[str] | None = None,
    retarget: Callable[[], tuple[Sequence[Target], Sequence[Target]]] | None = None,
) -> GateResult:
    """Sample `canary_targets` (and `baseline_targets`) until the gate decides.

    `retarget`, when given, finds the targets again (canary, baseline) after a
    failing sample: pods come and go during a window (an autoscaler, a drained
    node, an eviction). The gate goes on with what it finds, and a failing sample
    whose failing targets are gone is not counted (its verdict is `retargeted`):
    a pod that ended is replaced by its successor instead of failing the gate.
    A successor whose istio-proxy is not ready yet is not judged until it is (the
    targets are found again after every sample meanwhile); when no canary is ready
    (a one-replica canary's successor still starting), each sample is forgiven the
    same way until one is, or the window ends.
    Returns a `GateResult`; raises ValueError only for a bad configuration
    (unknown check ids, no canary targets).
    """
    if not canary_targets:
        raise ValueError("a gate needs at least one canary target")
    name = name or default_gate_name(canary_targets)
    targets = [*canary_targets, *(t for t in baseline_targets if t not in canary_targets)]
    own_client = client is None
    client = client or AdminClient.for_targets(len(targets), settings.interval)
    samples: list[GateSample] = []
    passes = failures = 0
    started = clock()
    previous: Report | None = None
    several = len(canary_targets) > 1
    starting: set[str] = set()  # successors found whose proxy is not ready yet: found again every sample
    try:
        with evidence_kept_from_collection() as keep:
            index = 0
            while True:
                report = await run_checks(
                    [_as_role(t, "canary" if t in canary_targets else "baseline") for t in targets],
                    settings, client=client, previous=previous, only=only, clock=clock, wall_clock=wall_clock,
                )
                previous = report
                verdict, failing, no_data = _classify(report)
                if retarget is not None and (verdict == "fail" or starting):
                    fresh = _fresh_targets(retarget)
                    if fresh is not None:
                        found = {t.name for t in (*fresh[0], *fresh[1])}
                        if verdict == "fail" and any(target not in found for target, _ in failing):
                            verdict = "retargeted"  # the pod ended: its successor is judged next
                        judged = {t.name for t in canary_targets}
                        starting = {t.name for t in fresh[0] if _still_starting(t, judged)}
                        ready = [t for t in fresh[0] if t.name not in starting]
                        if ready:  # else no successor is ready yet: found again after the next sample
                            canary_targets, baseline = ready, fresh[1]
                            targets = [*canary_targets, *(t for t in baseline if t not in canary_targets)]
                sample = GateSample(index, clock() - started, verdict, failing, no_data, report)
                samples.append(sample)
                keep()
                if on_sample is not None:
                    maybe = on_sample(sample)
                    if inspect.isawaitable(maybe):
                        await maybe
                if verdict == "fail":
                    failures += 1
                    passes = 0
                    if failures >= settings.failure_limit:
                        ids = tuple(dict.fromkeys(r.check_id for _, r in failing))
                        return GateResult(
                            name, GateOutcome.FAILED,
                            f"Halt {name} advancement: {_describe(failing, several)}",
                            ids, tuple(samples), clock() - started,
                        )
                elif verdict == "pass":
                    passes += 1
                    if passes >= settings.consecutive_passes:
                        return GateResult(
                            name, GateOutcome.PASSED,
                            # A rollback gate promotes nothing: it proves the restored mesh healthy.
                            f"{'Restored mesh healthy' if name == 'rollback' else f'Promote {name}'}: "
                            f"{passes} consecutive passing samples",
                            (), tuple(samples), clock() - started,
                        )
                else:
                    passes = 0
                # Next slot on the interval grid; slots a slow sample overran are skipped, so a
                # gate over hanging proxies still ends when the window does.
                index = max(index + 1, math.ceil((clock() - started) / settings.interval))
                due = started + index * settings.interval
                if due - started > settings.window:
                    return _inconclusive(name, samples, passes, failures, settings, clock() - started, several)
                await sleep(max(0.0, due - clock()))
    finally:
        if own_client:
            await client.aclose()


@contextmanager
def evidence_kept_from_collection() -> Iterator[Callable[[], None]]:
    """While a gate runs, what exists is out of the cyclic collector's walks: all there is when
    it starts, and whatever exists when `keep()` is called (after each sample).

    A gate keeps every sample's report as its evidence, so its heap grows by a whole
    report each sample. Python's full collections walk all of it: over 400 proxies one
    took 0.2 s at the start of a window and 0.4 s twenty samples later, every few
    samples, and made those samples overrun their interval. Frozen objects are not
    walked (`gc.freeze`); reference counting still frees them, and everything is
    handed back to the collector when the gate ends. A process that froze objects
    itself keeps its own arrangement: nothing is frozen or unfrozen then.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def _fresh_targets(retarget: Callable[[], tuple[Sequence[Target], Sequence[Target]]]
                   ) -> tuple[list[Target], list[Target]] | None:
    """The targets found again (no canary: the ones that ended have no successor running yet); None when
    they cannot be found (the failing sample then counts as it is)."""
    try:
        canary, baseline = retarget()
    except Exception:  # noqa: BLE001 - discovery failing is no reason to forgive a failing sample
        return None
    return list(canary), list(baseline)


def _still_starting(target: Target, judged: set[str]) -> bool:
    """A pod found mid-window, not judged yet, whose istio-proxy container is not ready: its kubelet sends
    it no traffic yet, and judging it now would fail it for starting. A pod already judged is judged
    whatever its readiness (a proxy that stops being ready is what a gate is for)."""
    proxy = target.pod.proxy if target.pod is not None else None
    return target.name not in judged and proxy is not None and not proxy.ready


def _as_role(target: Target, role: str) -> Target:
    return target if target.role == role else replace(target, role=role)


def _inconclusive(
    name: str, samples: list[GateSample], passes: int, failures: int, settings: GateSettingsLike,
    elapsed: float, several: bool,
) -> GateResult:
    last = samples[-1]
    if last.no_data:
        reason = _describe(last.no_data, several)
        ids = tuple(dict.fromkeys(r.check_id for _, r in last.no_data))
    else:
        reason = f"only {passes} of {settings.consecutive_passes} consecutive passing samples"
        if failures:
            reason += f" ({failures} failing, below the limit of {settings.failure_limit})"
        ids = ()
    return GateResult(
        name, GateOutcome.INCONCLUSIVE,
        f"Halt {name} advancement: window of {settings.window:g}s elapsed, {reason}",
        ids, tuple(samples), elapsed,
    )
