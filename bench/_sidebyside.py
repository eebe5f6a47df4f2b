"""meshlift and the Prometheus-based peer watching the same canaries, the same faults, at once.

One *phase* = one peer setting (bench/_flagger.py): fresh canaries (Envoy 1.40.0,
TLS listener and overload manager wired), one per fault plus some healthy ones,
noisy healthy traffic through all of them and through a baseline (Envoy 1.39.3),
and our own Prometheus scraping every canary's `/stats/prometheus` at the
setting's scrape interval, each canary labelled like a pod of its own workload.
Once the peer's rate windows are full of healthy traffic:

- a *decision window* per fault canary: meshlift's gate (default settings, kept
  from promoting) and the peer's analysis (kept from promoting) start together;
  the fault is injected at a random instant; each observer's decision instant is
  recorded (meshlift: the failing sample; the peer: the tick that rolls back);
- right after it, with the fault still in force, a *faulty window*: both
  observers at their full settings, promotion allowed (does either promote it?);
- meanwhile on the healthy canaries, back-to-back *healthy windows* of both.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import localmesh as lm
from checks import GateOutcome, GateSample, Target, run_gate
from meshmodel.spec import GateSettings

from ._flagger import Analysis, CheckKind, PeerSettings, run_checks
from ._prometheus import PrometheusServer, ScrapeTarget
from ._pump import FleetPump

FAULTS = ("5xx", "upstream-down", "reject-config", "overload", "cert-expiry")
NAMESPACE = "bench"


@dataclass
class Observation:
    """One observer's view of one window."""

    observer: str  # meshlift | peer
    settings: str  # the peer setting of the phase (meshlift always runs its defaults)
    kind: str  # decision:<fault> | faulty:<fault> | healthy
    outcome: str  # meshlift: passed/failed/inconclusive; peer: rolled-back/promoted/undecided
    elapsed: float
    onset_to_decision: float | None = None
    onset_to_threshold: float | None = None  # peer: to the threshold-th failed check
    failed_before_onset: int = 0  # failing samples / failed checks before the onset
    checks: int = 0  # samples (meshlift) or checks run (peer)
    failed_checks: int = 0
    no_values: int = 0
    message: str = ""

    @property
    def decided_fail(self) -> bool:
        return self.outcome in (GateOutcome.FAILED.value, "rolled-back")

    @property
    def promoted(self) -> bool:
        return self.outcome in (GateOutcome.PASSED.value, "promoted")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Canary:
    proxy: lm.Proxy
    workload: str  # the peer's `target`: its pod is <workload>-<hash>-<id>
    pod: str
    fault: str | None = None

    @property
    def scrape(self) -> ScrapeTarget:
        return ScrapeTarget(self.proxy.admin_port, {"kubernetes_namespace": NAMESPACE, "kubernetes_pod_name": self.pod})

    @property
    def target(self) -> Target:
        return Target(name=self.workload, admin_url=self.proxy.admin_url, role="canary",
                      expected_version=self.proxy.binary.version)


@dataclass
class PhasePlan:
    settings: PeerSettings
    rep: int
    offset_s: tuple[float, float]  # fault onset, after both observers started
    timeout_s: float  # how long after onset an observer may take to decide
    healthy_canaries: int = 2
    faulty_windows: bool = True
    seed: int = 20261201


@dataclass
class Phase:
    plan: PhasePlan
    prometheus: PrometheusServer
    baseline: lm.Proxy
    observations: list[Observation] = field(default_factory=list)
    traffic: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def settings(self) -> PeerSettings:
        return self.plan.settings


def _workload(fault: str | None, rep: int, n: int = 0) -> str:
    stem = "healthy" + string.ascii_lowercase[n] if fault is None else fault.replace("-", "")
    return f"{stem}{rep}"


def start_canaries(upstream: lm.Upstream, plan: PhasePlan) -> list[Canary]:
    """One canary per fault and `plan.healthy_canaries` healthy ones, each its own workload."""
    wanted = [(fault, _workload(fault, plan.rep)) for fault in FAULTS]
    wanted += [(None, _workload(None, plan.rep, n)) for n in range(plan.healthy_canaries)]
    canaries = []
    for fault, workload in wanted:
        spec = lm.ProxySpec(binary=lm.target_envoy(), name=workload, revision="canary", tls=True,
                            overload=lm.OverloadThresholds())
        suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
        canaries.append(Canary(lm.Proxy(spec, upstream=upstream.endpoint(workload)), workload,
                               pod=f"{workload}-6d8f7c9b4-{suffix}", fault=fault))
    lm.start_proxies([c.proxy for c in canaries], timeout_s=60)
    return canaries


async def run_phase(upstream: lm.Upstream, baseline: lm.Proxy, plan: PhasePlan,
                    progress: Callable[[str], None] = print) -> Phase:
    """Start the phase's canaries and Prometheus, warm up, run every window; stops all it started."""
    canaries = start_canaries(upstream, plan)
    settings = plan.settings
    try:
        with FleetPump([c.proxy for c in canaries]) as pump, \
                PrometheusServer([c.scrape for c in canaries],
                                 scrape_interval_s=settings.scrape_interval_s) as prom:
            phase = Phase(plan, prom, baseline)
            warmup = max(settings.success_window_s, settings.duration_window_s) + 2 * settings.scrape_interval_s + 1
            progress(f"   {settings.name} #{plan.rep}: {len(canaries)} canaries, Prometheus scraping every "
                     f"{settings.scrape_interval_s:g} s; warming up {warmup:.0f} s")
            await asyncio.sleep(warmup)
            await asyncio.to_thread(lm.wait_until, lambda: prom.scraped_up() == len(canaries),
                                    timeout_s=3 * settings.scrape_interval_s + 10, what="every canary scraped")
            rng = random.Random(f"{plan.seed}-{settings.name}-{plan.rep}")
            # A faulty window typically ends in threshold + 1 ticks (rollback) or 5 (promotion).
            faulty_s = (settings.threshold + 1) * settings.interval_s if plan.faulty_windows else 0.0
            end = time.monotonic() + plan.offset_s[1] + plan.timeout_s + faulty_s
            jobs = [_fault_windows(phase, c, rng.uniform(*plan.offset_s)) for c in canaries if c.fault]
            jobs += [_soak(phase, c, end, "meshlift") for c in canaries if not c.fault]
            jobs += [_soak(phase, c, end, "peer") for c in canaries if not c.fault]
            await asyncio.gather(*jobs)
        phase.traffic = pump.sent
        return phase
    finally:
        for canary in canaries:
            canary.proxy.stop()


async def _fault_windows(phase: Phase, canary: Canary, offset_s: float) -> None:
    assert canary.fault is not None
    onset: list[float] = []
    injected: list[lm.InjectedFault] = []

    async def inject() -> None:
        await asyncio.sleep(offset_s)
        onset.append(time.monotonic())
        injected.append(await asyncio.to_thread(lm.inject_fault, canary.proxy, canary.fault))

    deadline = time.monotonic() + offset_s + phase.plan.timeout_s
    kind = f"decision:{canary.fault}"
    injector = asyncio.create_task(inject())
    watched = await asyncio.gather(
        _meshlift_window(phase, canary, kind, onset=onset, window_s=offset_s + phase.plan.timeout_s),
        _peer_window(phase, canary, kind, onset=onset, deadline=deadline, promote=False))
    await injector
    phase.observations += watched
    try:
        if phase.plan.faulty_windows:
            kind = f"faulty:{canary.fault}"
            worst = _longest_peer_window(phase.settings)
            phase.observations += await asyncio.gather(
                _meshlift_window(phase, canary, kind),
                _peer_window(phase, canary, kind, deadline=time.monotonic() + worst, promote=True))
    finally:
        for fault in injected:
            await asyncio.to_thread(fault.revert)


async def _soak(phase: Phase, canary: Canary, end: float, observer: str) -> None:
    """Back-to-back healthy windows of one observer until `end` (a peer window that would
    typically end after `end` is not started)."""
    settings = phase.settings
    typical = 0.0 if observer == "meshlift" else settings.passes_to_promote * settings.interval_s
    while time.monotonic() + typical < end:
        if observer == "meshlift":
            phase.observations.append(await _meshlift_window(phase, canary, "healthy"))
        else:
            phase.observations.append(await _peer_window(
                phase, canary, "healthy", deadline=time.monotonic() + _longest_peer_window(settings), promote=True))


def _longest_peer_window(settings: PeerSettings) -> float:
    """A window that promotes or rolls back takes at most this many ticks (+ one spare)."""
    return (settings.threshold + settings.passes_to_promote + 2) * settings.interval_s


async def _meshlift_window(phase: Phase, canary: Canary, kind: str, *, onset: list[float] | None = None,
                           window_s: float | None = None) -> Observation:
    """meshlift's gate on `canary` (+ the baseline). With `onset`: kept watching, timed from the onset."""
    settings = GateSettings() if onset is None else GateSettings(consecutive_passes=10_000, window=window_s)
    decided: list[float] = []
    before = [0]

    def on_sample(sample: GateSample) -> None:
        if onset is None or sample.verdict != "fail":
            return
        if not onset:
            before[0] += 1
        elif not decided:
            decided.append(time.monotonic())

    baseline = Target(name="baseline", admin_url=phase.baseline.admin_url, role="baseline")
    result = await run_gate([canary.target], settings, baseline_targets=[baseline], on_sample=on_sample)
    return Observation(
        "meshlift", phase.settings.name, kind, result.outcome.value, result.elapsed,
        onset_to_decision=(decided[0] - onset[0]) if decided and onset else None,
        failed_before_onset=before[0], checks=len(result.samples),
        failed_checks=sum(s.verdict == "fail" for s in result.samples),
        no_values=sum(s.verdict == "no-data" for s in result.samples),
        message=result.message)


async def _peer_window(phase: Phase, canary: Canary, kind: str, *, deadline: float, promote: bool,
                       onset: list[float] | None = None) -> Observation:
    """The peer's analysis of `canary`: one tick per analysis interval until it decides or `deadline`."""
    settings = phase.settings
    analysis = Analysis(settings, promote=promote)
    started = time.monotonic()
    threshold_at: float | None = None
    decided_at: float | None = None
    before = no_values = checks = 0
    last = ""

    def check():  # type: ignore[no-untyped-def]
        return run_checks(phase.prometheus.query, settings, namespace=NAMESPACE, target=canary.workload)

    tick = 0
    while analysis.decision is None:
        tick += 1
        due = started + tick * settings.interval_s
        if due > deadline:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        outcome = await asyncio.to_thread(analysis.tick, check)
        now = time.monotonic()
        if outcome is None:  # the rollback tick
            decided_at = now
            break
        checks += 1
        last = outcome.message
        if outcome.kind is CheckKind.NO_VALUES:
            no_values += 1
        if not outcome.ok:
            if onset is not None and not onset:
                before += 1
            if analysis.failed_checks == settings.threshold:
                threshold_at = now
        if analysis.decision is not None:
            decided_at = now
    start_of_fault = onset[0] if onset else None
    return Observation(
        "peer", settings.name, kind, analysis.decision.value if analysis.decision else "undecided",
        time.monotonic() - started,
        onset_to_decision=(decided_at - start_of_fault) if decided_at and start_of_fault
        and analysis.decision is not None and analysis.decision.value == "rolled-back" else None,
        onset_to_threshold=(threshold_at - start_of_fault) if threshold_at and start_of_fault else None,
        failed_before_onset=before, checks=checks, failed_checks=analysis.failed_checks,
        no_values=no_values, message=last)
