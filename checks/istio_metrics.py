"""Istio's standard request metric, `istio_requests_total`, read from a proxy's own stats.

Istio's `istio.stats` filter counts every request a sidecar or gateway handles,
tagged with `reporter` (`source`: the proxy sent it, outbound; `destination`:
it received it, inbound; `waypoint`) and `response_code`, among others. Its
bootstrap keeps these stats whatever else the stats matcher drops (prefix
`istio`, and `reporter=` for the older Wasm form), so they are the traffic
evidence every Istio proxy with telemetry on carries. Envoy names them, in
`/stats`, by joining the tags into the name:

- `istiocustom.istio_requests_total.reporter.source.source_workload.web....response_code.503.grpc_response_status.response_flags.UF.connection_security_policy.unknown`
  (the native filter: `<tag>.<value>` pairs, an empty value leaves the tag alone);
- `reporter=.=source;.;...;.;response_code=.=503;.;...;.;_istio_requests_total` (the Wasm filter).

`/stats/prometheus` (and the agent's merged 15020 endpoint) shows the same
counter as `istio_requests_total{reporter="source",response_code="503",...}`:
`from_prometheus` reads that form. Each distinct stat name is one series, so
counter deltas per name are exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from .stats import PromSample, Stats

__all__ = ["ISTIO_REQUEST_STATS", "RequestSeries", "parse_request_stat", "request_series", "from_prometheus"]

METRIC = "istio_requests_total"
_NATIVE_PREFIX = "istiocustom.istio_requests_total."

# RE2 patterns for the one `/stats?filter=`: both spellings, nothing else.
ISTIO_REQUEST_STATS = (r"^istiocustom\.istio_requests_total\.", r"^reporter=.*istio_requests_total$")

_NATIVE = {
    "reporter": re.compile(r"(?:^|\.)reporter\.([a-z_]*)(?:\.|$)"),
    "response_code": re.compile(r"\.response_code\.(\d*)(?:\.|$)"),
    "response_flags": re.compile(r"\.response_flags\.([A-Z,-]*)(?:\.|$)"),
}
_WASM = {key: re.compile(rf"(?:^|;\.;){key}=\.=([^;]*);\.;") for key in _NATIVE}


class RequestSeries(NamedTuple):
    """The tags of one `istio_requests_total` series the checks use ('' when absent)."""

    reporter: str
    response_code: str
    response_flags: str = ""

    @property
    def server_error(self) -> bool:
        return self.response_code.startswith("5")

    @property
    def connect_failure(self) -> bool:
        """The request failed because no upstream connection could be made (Envoy's `UF` flag)."""
        return "UF" in self.response_flags.split(",")


def parse_request_stat(name: str) -> RequestSeries | None:
    """The series a flat `/stats` name belongs to; None for any other stat."""
    if name.startswith(_NATIVE_PREFIX):
        rest = name[len(_NATIVE_PREFIX) - 1:]  # keep the dot: every tag is then `.tag.value`
        patterns = _NATIVE
    elif name.startswith("reporter=") and name.endswith(METRIC):
        rest = name
        patterns = _WASM
    else:
        return None
    found = {key: pattern.search(rest) for key, pattern in patterns.items()}
    return RequestSeries(*(m.group(1) if m else "" for m in found.values()))


def request_series(stats: Stats) -> dict[str, RequestSeries]:
    """Every `istio_requests_total` series in `stats`, by stat name (computed once per read)."""
    return stats.derived(_request_series, _request_series)


def _request_series(stats: Stats) -> dict[str, RequestSeries]:
    out: dict[str, RequestSeries] = {}
    for name in stats:
        if name.startswith(("istiocustom.", "reporter=")):
            series = parse_request_stat(name)
            if series is not None:
                out[name] = series
    return out


def from_prometheus(samples: Iterable[PromSample]) -> dict[RequestSeries, float]:
    """`istio_requests_total` of a Prometheus exposition, summed per (reporter, code, flags)."""
    totals: dict[RequestSeries, float] = {}
    for sample in samples:
        if sample.name != METRIC:
            continue
        labels = sample.labels
        key = RequestSeries(labels.get("reporter", ""), labels.get("response_code", ""),
                            labels.get("response_flags", ""))
        totals[key] = totals.get(key, 0.0) + sample.value
    return totals
