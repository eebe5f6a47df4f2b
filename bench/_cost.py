"""What watching N proxies costs each observer: CPU seconds and peak RSS per minute of watching.

N real Envoys (1.40.0, static config, a little traffic through each so every
counter series exists). Then, one observer at a time, for `seconds` of watching:

- the peer: our Prometheus scraping all N at the setting's scrape interval, and
  the analysis's two queries (success rate, p99 duration) over all N pods every
  analysis interval; measured: the Prometheus process (the query client is a
  few HTTP requests a second);
- meshlift: its gate, in a process of its own (bench/_gate_worker.py), sampling
  all N at the default interval of 1 s; measured: that process.

CPU = user + system seconds (psutil) between the start and the end of watching;
peak RSS = the process's VmHWM at the end (its whole life: for Prometheus this
includes its start and the first scrapes, for meshlift's process its imports).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

import localmesh as lm

from ._flagger import Analysis, PeerSettings, run_checks
from ._measure import process_peak_rss
from ._prometheus import PrometheusServer, ScrapeTarget
from .fleet import start_fleet

WORKLOAD = "fleet"
NAMESPACE = "bench"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cost:
    observer: str  # "Prometheus (aggressive)" ...
    proxies: int
    seconds: float
    cpu_s: float
    peak_rss: int
    detail: str

    @property
    def cpu_per_minute(self) -> float:
        return self.cpu_s / self.seconds * 60


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def start_watched_fleet(upstream: lm.Upstream, size: int) -> list[lm.Proxy]:
    fleet = start_fleet(lm.target_envoy(), upstream, size, 0)
    with ThreadPoolExecutor(16) as pool:  # every counter series exists before anyone watches
        list(pool.map(lambda p: lm.send_traffic(p.url, requests=10, rate_per_s=None, concurrency=2), fleet))
    return fleet


def prometheus_cost(fleet: list[lm.Proxy], settings: PeerSettings, seconds: float) -> Cost:
    targets = [ScrapeTarget(p.admin_port, {"kubernetes_namespace": NAMESPACE,
                                           "kubernetes_pod_name": f"{WORKLOAD}-6d8f7c9b4-p{i:04d}"})
               for i, p in enumerate(fleet)]
    with PrometheusServer(targets, scrape_interval_s=settings.scrape_interval_s) as prom:
        lm.wait_until(lambda: prom.scraped_up() == len(fleet), timeout_s=3 * settings.scrape_interval_s + 30,
                      interval_s=0.5, what=f"all {len(fleet)} proxies scraped")
        process = psutil.Process(prom.pid)
        analysis = Analysis(settings, promote=False)
        outcomes = []
        started, cpu0 = time.monotonic(), _cpu(process)
        tick = 0
        while True:
            tick += 1
            due = started + tick * settings.interval_s
            if due > started + seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            outcomes.append(analysis.tick(lambda: run_checks(prom.query, settings, namespace=NAMESPACE,
                                                             target=WORKLOAD)))
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        elapsed, cpu = time.monotonic() - started, _cpu(process) - cpu0
        peak = process_peak_rss(prom.pid)
        head = prom.query('count({job="envoy-stats"})')["result"]
        series = int(float(head[0]["value"][1])) if head else 0
    kinds = sorted({o.kind.value for o in outcomes if o is not None})
    return Cost(f"Prometheus ({settings.name}: scrape {settings.scrape_interval_s:g} s)", len(fleet), elapsed,
                cpu, peak, f"{len(outcomes)} analysis checks ({', '.join(kinds) or 'none'}); "
                f"{series:,} series scraped")


def meshlift_cost(fleet: list[lm.Proxy], seconds: float) -> Cost:
    worker = subprocess.Popen([sys.executable, "-m", "bench._gate_worker", str(seconds)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(json.dumps([p.admin_port for p in fleet]) + "\n")
        worker.stdin.flush()
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("meshlift's gate worker did not start")
        process = psutil.Process(worker.pid)
        started, cpu0 = time.monotonic(), _cpu(process)
        summary = json.loads(worker.stdout.readline())
        elapsed, cpu = time.monotonic() - started, _cpu(process) - cpu0
        peak = process_peak_rss(worker.pid)
        worker.stdin.close()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return Cost("meshlift gate (interval 1 s)", len(fleet), elapsed, cpu, peak,
                f"{summary['samples']} samples of all {len(fleet)} proxies "
                f"({summary['samples'] / elapsed * 60:.0f}/min; verdicts {', '.join(summary['verdicts'])})")


def measure(size: int, settings: list[PeerSettings], seconds: float,
            progress=print) -> list[Cost]:  # type: ignore[no-untyped-def]
    """Start `size` Envoys, then measure each observer watching them for `seconds`."""
    costs = []
    with lm.Upstream(name="cost") as upstream:
        started = time.monotonic()
        fleet = start_watched_fleet(upstream, size)
        progress(f"   cost: {size} Envoys up and carrying traffic in {time.monotonic() - started:.0f} s")
        try:
            for setting in settings:
                costs.append(prometheus_cost(fleet, setting, seconds))
                progress(f"   cost: {costs[-1].observer}: {costs[-1].cpu_s:.1f} CPU s in {costs[-1].seconds:.0f} s")
            costs.append(meshlift_cost(fleet, seconds))
            progress(f"   cost: {costs[-1].observer}: {costs[-1].cpu_s:.1f} CPU s in {costs[-1].seconds:.0f} s")
        finally:
            lm.stop_proxies(fleet)
    return costs


if __name__ == "__main__":  # a manual look: python -m bench._cost SIZE SECONDS
    from ._flagger import AGGRESSIVE
    lm.install_signal_handlers()
    for cost in measure(int(sys.argv[1]), [AGGRESSIVE], float(sys.argv[2])):
        print(cost)
