"""The peer's decision logic (Flagger's analysis), on canned Prometheus answers: shape only.

That the success-rate query returns the real rate from a real Prometheus scraping a
real Envoy is proven in test_prometheus_envoy.py.
"""

from __future__ import annotations

import math

import pytest

from bench._flagger import (
    AGGRESSIVE,
    DEFAULT,
    DURATION_QUERY,
    ENVOY_STATS_FLUSH_S,
    SUCCESS_RATE_QUERY,
    Analysis,
    CheckKind,
    CheckOutcome,
    Decision,
    NoValuesFound,
    query_value,
    render,
    run_checks,
)


def vector(*values: str) -> dict:
    return {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, v]} for v in values]}


def test_success_rate_query_is_flaggers_envoy_template_with_whitespace_collapsed() -> None:
    promql = render(SUCCESS_RATE_QUERY, namespace="shop", target="web", window_s=60)
    assert promql == (
        'sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="shop", '
        'kubernetes_pod_name=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", envoy_response_code!~"5.*" }[60s] ) ) '
        '/ sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="shop", '
        'kubernetes_pod_name=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[60s] ) ) * 100')


def test_duration_query_uses_its_own_window_and_the_p99_of_upstream_rq_time() -> None:
    promql = render(DURATION_QUERY, namespace="shop", target="web", window_s=AGGRESSIVE.duration_window_s)
    assert promql.startswith("histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{")
    assert promql.endswith("}[10s] ) ) by (le) )")


def test_rate_windows_hold_four_scrapes_and_histograms_two_envoy_stats_flushes() -> None:
    assert AGGRESSIVE.success_window_s / AGGRESSIVE.scrape_interval_s >= 4
    assert AGGRESSIVE.duration_window_s >= 2 * ENVOY_STATS_FLUSH_S
    assert DEFAULT.duration_window_s / DEFAULT.scrape_interval_s >= 2
    assert (DEFAULT.interval_s, DEFAULT.threshold, DEFAULT.min_success_rate) == (60, 5, 99.0)


def test_query_value_takes_the_last_result_and_keeps_nan() -> None:
    assert query_value(vector("97.5", "42")) == 42.0
    assert math.isnan(query_value(vector("NaN")))


def test_empty_result_is_no_values_found() -> None:
    with pytest.raises(NoValuesFound):
        query_value(vector())


def answers(rate: str | None, duration: str | None = "40"):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def query(promql: str) -> dict:
        asked.append(promql)
        value = rate if "envoy_response_code" in promql else duration
        return vector() if value is None else vector(value)

    return query, asked


def test_success_rate_below_min_is_a_breach_in_flaggers_words_and_stops_the_checks() -> None:
    query, asked = answers("97.1")
    outcome = run_checks(query, AGGRESSIVE, namespace="shop", target="web")
    assert outcome.kind is CheckKind.BREACH
    assert outcome.message == "Halt web.shop advancement success rate 97.10% < 99%"
    assert len(asked) == 1  # request-duration is not queried after a failure


def test_nan_success_rate_and_nan_duration_pass_as_in_go() -> None:
    query, asked = answers("NaN", "NaN")
    outcome = run_checks(query, AGGRESSIVE, namespace="shop", target="web")
    assert outcome.kind is CheckKind.PASS and len(asked) == 2


def test_duration_above_max_is_a_breach_and_its_fraction_of_a_millisecond_is_cut() -> None:
    assert run_checks(answers("100", "500.9")[0], AGGRESSIVE, namespace="s", target="w").ok
    outcome = run_checks(answers("100", "501")[0], AGGRESSIVE, namespace="s", target="w")
    assert outcome.kind is CheckKind.BREACH and "request duration 501ms > 500ms" in outcome.message


def test_no_values_is_reported_apart_from_a_breach() -> None:
    outcome = run_checks(answers(None)[0], AGGRESSIVE, namespace="shop", target="web")
    assert outcome.kind is CheckKind.NO_VALUES and not outcome.ok
    assert "no values found for request-success-rate" in outcome.message


def test_a_query_error_is_a_failed_check() -> None:
    def broken(promql: str) -> dict:
        raise OSError("connection refused")

    outcome = run_checks(broken, AGGRESSIVE, namespace="shop", target="web")
    assert outcome.kind is CheckKind.ERROR and "connection refused" in outcome.message


PASS = CheckOutcome(CheckKind.PASS, "ok")
FAIL = CheckOutcome(CheckKind.BREACH, "bad")


def test_rollback_comes_on_the_tick_after_the_threshold_th_failed_check() -> None:
    analysis = Analysis(AGGRESSIVE, promote=False)
    for _ in range(AGGRESSIVE.threshold):
        assert analysis.tick(lambda: FAIL) is FAIL
    assert analysis.decision is None
    assert analysis.tick(lambda: PASS) is None  # the check is not even run
    assert analysis.decision is Decision.ROLLED_BACK


def test_failed_checks_accumulate_across_passes() -> None:
    analysis = Analysis(AGGRESSIVE, promote=False)
    for outcome in (FAIL, PASS, FAIL, PASS, FAIL, PASS, FAIL, PASS, FAIL):
        analysis.tick(lambda o=outcome: o)
    assert analysis.failed_checks == 5
    analysis.tick(lambda: PASS)
    assert analysis.decision is Decision.ROLLED_BACK


def test_promotion_on_the_fifth_passing_check_and_not_while_only_watching() -> None:
    analysis = Analysis(AGGRESSIVE)
    for _ in range(4):
        analysis.tick(lambda: PASS)
    analysis.tick(lambda: FAIL)
    assert analysis.decision is None
    analysis.tick(lambda: PASS)
    assert analysis.decision is Decision.PROMOTED
    watching = Analysis(AGGRESSIVE, promote=False)
    for _ in range(20):
        watching.tick(lambda: PASS)
    assert watching.decision is None
    with pytest.raises(RuntimeError):
        analysis.tick(lambda: PASS)
