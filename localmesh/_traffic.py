"""A bounded load generator: real HTTP requests through a proxy listener on loopback."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._ports import LOOPBACK

NOISE_PATH = "/status/404"  # noisy but healthy: a 404 is the service's answer, not a failure


@dataclass
class TrafficResult:
    """What the clients saw: answers by status code and transport errors by kind."""

    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def count(self, low: int, high: int | None = None) -> int:
        """Answers with status in [low, high] (high defaults to low; e.g. count(500, 599))."""
        high = low if high is None else high
        return sum(n for code, n in self.statuses.items() if low <= code <= high)

    @property
    def server_errors(self) -> int:
        return self.count(500, 599)


def send_traffic(
    url: str,
    *,
    requests: int | None = 100,
    duration_s: float | None = None,
    rate_per_s: float | None = 200.0,
    concurrency: int = 4,
    noise_fraction: float = 0.0,
    path: str = "/",
    timeout_s: float = 2.0,
) -> TrafficResult:
    """Send requests to `url` (an http://127.0.0.1:<port> listener) and count the answers.

    Bounded by `requests` and/or `duration_s` (at least one is required);
    paced at `rate_per_s` overall (None = as fast as `concurrency` clients go).
    Every 1/`noise_fraction`-th request asks for `/status/404` instead of `path`.
    """
    if requests is None and duration_s is None:
        raise ValueError("traffic must be bounded: give requests and/or duration_s")
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost"):
        raise ValueError(f"traffic stays on loopback over plain HTTP, not {url!r}")
    port = parts.port or 80
    result = TrafficResult()
    lock = threading.Lock()
    tickets = itertools.count()
    start = time.monotonic()
    end = start + duration_s if duration_s is not None else float("inf")

    def record(status: int | None, error: str | None) -> None:
        with lock:
            if status is not None:
                result.statuses[status] = result.statuses.get(status, 0) + 1
            else:
                result.errors[error or "error"] = result.errors.get(error or "error", 0) + 1

    def client() -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
        try:
            while True:
                i = next(tickets)
                if requests is not None and i >= requests:
                    return
                due = start + i / rate_per_s if rate_per_s else time.monotonic()
                if due >= end:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                noisy = int((i + 1) * noise_fraction) > int(i * noise_fraction)
                try:
                    conn.request("GET", NOISE_PATH if noisy else path)
                    resp = conn.getresponse()
                    resp.read()
                    record(resp.status, None)
                    if resp.will_close:
                        conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reopened by the next request
                    record(None, type(exc).__name__)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"traffic-{n}", daemon=True)
               for n in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.duration_s = time.monotonic() - start
    return result
