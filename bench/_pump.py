"""Noisy but healthy traffic, kept flowing through the canary and the baseline in the background.

Each proxy gets its own thread sending bursts of 0.5 s at a rate jittered
between `rate_low` and `rate_high` requests/s, with 5 % of requests asking for
`/status/404` (an application's normal "not found", not a failure) and, at
random, one `/status/503` now and then (about 0.5 % of requests: below the
99 % success threshold, like a real service's background errors). With
`canary_error_fraction` the canary additionally answers that fraction with
503 (a *subtle* bad canary, for counting false promotions).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import localmesh as lm

BURST_S = 0.5
NOISE_404 = 0.05
NOISE_503 = 0.005


def send_burst(proxy: lm.Proxy, rng: random.Random, *, rate_low: float, rate_high: float,
               error_fraction: float = 0.0) -> dict[str, int]:
    """One burst of noisy healthy traffic through `proxy`; the counts of what came back."""
    result = lm.send_traffic(proxy.url, requests=None, duration_s=BURST_S,
                             rate_per_s=rng.uniform(rate_low, rate_high),
                             concurrency=2, noise_fraction=NOISE_404, timeout_s=1.0)
    extra = 1 if rng.random() < NOISE_503 * result.sent else 0
    if error_fraction:
        extra += round(result.sent * error_fraction)
    if extra:
        more = lm.send_traffic(proxy.url, requests=extra, rate_per_s=None, concurrency=1,
                               path="/status/503", timeout_s=1.0)
        result.statuses[503] = result.statuses.get(503, 0) + more.count(503)
    return {"requests": result.sent, "404": result.count(404), "5xx": result.server_errors,
            "errors": sum(result.errors.values())}


@dataclass
class Pump:
    baseline: lm.Proxy
    canary: lm.Proxy | None = None
    rate_low: float = 30.0
    rate_high: float = 80.0
    canary_error_fraction: float = 0.0
    seed: int = 5
    sent: dict[str, dict[str, int]] = field(default_factory=lambda: {
        role: {"requests": 0, "404": 0, "5xx": 0, "errors": 0} for role in ("canary", "baseline")})
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    started: float = 0.0
    stopped: float = 0.0

    def start(self) -> Pump:
        self.started = time.monotonic()
        for role in ("canary", "baseline"):
            thread = threading.Thread(target=self._loop, args=(role,), name=f"pump-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.stopped = time.monotonic()

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.stopped or time.monotonic()) - self.started)

    def _loop(self, role: str) -> None:
        rng = random.Random(f"{self.seed}-{role}")
        while not self._stop.is_set():
            proxy = self.canary if role == "canary" else self.baseline
            if proxy is None or not proxy.running:
                self._stop.wait(0.05)
                continue
            counts = send_burst(proxy, rng, rate_low=self.rate_low, rate_high=self.rate_high,
                                error_fraction=self.canary_error_fraction if role == "canary" else 0.0)
            with self._lock:
                for key, value in counts.items():
                    self.sent[role][key] += value

    def __enter__(self) -> Pump:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class FleetPump:
    """The same noisy healthy traffic through each of several proxies, one thread each."""

    proxies: list[lm.Proxy]
    rate_low: float = 30.0
    rate_high: float = 80.0
    seed: int = 7
    sent: dict[str, dict[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> FleetPump:
        for proxy in self.proxies:
            self.sent[proxy.spec.name] = {"requests": 0, "404": 0, "5xx": 0, "errors": 0}
            thread = threading.Thread(target=self._loop, args=(proxy,), name=f"pump-{proxy.spec.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _loop(self, proxy: lm.Proxy) -> None:
        rng = random.Random(f"{self.seed}-{proxy.spec.name}")
        while not self._stop.is_set():
            if not proxy.running:
                self._stop.wait(0.05)
                continue
            counts = send_burst(proxy, rng, rate_low=self.rate_low, rate_high=self.rate_high)
            with self._lock:
                for key, value in counts.items():
                    self.sent[proxy.spec.name][key] += value
