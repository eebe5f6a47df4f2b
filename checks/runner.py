"""Run the selected checks over targets: one sample, one `Report`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from .catalog import CheckSpec, select_checks
from .client import AdminClient
from .context import Baselines, BaselineView, Context, GateSettingsLike, Verdict
from .endpoint import Endpoint, assess
from .observe import Observation, Read, observe
from .result import SKIPPED_BY_CONFIGURATION, CheckResult, Report, Status, TargetReport
from .target import Target

__all__ = ["run_checks", "RATE_LOOKBACK_SAMPLES", "MAX_HISTORY", "BASELINE_REFERENCE"]

# Rates are judged over the last few samples: one sample (1 s) is too few requests
# to tell noise from a fault; the whole window dilutes a late fault.
RATE_LOOKBACK_SAMPLES = 5
MAX_HISTORY = 600  # samples kept per target; the window's first sample is always kept
# The checks whose canary verdict compares with baseline pods. A baseline pod is a reference only
# (its own failures never gate), so it is read for these alone: no /server_info (~120 KiB on a
# proxy's first sample), /certs or /ready from each of them. Its other checks report `skip`.
BASELINE_REFERENCE = frozenset({"canary-vs-baseline", "config-parity", "proxy-memory"})


async def run_checks(
    targets: Sequence[Target],
    settings: GateSettingsLike,
    *,
    client: AdminClient | None = None,
    previous: Report | None = None,
    only: Sequence[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] | None = None,
) -> Report:
    """Take one sample of every target and judge it.

    Without `previous`, counters are judged since each proxy started. Pass the
    previous sample's report to judge them as deltas: rates over the last
    `RATE_LOOKBACK_SAMPLES` samples and over everything since the first report
    of the chain (the gate window). `only` restricts to these check ids
    (besides `settings.checks`/`skip_checks`). Never raises for a proxy that
    cannot be read: its checks report `error`. Raises ValueError for unknown
    check ids or duplicate target names.
    """
    selected, skipped = select_checks(settings, only=only)
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"target names must be unique, got {sorted(n for n in set(names) if names.count(n) > 1)}")
    own_client = client is None
    client = client or AdminClient()
    try:
        taken_at = clock()
        reads = {r for c in selected for r in c.reads}
        reference = {r for c in selected if c.id in BASELINE_REFERENCE for r in c.reads}
        patterns = {p for c in selected for p in c.stats}
        last = {name: chain[-1] for name, chain in previous.history.items() if chain} if previous is not None else {}
        observations = await asyncio.gather(
            *(observe(client, t, reference if t.role == "baseline" else reads, stat_patterns=patterns,
                      taken_at=taken_at, previous=last.get(t.name))
              for t in targets)
        )
    finally:
        if own_client:
            await client.aclose()
    history: dict[str, tuple[Observation, ...]] = {}
    for target, obs in zip(targets, observations):
        earlier = tuple(previous.history.get(target.name, ())) if previous is not None else ()
        if len(earlier) >= MAX_HISTORY:
            earlier = earlier[:1] + earlier[-(MAX_HISTORY - 2):]
        history[target.name] = (*earlier, obs)
    now = (wall_clock or (lambda: datetime.now(timezone.utc)))()
    return evaluate(targets, history, settings, selected, skipped, now=now, taken_at=taken_at)


def _refs(chain: tuple[Observation, ...]) -> tuple[Observation | None, Observation | None, Observation | None]:
    """(previous, recent, start) references for the newest observation of a chain."""
    if len(chain) < 2:
        return None, None, None
    previous = chain[-2]
    recent = chain[max(0, len(chain) - 1 - RATE_LOOKBACK_SAMPLES)]
    return previous, recent, chain[0]


def evaluate(
    targets: Sequence[Target],
    history: Mapping[str, tuple[Observation, ...]],
    settings: GateSettingsLike,
    selected: Sequence[CheckSpec],
    skipped: Sequence[CheckSpec],
    *,
    now: datetime,
    taken_at: float,
) -> Report:
    baselines: list[BaselineView] = []
    for t in targets:
        if t.role == "baseline":
            _, recent, start = _refs(history[t.name])
            baselines.append(BaselineView(t, history[t.name][-1], recent, start))
    shared = Baselines(baselines)
    reports = []
    for target in targets:
        chain = history[target.name]
        previous, recent, start = _refs(chain)
        ctx = Context(
            target=target, settings=settings, obs=chain[-1], now=now,
            previous=previous, recent=recent, start=start, baselines=shared,
        )
        endpoint = assess(chain[-1], target.admin_url)
        results = [_not_read(spec) if target.role == "baseline" and spec.id not in BASELINE_REFERENCE
                   else _judge(spec, ctx, endpoint) for spec in selected]
        results += [_skipped(spec) for spec in skipped]
        order = {c.id: i for i, c in enumerate((*selected, *skipped))}
        results.sort(key=lambda r: order[r.check_id])
        reports.append(TargetReport(target.name, target.admin_url, target.role, tuple(results), endpoint=endpoint))
    return Report(tuple(reports), taken_at=taken_at, meta={"time": _rfc3339(now)}, history=dict(history))


def _judge(spec: CheckSpec, ctx: Context, endpoint: Endpoint) -> CheckResult:
    if not endpoint.ok and Read.POD not in spec.reads:
        return _result(spec, Verdict(Status.ERROR, f"not run: endpoint {endpoint.status} ({endpoint.kind})",
                                     details={"error": endpoint.kind, "endpoint": endpoint.status}))
    for read in spec.reads:
        error = ctx.obs.failed(read)
        if error is not None:
            return _result(spec, Verdict(Status.ERROR, f"cannot read {read.value}: {error}", details={"error": error.kind}))
    try:
        verdict = spec.evaluate(ctx)
    except Exception as exc:  # noqa: BLE001 - an unexpected answer shape must not crash a gate
        verdict = Verdict(Status.ERROR, f"could not judge: {type(exc).__name__}: {exc}")
    return _result(spec, verdict)


def _result(spec: CheckSpec, verdict: Verdict) -> CheckResult:
    status = verdict.status
    if status is Status.FAIL and not spec.fatal:
        status = Status.WARN
    return CheckResult(
        check_id=spec.id,
        status=status,
        message=verdict.message,
        category=spec.category,
        description=spec.description,
        fatal=spec.fatal,
        hint=spec.hint,
        observed=verdict.observed,
        threshold=verdict.threshold,
        no_data=verdict.no_data,
        details=verdict.details,
    )


def _not_read(spec: CheckSpec) -> CheckResult:
    return _skipped(spec, "not read on a baseline pod: it is only the canaries' reference")


def _skipped(spec: CheckSpec, message: str = SKIPPED_BY_CONFIGURATION) -> CheckResult:
    return CheckResult(
        check_id=spec.id, status=Status.SKIP, message=message,
        category=spec.category, description=spec.description, fatal=spec.fatal, hint=spec.hint,
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
