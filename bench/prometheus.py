"""Benchmark: meshlift against the real peer, a Prometheus-based canary analysis, in one run.

The peer is what users would pick instead: Flagger's built-in analysis of Envoy
proxies (bench/_flagger.py) over our own real Prometheus (bench/_prometheus.py)
scraping the same Envoys meshlift reads. Both watch the same canaries under the
same faults at the same time (bench/_sidebyside.py), at the peer's aggressive
settings and (full run only) at Flagger's defaults; then what each costs to watch
200 proxies (bench/_cost.py; full run only, `--quick` watches 10 for a few seconds).
"""

from __future__ import annotations

import asyncio

import localmesh as lm

from . import _cost
from ._flagger import AGGRESSIVE, DEFAULT
from ._peer_report import section
from ._prometheus import ensure_prometheus, prometheus_version
from ._pump import FleetPump
from ._result import Section
from ._sidebyside import Observation, PhasePlan, run_phase


def plans(quick: bool) -> list[PhasePlan]:
    if quick:
        return [PhasePlan(AGGRESSIVE, rep=1, offset_s=(1.0, 2.0), timeout_s=10.0)]
    aggressive = [PhasePlan(AGGRESSIVE, rep=rep, offset_s=(2.0, 4.0), timeout_s=20.0) for rep in (1, 2, 3)]
    # Onset anywhere within one analysis interval after the windows are full; the peer may
    # take its first failing check (<= one interval + one scrape) plus `threshold` ticks.
    worst = (DEFAULT.threshold + 1) * DEFAULT.interval_s + DEFAULT.scrape_interval_s + 45
    default = PhasePlan(DEFAULT, rep=1, offset_s=(5.0, 5.0 + DEFAULT.interval_s), timeout_s=worst,
                        healthy_canaries=3, faulty_windows=False)
    return [*aggressive, default]


def run(*, quick: bool) -> Section:
    binary = ensure_prometheus()
    observations: list[Observation] = []
    traffic: dict[str, dict[str, int]] = {}
    with lm.Upstream(name="peer") as upstream:
        baseline = lm.start_proxy(lm.stable_envoy(), upstream, name="baseline", revision="stable")
        try:
            with FleetPump([baseline]) as pump:
                for plan in plans(quick):
                    phase = asyncio.run(run_phase(upstream, baseline, plan))
                    observations += phase.observations
                    for name, counts in phase.traffic.items():
                        traffic[f"{plan.settings.name}:{name}"] = counts
            traffic["baseline"] = pump.sent["baseline"]
        finally:
            baseline.stop()
    size, seconds = (10, 2.0) if quick else (200, 60.0)
    costs = _cost.measure(size, [AGGRESSIVE] if quick else [AGGRESSIVE, DEFAULT], seconds)
    return section(observations, costs, traffic, quick=quick, prometheus=prometheus_version(binary))
