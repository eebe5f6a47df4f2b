"""Gates over simulated traffic: fake clock and sleep, counters that move like a proxy's."""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Callable

import pytest

from checks import GateOutcome, GateSample, run_gate
from meshmodel.spec import GateSettings

from .recorded import FakeAdmin

RPS = 60  # requests per second through each simulated proxy


class Simulation:
    """Advances time and each proxy's counters: `error_rate(t)` per proxy decides each request."""

    def __init__(self, admin: FakeAdmin, seed: int = 7) -> None:
        self.admin = admin
        self.now = 1000.0
        self.random = random.Random(seed)
        self.error_rates: dict[str, Callable[[float], float]] = {}
        self.started = self.now

    def proxy(self, name: str, error_rate: Callable[[float], float] = lambda t: 0.0, rps: int = RPS) -> None:
        self.admin.proxy(name).stats.update({"cluster.upstream.upstream_rq_completed": 0})
        self.error_rates[name] = error_rate
        self.rps = rps

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        steps = max(1, round(seconds * 10))
        for _ in range(steps):
            self.now += seconds / steps
            for name, rate in self.error_rates.items():
                p = rate(self.now - self.started)
                n = round(self.rps * seconds / steps)
                errors = sum(self.random.random() < p for _ in range(n))
                proxy = self.admin.proxy(name)
                proxy.add("cluster.upstream.upstream_rq_completed", n)
                if errors:
                    proxy.add("cluster.upstream.upstream_rq_5xx", errors)


async def gate(sim: Simulation, settings: GateSettings, canaries: list[str], baselines: list[str] = (), **kw):
    async with sim.admin.client() as client:
        return await run_gate(
            [sim.admin.target(n, role="canary") for n in canaries], settings,
            baseline_targets=[sim.admin.target(n, role="baseline") for n in baselines],
            client=client, sleep=sim.sleep, clock=sim.clock, **kw,
        )


def healthy_then_warm(sim: Simulation, name: str) -> None:
    sim.proxy(name)
    sim.admin.proxy(name).stats["cluster.upstream.upstream_rq_completed"] = 500  # some history


async def test_healthy_canary_passes_after_consecutive_passes() -> None:
    sim = Simulation(FakeAdmin())
    healthy_then_warm(sim, "canary")
    result = await gate(sim, GateSettings(), ["canary"])
    assert result.outcome is GateOutcome.PASSED
    assert [s.verdict for s in result.samples] == ["pass", "pass", "pass"]
    assert result.failing_checks == ()


@pytest.mark.parametrize("seed", range(8))
async def test_noisy_but_healthy_traffic_never_fails_the_default_gate(seed: int) -> None:
    # 0.5% errors at 60 rps: single 1-second samples often show 1 error in 60 (98.3% < 99%).
    sim = Simulation(FakeAdmin(), seed=seed)
    sim.proxy("canary", lambda t: 0.005)
    result = await gate(sim, GateSettings(consecutive_passes=30, window=30), ["canary"])
    assert result.outcome is not GateOutcome.FAILED, result.message
    assert all(s.verdict != "fail" for s in result.samples)
    # The noise is real: judged one sample at a time, some seconds are below 99%.
    counts = [
        (st.number("cluster.upstream.upstream_rq_completed"), st.number("cluster.upstream.upstream_rq_5xx"))
        for st in (s.report.history["canary"][-1].stats for s in result.samples)
    ]
    per_second = [1 - (e1 - e0) / (c1 - c0) for (c0, e0), (c1, e1) in zip(counts, counts[1:]) if c1 > c0]
    assert any(rate < 0.99 for rate in per_second)


@pytest.mark.parametrize("error_rate", [1.0, 0.3, 0.1])
async def test_fault_is_caught_within_five_seconds_of_onset(error_rate: float) -> None:
    onset = 10.0
    sim = Simulation(FakeAdmin(), seed=3)
    sim.proxy("canary", lambda t: error_rate if t >= onset else 0.002)
    result = await gate(sim, GateSettings(consecutive_passes=100, window=30), ["canary"])
    assert result.outcome is GateOutcome.FAILED
    assert "upstream-success-rate" in result.failing_checks
    assert result.elapsed - onset <= 5.0


async def test_halt_message_follows_the_flagger_template() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("canary")
    sim.admin.proxy("canary").stats.update({"cluster.upstream.upstream_rq_completed": 250, "cluster.upstream.upstream_rq_5xx": 22})
    result = await gate(sim, GateSettings(), ["canary"], name="canary 1-40-0")
    assert result.message == "Halt canary 1-40-0 advancement: upstream success rate 91.20% < 99.00%"
    assert len(result.samples) == 1  # failure_limit 1: the first failing sample decides


async def test_no_traffic_is_inconclusive_not_failed() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("canary", rps=0)
    result = await gate(sim, GateSettings(window=5), ["canary"])
    assert result.outcome is GateOutcome.INCONCLUSIVE
    assert "no traffic" in result.message and result.failing_checks == ("upstream-success-rate",)
    assert {s.verdict for s in result.samples} == {"no-data"}
    assert len(result.samples) == 6  # samples at 0..5 s, then the window is over


async def test_failure_limit_counts_failing_samples() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("canary")
    sim.admin.proxy("canary").ready = (503, "DRAINING")
    result = await gate(sim, GateSettings(failure_limit=3), ["canary"])
    assert result.outcome is GateOutcome.FAILED and len(result.samples) == 3
    assert "proxy-ready" in result.failing_checks


async def test_a_failing_sample_resets_consecutive_passes() -> None:
    sim = Simulation(FakeAdmin())
    healthy_then_warm(sim, "canary")
    states = iter([(200, "LIVE"), (200, "LIVE"), (503, "INITIALIZING"), (200, "LIVE"), (200, "LIVE"), (200, "LIVE")])
    sim.admin.proxy("canary").ready = next(states)

    def advance(sample: GateSample) -> None:
        sim.admin.proxy("canary").ready = next(states, (200, "LIVE"))

    result = await gate(sim, GateSettings(failure_limit=2), ["canary"], on_sample=advance)
    assert [s.verdict for s in result.samples] == ["pass", "pass", "fail", "pass", "pass", "pass"]
    assert result.outcome is GateOutcome.PASSED


async def test_canary_worse_than_baseline_fails_while_both_above_absolute_threshold() -> None:
    sim = Simulation(FakeAdmin(), seed=11)
    sim.proxy("stable", lambda t: 0.0)
    sim.proxy("canary", lambda t: 0.0 if t < 3 else 0.04)
    settings = GateSettings(min_success_rate=0.9, max_error_rate_delta=0.01, consecutive_passes=30)
    result = await gate(sim, settings, ["canary"], ["stable"])
    assert result.outcome is GateOutcome.FAILED
    assert result.failing_checks == ("canary-vs-baseline",)
    assert "canary error rate" in result.message and "exceeds baseline" in result.message


async def test_baseline_failures_are_reported_but_do_not_gate() -> None:
    sim = Simulation(FakeAdmin())
    healthy_then_warm(sim, "canary")
    healthy_then_warm(sim, "stable")
    sim.admin.proxy("stable").stats["server.memory_allocated"] = 10**12
    result = await gate(sim, GateSettings(max_memory_bytes=10**9), ["canary"], ["stable"])
    assert result.outcome is GateOutcome.PASSED
    last = result.samples[-1].report
    assert not last.target("stable").success and last.target("canary").success


async def test_evidence_is_json_serialisable_and_journalled_per_sample() -> None:
    sim = Simulation(FakeAdmin())
    healthy_then_warm(sim, "canary")
    journal: list[str] = []

    async def on_sample(sample: GateSample) -> None:
        journal.append(json.dumps(sample.to_dict()))

    result = await gate(sim, GateSettings(), ["canary"], on_sample=on_sample)
    assert len(journal) == len(result.samples) == 3
    decoded = json.loads(json.dumps(result.to_dict()))
    assert decoded["outcome"] == "passed" and decoded["samples"][0]["report"]["targets"][0]["name"] == "canary"


async def test_a_gate_needs_canaries_and_known_checks() -> None:
    sim = Simulation(FakeAdmin())
    with pytest.raises(ValueError):
        await gate(sim, GateSettings(), [])
    sim.proxy("canary")
    with pytest.raises(ValueError, match="bogus"):
        await gate(sim, GateSettings(checks=["bogus"]), ["canary"])


async def test_samples_slower_than_the_interval_do_not_stretch_the_window() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("canary", rps=0)  # no traffic: the gate can only run out of window
    real_observe_cost = 4.0  # each sample takes 4 s (say, a hanging baseline at its deadline)
    original = sim.admin.handle

    def slow(request):
        if request.url.path == "/ready":
            sim.now += real_observe_cost
        return original(request)

    sim.admin.handle = slow
    result = await gate(sim, GateSettings(window=10, interval=1), ["canary"])
    assert result.outcome is GateOutcome.INCONCLUSIVE
    assert result.elapsed <= 10 + real_observe_cost
    assert len(result.samples) == 3  # at 0, 4 and 8 s of a 10 s window


class Churning(FakeAdmin):
    """Proxies whose pod is gone refuse connections, as a deleted pod's port-forward does."""

    def __init__(self) -> None:
        super().__init__()
        self.gone: set[str] = set()

    def handle(self, request):
        import httpx

        if request.url.host.removesuffix(".test") in self.gone:
            raise httpx.ConnectError("connection refused", request=request)
        return super().handle(request)


def _churn(after_samples: int, sim: Simulation, admin: Churning):
    """Pod b ends after `after_samples` samples (an HPA scale-down, a drained node)."""
    seen = {"samples": 0}

    def on_sample(sample) -> None:
        seen["samples"] += 1
        if seen["samples"] == after_samples:
            admin.gone.add("b")
    return on_sample


async def test_a_canary_pod_that_ends_mid_window_is_replaced_by_its_successor_not_failed() -> None:
    admin = Churning()
    sim = Simulation(admin)
    for name in ("a", "b", "c"):
        healthy_then_warm(sim, name)
    found_again = []

    def retarget():
        found_again.append(sorted(admin.gone))
        return [admin.target("a", role="canary"), admin.target("c", role="canary")], []

    result = await gate(sim, GateSettings(consecutive_passes=3), ["a", "b"], on_sample=_churn(1, sim, admin),
                        retarget=retarget)
    assert result.outcome is GateOutcome.PASSED, result.message
    assert [s.verdict for s in result.samples] == ["pass", "retargeted", "pass", "pass", "pass"]
    assert found_again == [["b"]], "found again once, after the failing sample"
    assert set(result.samples[-1].report.to_dict()["targets"][i]["name"] for i in range(2)) == {"a", "c"}


async def test_a_one_replica_canary_replaced_mid_window_waits_for_its_successor_instead_of_failing() -> None:
    admin = Churning()
    sim = Simulation(admin)
    for name in ("b", "b2"):
        healthy_then_warm(sim, name)
    finds = [[], [], [admin.target("b2", role="canary")]]  # the successor runs from the third discovery on

    def retarget():
        return (finds.pop(0) if len(finds) > 1 else finds[0]), []

    result = await gate(sim, GateSettings(consecutive_passes=2, failure_limit=1), ["b"],
                        on_sample=_churn(1, sim, admin), retarget=retarget)
    assert result.outcome is GateOutcome.PASSED, result.message
    assert [s.verdict for s in result.samples] == ["pass", "retargeted", "retargeted", "retargeted", "pass", "pass"]
    assert [t["name"] for t in result.samples[-1].report.to_dict()["targets"]] == ["b2"]


async def test_a_successor_is_judged_once_its_proxy_is_ready_not_while_it_starts() -> None:
    from checks.target import ContainerFacts, PodFacts

    admin = Churning()
    sim = Simulation(admin)
    for name in ("a", "b", "b2"):
        healthy_then_warm(sim, name)
    admin.gone.add("b2")  # its Envoy is not listening yet: judged now, it would fail
    readiness = iter([False, False, True])
    found = []

    def successor() -> object:
        ready = next(readiness, True)
        if ready:
            admin.gone.discard("b2")
        proxy = ContainerFacts("istio-proxy", None, ready, is_proxy=True)
        return admin.target("b2", role="canary", pod=PodFacts("shop", "b2", "1-31-0", (proxy,)))

    def retarget():
        canaries = [admin.target("a", role="canary"), successor()]
        found.append([t.name for t in canaries])
        return canaries, []

    result = await gate(sim, GateSettings(consecutive_passes=4, failure_limit=1), ["a", "b"],
                        on_sample=_churn(1, sim, admin), retarget=retarget)
    assert result.outcome is GateOutcome.PASSED, result.message
    assert [s.verdict for s in result.samples] == ["pass", "retargeted", "pass", "pass", "pass", "pass"]
    judged = [[t["name"] for t in s.report.to_dict()["targets"]] for s in result.samples]
    assert judged[2:4] == [["a"], ["a"]], "not judged while its proxy starts"
    assert judged[4:] == [["a", "b2"], ["a", "b2"]] and len(found) == 3, "found again each sample until ready"


async def test_without_retargeting_or_when_the_pod_is_still_there_a_failing_sample_counts() -> None:
    admin = Churning()
    sim = Simulation(admin)
    for name in ("a", "b"):
        healthy_then_warm(sim, name)
    result = await gate(sim, GateSettings(), ["a", "b"], on_sample=_churn(1, sim, admin))
    assert result.outcome is GateOutcome.FAILED
    admin.gone.clear()
    still_there = await gate(sim, GateSettings(), ["a", "b"], on_sample=_churn(1, sim, admin),
                             retarget=lambda: ([admin.target("a", role="canary"), admin.target("b", role="canary")], []))
    assert still_there.outcome is GateOutcome.FAILED, "an unreachable pod that still runs fails the gate"


async def test_a_gates_evidence_is_kept_out_of_the_collectors_walks_until_it_ends() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("can")
    frozen_while_sampling: list[int] = []
    result = await gate(sim, GateSettings(), ["can"],
                        on_sample=lambda _: frozen_while_sampling.append(gc.get_freeze_count()))
    assert result.outcome is GateOutcome.PASSED and len(frozen_while_sampling) >= 3
    # What existed at the start, then each sample's report, is frozen: more after every sample.
    assert 0 < frozen_while_sampling[0] < frozen_while_sampling[-1]
    assert gc.get_freeze_count() == 0  # all handed back to the collector


async def test_a_process_that_froze_objects_itself_keeps_them_frozen_and_nothing_more() -> None:
    sim = Simulation(FakeAdmin())
    sim.proxy("can")
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        seen: list[int] = []
        await gate(sim, GateSettings(), ["can"], on_sample=lambda _: seen.append(gc.get_freeze_count()))
        # Frozen objects can still be freed (reference counting), never added to, nor unfrozen.
        assert seen and all(0 < count <= before for count in (*seen, gc.get_freeze_count()))
    finally:
        gc.unfreeze()
