"""Benchmark 1: time from fault onset to the gate's failed decision, and a healthy soak.

A real canary (Envoy 1.40.0) runs beside a baseline (Envoy 1.39.3), both
carrying noisy but healthy traffic (bench/_pump.py). Three kinds of windows:

- *decision*: a gate is sampling the healthy canary; at a random instant 4-7 s
  in (so the rate lookback is full of healthy samples) a fault is injected.
  Onset = the monotonic instant just before `inject_fault` is called (so the
  time Envoy takes to apply the change counts against us); decision = the
  instant `on_sample` receives the failing sample (failure_limit 1: that
  sample is the decision). Every decision-relevant setting is the default
  (interval 1 s, failure_limit 1, thresholds); only `consecutive_passes` and
  `window` are raised so the gate cannot promote before the fault arrives.
- *healthy soak*: gates at the full default settings (interval 1 s, 3
  consecutive passes, window 30 s) on healthy canaries, one after another;
  a fresh canary every 10 windows (a fresh one starts with no traffic).
- *faulty*: gates at the default settings started with a fault already in
  force, on a fresh canary each; plus a *subtle* bad canary answering 5 % 503.

A false rollback is a healthy window whose gate does not pass (failed or
inconclusive), or a decision window whose gate fails before the fault onset.
A false promotion is a faulty window (including decision windows) whose gate passes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import localmesh as lm
from checks import GateOutcome, GateSample, Target, run_gate
from meshmodel.spec import GateSettings

from ._measure import Summary
from ._pump import NOISE_404, NOISE_503, Pump
from ._result import Section, Table, TargetCheck

FAULTS = ("5xx", "reject-config", "overload")


@dataclass
class Window:
    kind: str  # decision:<fault> | healthy | faulty:<fault>
    outcome: str
    message: str
    failing_checks: tuple[str, ...]
    samples: int
    elapsed: float
    onset_to_decision: float | None = None
    failed_before_onset: bool = False

    @property
    def false_rollback(self) -> bool:
        if self.kind == "healthy":
            return self.outcome != GateOutcome.PASSED.value
        return self.failed_before_onset

    @property
    def false_promotion(self) -> bool:
        return self.kind != "healthy" and self.outcome == GateOutcome.PASSED.value


@dataclass
class Bench:
    upstream: lm.Upstream
    baseline: lm.Proxy
    pump: Pump
    serial: int = 0
    canaries: list[lm.Proxy] = field(default_factory=list)

    def new_canary(self) -> lm.Proxy:
        """A fresh canary proxy; the previous one stops once traffic has moved off it."""
        self.serial += 1
        canary = lm.start_proxy(lm.target_envoy(), self.upstream, name=f"canary-{self.serial}",
                                overload=lm.OverloadThresholds(), revision="canary")
        old, self.pump.canary = self.pump.canary, canary
        if old is not None:
            time.sleep(0.05)
            old.stop()
        return canary

    def targets(self, canary: lm.Proxy) -> tuple[list[Target], list[Target]]:
        return ([Target(name=canary.spec.name, admin_url=canary.admin_url, role="canary",
                        expected_version=canary.binary.version)],
                [Target(name="baseline", admin_url=self.baseline.admin_url, role="baseline")])


async def decision_window(bench: Bench, fault: str, offset_s: float, warmup_s: float = 1.0) -> Window:
    canary = bench.new_canary()
    await asyncio.sleep(warmup_s)  # traffic flowing through the new canary
    canaries, baselines = bench.targets(canary)
    settings = GateSettings(consecutive_passes=10_000, window=offset_s + 20)
    onset: list[float] = []
    decided: list[float] = []
    before: list[GateSample] = []
    injected: list[lm.InjectedFault] = []

    def on_sample(sample: GateSample) -> None:
        now = time.monotonic()
        if not onset:
            before.append(sample)
        elif sample.verdict == "fail" and not decided:
            decided.append(now)

    async def inject() -> None:
        await asyncio.sleep(offset_s)
        onset.append(time.monotonic())
        injected.append(await asyncio.to_thread(lm.inject_fault, canary, fault))

    injector = asyncio.create_task(inject())
    result = await run_gate(canaries, settings, baseline_targets=baselines, on_sample=on_sample)
    injector.cancel()
    for f in injected:
        await asyncio.to_thread(f.revert)
    early_fail = any(s.verdict == "fail" for s in before)
    return Window(f"decision:{fault}", result.outcome.value, result.message, result.failing_checks,
                  len(result.samples), result.elapsed,
                  onset_to_decision=(decided[0] - onset[0]) if decided and onset else None,
                  failed_before_onset=early_fail)


async def gate_window(bench: Bench, kind: str, canary: lm.Proxy) -> Window:
    canaries, baselines = bench.targets(canary)
    result = await run_gate(canaries, GateSettings(), baseline_targets=baselines)
    return Window(kind, result.outcome.value, result.message, result.failing_checks,
                  len(result.samples), result.elapsed)


async def faulty_window(bench: Bench, fault: str) -> Window:
    canary = bench.new_canary()
    await asyncio.sleep(1.0)
    if fault == "5xx-5%":
        bench.pump.canary_error_fraction = 0.05
        await asyncio.sleep(1.0)
        try:
            return await gate_window(bench, f"faulty:{fault}", canary)
        finally:
            bench.pump.canary_error_fraction = 0.0
    injected = await asyncio.to_thread(lm.inject_fault, canary, fault)
    await asyncio.sleep(0.5)
    try:
        return await gate_window(bench, f"faulty:{fault}", canary)
    finally:
        await asyncio.to_thread(injected.revert)


async def _run(bench: Bench, *, quick: bool) -> tuple[list[Window], float]:
    rng = random.Random(20261121)
    reps = 1 if quick else 5
    low, high = _offsets(quick)
    windows: list[Window] = []
    for rep in range(reps):
        for fault in FAULTS:
            windows.append(await decision_window(bench, fault, rng.uniform(low, high), 0.5 if quick else 1.0))
    soak_started = time.monotonic()
    healthy_windows, per_canary = (3, 3) if quick else (50, 10)
    canary = None
    for i in range(healthy_windows):
        if i % per_canary == 0:
            canary = bench.new_canary()
        windows.append(await gate_window(bench, "healthy", canary))
    soak_s = time.monotonic() - soak_started
    for _ in range(1 if quick else 5):
        for fault in (*FAULTS, "5xx-5%"):
            windows.append(await faulty_window(bench, fault))
    return windows, soak_s


def _offsets(quick: bool) -> tuple[float, float]:
    return (1.0, 1.5) if quick else (4.0, 7.0)


def run(*, quick: bool) -> Section:
    with lm.Upstream(name="decision") as upstream:
        baseline = lm.start_proxy(lm.stable_envoy(), upstream, name="baseline", revision="stable")
        pump = Pump(baseline=baseline)
        bench = Bench(upstream, baseline, pump)
        try:
            with pump:
                windows, soak_s = asyncio.run(_run(bench, quick=quick))
        finally:
            if pump.canary is not None:
                pump.canary.stop()
            baseline.stop()
    return _section(windows, soak_s, pump, quick=quick)


def _section(windows: list[Window], soak_s: float, pump: Pump, *, quick: bool) -> Section:
    rows, data = [], {}
    all_latencies = []
    for fault in FAULTS:
        ws = [w for w in windows if w.kind == f"decision:{fault}"]
        lat = [w.onset_to_decision for w in ws if w.onset_to_decision is not None and w.outcome == "failed"]
        all_latencies += lat
        checks = sorted({c for w in ws for c in w.failing_checks})
        summary = Summary.of(lat) if lat else None
        rows.append([fault, summary.fmt("s") if summary else "no decision",
                     f"{len(lat)}/{len(ws)}", ", ".join(checks) or "—"])
        data[fault] = {"latencies": lat, "outcomes": [w.outcome for w in ws], "messages": [w.message for w in ws]}
    healthy = [w for w in windows if w.kind == "healthy"]
    faulty = [w for w in windows if w.kind != "healthy"]
    false_rollbacks = [w for w in windows if w.false_rollback]
    false_promotions = [w for w in windows if w.false_promotion]
    soak_rows = [
        ["healthy windows (default settings)", str(len(healthy)),
         f"{sum(w.outcome == 'passed' for w in healthy)} passed", f"**{sum(w.false_rollback for w in healthy)}** false rollbacks"],
    ]
    for kind in sorted({w.kind for w in faulty}):
        ws = [w for w in faulty if w.kind == kind]
        soak_rows.append([kind, str(len(ws)),
                          ", ".join(f"{sum(w.outcome == o for w in ws)} {o}" for o in ("failed", "inconclusive", "passed")
                                    if any(w.outcome == o for w in ws)),
                          f"**{sum(w.false_promotion for w in ws)}** false promotions"
                          + (f", {sum(w.failed_before_onset for w in ws)} failed before onset" if kind.startswith("decision") else "")])
    healthy_elapsed = Summary.of(w.elapsed for w in healthy) if healthy else None
    worst = max(all_latencies) if all_latencies else float("inf")
    median_all = Summary.of(all_latencies).median if all_latencies else float("inf")
    decided_all = all(w.outcome == "failed" and w.onset_to_decision is not None
                      for w in windows if w.kind.startswith("decision"))
    met = decided_all and worst <= 5.0
    base, can = pump.sent["baseline"], pump.sent["canary"]
    total = base["requests"] or 1
    low, high = _offsets(quick)
    notes = [f"{w.kind}: {w.outcome}: {w.message}" for w in (*false_rollbacks, *false_promotions)][:10]
    notes.append("Why under a second: with `interval` 1 s and `failureLimit` 1 the decision is the first sample "
                 "after onset, so latency ≈ the wait for the next sample (0–1 s, uniform) + one sample (~50 ms "
                 "for two proxies); a fault whose admin signal needs traffic (5xx) also needs enough failed "
                 "requests in the 5-sample lookback to be significant (Wilson bound, 99 %).")
    return Section(
        name="decision",
        title="1. Time to decision and healthy soak",
        method=[
            "Canary Envoy 1.40.0 (fresh per decision/faulty window, overload manager wired) beside a baseline Envoy "
            "1.39.3, both in front of one local upstream service, with traffic through both the whole time.",
            f"Traffic (noisy but healthy): bursts of 0.5 s at a rate jittered 30–80 req/s per proxy, {NOISE_404:.0%} "
            f"`/status/404` (the generator's pattern gives fewer in short bursts), about {NOISE_503:.1%} "
            f"`/status/503` at random. Baseline (healthy throughout): {base['requests']:,} requests, "
            f"{base['404'] / total:.1%} 404, {base['5xx'] / total:.2%} 5xx, {base['errors']} transport errors. "
            f"Achieved rate on the baseline: {base['requests'] / pump.seconds:.0f} req/s on average (two client "
            "connections per proxy; localmesh's upstream answers a keep-alive request in ~40 ms, which caps "
            "each connection near 24 req/s). "
            f"Canaries: {can['requests']:,} requests, {can['5xx']:,} 5xx and {can['errors']} transport errors, "
            "faults included (overload refuses requests, a stopped canary cuts its connections).",
            f"Decision: fault injected at a random instant {low:g}–{high:g} s into a running gate; onset = just before "
            "`localmesh.inject_fault` is called (Envoy's time to apply it counts), decision = `on_sample` receiving "
            "the failing sample. Default `GateSettings()` except `consecutive_passes` and `window`, raised so the "
            "gate is still watching when the fault arrives.",
            "Healthy soak: back-to-back gates at the full default settings (interval 1 s, 3 consecutive passes, "
            f"window 30 s, failure limit 1), a fresh canary every 10 windows; each window lasts until the gate "
            f"decides (median {healthy_elapsed.median if healthy_elapsed else 0:.1f} s), so "
            f"{len(healthy)} windows took {soak_s:.0f} s.",
            "Faulty windows: gates at the default settings started with the fault already in force (fresh canary "
            "each), and a subtle bad canary answering 5 % 503 (above the 1 % budget of `minSuccessRate` 99 %).",
            "False rollback = a healthy window that does not pass (failed or inconclusive), or a decision window "
            "failing before the fault onset. False promotion = a decision or faulty window that passes.",
        ],
        tables=[
            Table("Fault onset → failed decision (default interval 1 s, failure limit 1)",
                  ["fault", "onset → decision (median, range)", "decided", "failing checks"], rows),
            Table("Soak and false decisions", ["windows", "count", "outcomes", "false decisions"], soak_rows),
        ],
        targets=[
            TargetCheck("Decision within 5 s of fault onset (default gate settings)",
                        f"median {median_all:.2f} s, worst {worst:.2f} s over {len(all_latencies)} faults",
                        met, "" if met else "see the table"),
            TargetCheck("0 false decisions in the soak",
                        f"{len(false_rollbacks)} false rollbacks in {len(healthy)} healthy windows (+ decision "
                        f"windows before onset), {len(false_promotions)} false promotions in {len(faulty)} faulty windows",
                        not false_rollbacks and not false_promotions,
                        "" if not false_rollbacks and not false_promotions else "; ".join(notes[:3])),
        ],
        notes=notes,
        data={"faults": data, "windows": [w.__dict__ for w in windows], "soak_s": soak_s, "traffic": pump.sent},
        quick=quick,
    )
