"""The peer's queries against the real thing: our Prometheus scraping a real Envoy 1.40.0.

Prometheus is installed and started exactly as the benchmark does it; when it
cannot be, the test fails with the command to run (it is never skipped).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

import localmesh as lm
from bench._flagger import AGGRESSIVE, DURATION_QUERY, ENVOY_STATS_FLUSH_S, SUCCESS_RATE_QUERY, query_value, render
from bench._prometheus import PrometheusServer, PrometheusUnavailable, ScrapeTarget, ensure_prometheus

pytestmark = pytest.mark.envoy

NAMESPACE, WORKLOAD = "shop", "web"
CODES = (200, 503)


@pytest.fixture(scope="module")
def proxy() -> Iterator[lm.Proxy]:
    with lm.Upstream(name="prom") as upstream:
        proxy = lm.start_proxy(lm.target_envoy(), upstream, name="web")
        try:
            yield proxy
        finally:
            proxy.stop()


@pytest.fixture(scope="module")
def prometheus(proxy: lm.Proxy) -> Iterator[PrometheusServer]:
    try:
        ensure_prometheus()
    except PrometheusUnavailable as exc:
        pytest.fail(str(exc))
    pod = ScrapeTarget(proxy.admin_port, {"kubernetes_namespace": NAMESPACE,
                                          "kubernetes_pod_name": f"{WORKLOAD}-6d8f7c9b4-x2k8q"})
    with PrometheusServer([pod], scrape_interval_s=1) as server:
        yield server


def send(proxy: lm.Proxy, ok: int, failed: int) -> None:
    lm.send_traffic(proxy.url, requests=ok, rate_per_s=None, concurrency=2)
    lm.send_traffic(proxy.url, requests=failed, rate_per_s=None, concurrency=2, path="/status/503")


def envoy_counts(proxy: lm.Proxy) -> dict[int, int]:
    return {code: proxy.stat(f"cluster.upstream.upstream_rq_{code}") for code in CODES}


def scraped_counts(prom: PrometheusServer) -> dict[int, int]:
    result = prom.query('envoy_cluster_upstream_rq{envoy_cluster_name="upstream"}')["result"]
    return {int(r["metric"]["envoy_response_code"]): int(float(r["value"][1])) for r in result}


def test_success_rate_query_returns_the_rate_envoy_counted(proxy: lm.Proxy, prometheus: PrometheusServer) -> None:
    # Both series must exist well before the query window, so that every sample in
    # the window is a scrape of both (rate() then extrapolates both alike).
    send(proxy, ok=20, failed=2)
    before = envoy_counts(proxy)
    lm.wait_until(lambda: scraped_counts(prometheus) == before, timeout_s=15, what="first traffic scraped")
    window_start = time.monotonic() + 2
    time.sleep(4)
    send(proxy, ok=90, failed=10)
    after = envoy_counts(proxy)
    lm.wait_until(lambda: scraped_counts(prometheus) == after, timeout_s=15, what="second traffic scraped")
    time.sleep(1.2)  # one more scrape, of the same values
    window = math.ceil(time.monotonic() - window_start)

    ok, failed = after[200] - before[200], after[503] - before[503]
    assert (ok, failed) == (90, 10)  # what Envoy itself counted
    promql = render(SUCCESS_RATE_QUERY, namespace=NAMESPACE, target=WORKLOAD, window_s=window)
    rate = query_value(prometheus.query(promql))
    assert rate == pytest.approx(100 * ok / (ok + failed), rel=1e-9)


def test_duration_query_returns_envoys_p99_in_milliseconds(proxy: lm.Proxy, prometheus: PrometheusServer) -> None:
    promql = render(DURATION_QUERY, namespace=NAMESPACE, target=WORKLOAD, window_s=AGGRESSIVE.duration_window_s)
    send(proxy, ok=40, failed=0)

    def p99() -> float | None:  # histograms reach /stats/prometheus at Envoy's next stats flush
        value = query_value(prometheus.query(promql))
        return None if math.isnan(value) else value

    value = lm.wait_until(p99, timeout_s=3 * ENVOY_STATS_FLUSH_S, interval_s=0.5, what="a p99 from the histogram")
    assert 0 < value < AGGRESSIVE.max_duration_ms  # the local upstream answers in tens of milliseconds


def test_a_workload_without_pods_has_no_values(prometheus: PrometheusServer) -> None:
    promql = render(SUCCESS_RATE_QUERY, namespace=NAMESPACE, target="absent", window_s=4)
    assert prometheus.query(promql)["result"] == []
