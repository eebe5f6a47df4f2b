"""The peer's decision: Flagger's built-in canary analysis for Envoy proxies, over Prometheus.

What Flagger does, and so what this module does (fluxcd/flagger, `pkg/metrics/observers`,
`pkg/metrics/providers/prometheus.go`, `pkg/controller/scheduler*.go`):

- Its Envoy-stats templates (the App Mesh observer; the Istio observer runs the same
  shape over `istio_requests_total`, which only Istio's stats plugin exports) are
  `request-success-rate` = non-5xx rate of `envoy_cluster_upstream_rq` / all, x 100,
  and `request-duration` = `histogram_quantile(0.99, ...envoy_cluster_upstream_rq_time_bucket)`
  in milliseconds, each over the metric's `interval` as the rate window, selected by
  the pods' `kubernetes_namespace` / `kubernetes_pod_name` labels.
- A query runs as an instant query on `/api/v1/query` with whitespace collapsed; the
  value is the *last* result's; an empty result is `ErrNoValuesFound`. `NaN` (0/0: no
  request in the window) parses as a number, and NaN compares false with the
  threshold, so it *passes* (`min > NaN` is false; the duration's `int64(NaN)` is
  negative on amd64, never above `max`).
- Every analysis `interval` (a ticker; Flagger clamps it to at least 10 s) one tick:
  first, if `failedChecks >= threshold`, roll back; else run the checks in order,
  stopping at the first failure (a breach, no values, or a query error all count):
  a failure is `failedChecks + 1`; a pass advances the canary weight, and a pass at
  `maxWeight` promotes. Failed checks are never reset during an analysis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

SUCCESS_RATE_QUERY = """
sum(
  rate(
    envoy_cluster_upstream_rq{
      kubernetes_namespace="{namespace}",
      kubernetes_pod_name=~"{target}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
      envoy_response_code!~"5.*"
    }[{interval}]
  )
)
/
sum(
  rate(
    envoy_cluster_upstream_rq{
      kubernetes_namespace="{namespace}",
      kubernetes_pod_name=~"{target}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
    }[{interval}]
  )
)
* 100"""

DURATION_QUERY = """
histogram_quantile(
  0.99,
  sum(
    rate(
      envoy_cluster_upstream_rq_time_bucket{
        kubernetes_namespace="{namespace}",
        kubernetes_pod_name=~"{target}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
      }[{interval}]
    )
  ) by (le)
)"""

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PeerSettings:
    """One configuration of the peer: Prometheus's scrape interval and Flagger's analysis."""

    name: str
    scrape_interval_s: float
    interval_s: float  # the analysis interval: one check per tick
    threshold: int  # failed checks before rollback
    success_window_s: float  # request-success-rate metric interval (the rate window)
    duration_window_s: float  # request-duration metric interval
    min_success_rate: float = 99.0  # thresholdRange.min, percent
    max_duration_ms: float = 500.0  # thresholdRange.max
    passes_to_promote: int = 5  # maxWeight 50 / stepWeight 10: five passing checks

    def describe(self) -> str:
        return (f"scrape {self.scrape_interval_s:g} s, analysis interval {self.interval_s:g} s, "
                f"threshold {self.threshold}, success-rate window {self.success_window_s:g} s, "
                f"duration window {self.duration_window_s:g} s")


# Flagger's documented example analysis (its Istio and App Mesh tutorials):
# interval 1m, threshold 5, maxWeight 50, stepWeight 10, request-success-rate min 99
# over 1m, request-duration max 500 ms over 30s; Prometheus's default scrape is 1m,
# the Prometheus that Flagger's charts install scrapes every 15s.
DEFAULT = PeerSettings("default", scrape_interval_s=15, interval_s=60, threshold=5,
                       success_window_s=60, duration_window_s=30)
# The fastest sound setting: a 1 s scrape and a success-rate window of four scrapes
# (rate() needs two samples in the window; four keep one late scrape from emptying
# it), a check every second. Envoy exports histograms only as of its last stats flush
# (every 5 s by default), so a duration window shorter than that is often empty (NaN,
# which passes): it spans two flushes. Flagger itself would clamp the 1 s interval to 10 s.
ENVOY_STATS_FLUSH_S = 5.0
AGGRESSIVE = PeerSettings("aggressive", scrape_interval_s=1, interval_s=1, threshold=5,
                          success_window_s=4, duration_window_s=2 * ENVOY_STATS_FLUSH_S)


def render(template: str, *, namespace: str, target: str, window_s: float) -> str:
    """The query as Flagger sends it: template filled, whitespace collapsed to single spaces."""
    filled = (template.replace("{namespace}", namespace).replace("{target}", target)
              .replace("{interval}", f"{window_s:g}s"))
    return _SPACE.sub(" ", filled).strip()


class NoValuesFound(LookupError):
    """The query returned no series: Flagger's `ErrNoValuesFound` (probably no traffic)."""


def query_value(data: Mapping[str, Any]) -> float:
    """The value Flagger takes from an instant query's `data`: the last result's; NaN kept."""
    value: float | None = None
    for result in data.get("result", []):
        raw = result.get("value", [None, None])[1]
        if isinstance(raw, str):
            value = float(raw)  # "NaN", "+Inf" parse as Go's ParseFloat does
    if value is None:
        raise NoValuesFound("no values found")
    return value


class CheckKind(str, Enum):
    PASS = "pass"
    BREACH = "breach"
    NO_VALUES = "no-values"
    ERROR = "error"


@dataclass(frozen=True)
class CheckOutcome:
    kind: CheckKind
    message: str
    success_rate: float | None = None
    duration_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind is CheckKind.PASS


def success_rate_breached(value: float, minimum: float) -> bool:
    return minimum > value  # NaN: False, the check passes (as in Go)


def duration_breached(value_ms: float, maximum_ms: float) -> bool:
    # Flagger: time.Duration(int64(value)) * time.Millisecond > max. int64(NaN) is the
    # minimum int64 on amd64 (so never above max); the fraction of a millisecond is cut.
    if math.isnan(value_ms):
        return False
    if math.isinf(value_ms):
        return value_ms > 0
    return math.trunc(value_ms) > maximum_ms


Query = Callable[[str], Mapping[str, Any]]  # promql -> the API's `data`; raises on error


def run_checks(query: Query, settings: PeerSettings, *, namespace: str, target: str) -> CheckOutcome:
    """One tick's metric checks, in Flagger's order, stopping at the first failure."""
    rate = duration = None
    for metric in ("request-success-rate", "request-duration"):
        template, window = ((SUCCESS_RATE_QUERY, settings.success_window_s) if metric == "request-success-rate"
                            else (DURATION_QUERY, settings.duration_window_s))
        promql = render(template, namespace=namespace, target=target, window_s=window)
        try:
            value = query_value(query(promql))
        except NoValuesFound:
            return CheckOutcome(CheckKind.NO_VALUES, f"Halt advancement no values found for {metric} metric "
                                f"probably {target}.{namespace} is not receiving traffic", rate, duration)
        except Exception as exc:  # noqa: BLE001 - any query failure is a failed check in Flagger
            return CheckOutcome(CheckKind.ERROR, f"Prometheus query failed: {exc}", rate, duration)
        if metric == "request-success-rate":
            rate = value
            if success_rate_breached(value, settings.min_success_rate):
                return CheckOutcome(CheckKind.BREACH, f"Halt {target}.{namespace} advancement success rate "
                                    f"{value:.2f}% < {settings.min_success_rate:g}%", rate, duration)
        else:
            duration = value
            if duration_breached(value, settings.max_duration_ms):
                return CheckOutcome(CheckKind.BREACH, f"Halt {target}.{namespace} advancement request duration "
                                    f"{value:.0f}ms > {settings.max_duration_ms:g}ms", rate, duration)
    return CheckOutcome(CheckKind.PASS, "checks passed", rate, duration)


class Decision(str, Enum):
    ROLLED_BACK = "rolled-back"
    PROMOTED = "promoted"


@dataclass
class Analysis:
    """Flagger's per-tick bookkeeping for one canary; `promote=False` keeps it watching."""

    settings: PeerSettings
    promote: bool = True
    failed_checks: int = 0
    passed_checks: int = 0
    decision: Decision | None = None

    def tick(self, run: Callable[[], CheckOutcome]) -> CheckOutcome | None:
        """One analysis tick; returns the check's outcome, or None on the tick that rolls back."""
        if self.decision is not None:
            raise RuntimeError(f"the analysis already decided: {self.decision.value}")
        if self.failed_checks >= self.settings.threshold:
            self.decision = Decision.ROLLED_BACK
            return None
        outcome = run()
        if not outcome.ok:
            self.failed_checks += 1
        else:
            self.passed_checks += 1
            if self.promote and self.passed_checks >= self.settings.passes_to_promote:
                self.decision = Decision.PROMOTED
        return outcome
