"""Checks on traffic: upstream success rate, connect failures, canary versus baseline.

Rates come from counter deltas. On a proxy that counts Istio's standard metric
`istio_requests_total` (every Istio proxy with telemetry on), every request it
handled, both reporters (`source`: sent by this proxy, outbound; `destination`:
received, inbound), 5xx response codes as errors: the same requests a
Prometheus analysis of that metric sees, and the same directions Istio's
`outbound|` and `inbound|` clusters count. Otherwise `upstream_rq_completed`
and `upstream_rq_5xx` summed over the data-plane clusters (a plain Envoy, or an
Istio proxy whose `proxyStatsMatcher` keeps them). A proxy with neither shows
no evidence at all: reported as such, with the setting that provides it.

Rates are judged over two spans: the
recent lookback (so a fault shows within a few samples) and the whole window
so far (so a small but steady breach still shows). A breach fails only when it
is statistically clear: the Wilson upper bound of the success rate (z = 2.33,
one-sided 99 %) is below the threshold. Noisy-but-healthy traffic (one unlucky
5xx among 60 requests) then warns instead of halting a rollout, while a real
fault (10 % errors) fails within one or two samples. Fewer than `min_requests`
requests in every span is "no traffic": its own outcome, not a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .context import Context, Span, Verdict
from .istio_metrics import request_series
from .stats import Stats, cluster_name

Z = 2.326  # one-sided 99 %

# Clusters that carry the proxy's own plumbing, not application traffic: Istio's bootstrap
# clusters (the agent's xDS and SDS servers, its health and stats endpoints, tracing and
# access-log services) and localmesh's ADS cluster. Matched after the `;` Istio appends.
CONTROL_CLUSTERS = frozenset(
    {"xds-grpc", "sds-grpc", "agent", "prometheus_stats", "xds_cluster", "zipkin", "envoy_accesslog_service"}
)

# What an Istio proxy keeps of its xDS cluster whatever its stats matcher (prefix `cluster.xds-grpc`).
ISTIO_XDS_STATS = r"^cluster\.xds-grpc;?\.upstream_cx_(active|connect_fail|total)$"
NO_EVIDENCE_FIX = ("enable Istio telemetry (istio_requests_total), or keep per-cluster counters with "
                   "meshConfig.defaultConfig.proxyStatsMatcher.inclusionRegexps "
                   "(meshlift's revisions set it; pods of other revisions need the pod annotation "
                   "proxy.istio.io/config)")


def wilson_bounds(errors: float, total: float, z: float = Z) -> tuple[float, float]:
    """(lower, upper) Wilson score bounds of the error proportion errors/total."""
    if total <= 0:
        return 0.0, 1.0
    p = min(max(errors / total, 0.0), 1.0)
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return max(0.0, centre - margin), min(1.0, centre + margin)


def data_clusters(stats: Stats) -> list[str]:
    return list(stats.derived(_data_clusters, _data_clusters))


def _data_clusters(stats: Stats) -> list[str]:
    """The stat prefixes of the data-plane clusters (`outbound|80||web…;` on Istio, with its `;`)."""
    # `upstream_cx_connect_fail` exists once per cluster from creation on; the response
    # counters also exist under `.canary.`/`.internal.`/`.external.`, which would double count.
    suffix = ".upstream_cx_connect_fail"
    names = (n[len("cluster."): -len(suffix)] for n in stats.names(prefix="cluster.", suffix=suffix))
    return sorted(c for c in names if cluster_name(c) not in CONTROL_CLUSTERS)


def is_istio_proxy(stats: Stats) -> bool:
    """Istio's bootstrap names its xDS cluster `xds-grpc` (stats `cluster.xds-grpc;.…`) and always keeps its stats."""
    return any(n.startswith(("cluster.xds-grpc;.", "cluster.xds-grpc.")) for n in stats.names(prefix="cluster.xds-grpc"))


def evidence(stats: Stats) -> str | None:
    """Where this proxy's request counts come from: Istio's metric, cluster counters, or nowhere."""
    if request_series(stats):
        return "istio_requests_total"
    if data_clusters(stats):
        return "cluster counters"
    return None


def no_evidence(stats: Stats) -> str | None:
    """Why this proxy can show no traffic however much it serves, with the fix; None when it could."""
    if evidence(stats) is not None or not is_istio_proxy(stats):
        return None  # a plain Envoy with no data cluster serves no traffic: that is "no traffic"
    return ("no traffic evidence: no istio_requests_total and no per-cluster upstream counters "
            "(Istio's default stats matcher drops them); " + NO_EVIDENCE_FIX)


@dataclass(frozen=True)
class Traffic:
    label: str
    requests: float
    errors: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def success_rate(self) -> float:
        return 1.0 - self.error_rate

    def to_dict(self) -> dict[str, float | str]:
        return {"span": self.label, "requests": self.requests, "errors": self.errors, "success_rate": round(self.success_rate, 6)}


def traffic(span: Span) -> Traffic:
    requests = errors = 0.0
    series = request_series(span.now)
    if series:
        for name, tags in series.items():
            count = span.delta(name)
            requests += count
            if tags.server_error:
                errors += count
        return Traffic(span.label, requests, errors)
    for cluster in data_clusters(span.now):
        requests += span.delta(f"cluster.{cluster}.upstream_rq_completed")
        errors += span.delta(f"cluster.{cluster}.upstream_rq_5xx")
    return Traffic(span.label, requests, min(errors, requests))


def upstream_success_rate(ctx: Context) -> Verdict:
    threshold = ctx.settings.min_success_rate
    minimum = ctx.settings.min_requests
    spans = [traffic(s) for s in ctx.spans()]
    judged = [t for t in spans if t.requests >= minimum and t.requests > 0]
    details = {"spans": [t.to_dict() for t in spans]}
    details["evidence"] = evidence(ctx.obs.stats)
    if not judged:
        most = max(spans, key=lambda t: t.requests)
        return Verdict.skip(
            no_evidence(ctx.obs.stats) or f"no traffic: {most.requests:.0f} request(s) {most.label} < {minimum}",
            observed=None, threshold=threshold, no_data=True, details=details,
        )
    for t in judged:
        lower_err, _ = wilson_bounds(t.errors, t.requests)
        if 1.0 - lower_err < threshold:  # even the optimistic success rate is below the bar
            return Verdict.fail(
                f"upstream success rate {t.success_rate:.2%} < {threshold:.2%} ({t.errors:.0f}/{t.requests:.0f} failed, {t.label})",
                observed=round(t.success_rate, 6), threshold=threshold, details=details,
            )
    worst = min(judged, key=lambda t: t.success_rate)
    if worst.success_rate < threshold:
        return Verdict.warn(
            f"upstream success rate {worst.success_rate:.2%} < {threshold:.2%} but not significant "
            f"({worst.errors:.0f}/{worst.requests:.0f} failed, {worst.label})",
            observed=round(worst.success_rate, 6), threshold=threshold, details=details,
        )
    return Verdict.ok(
        f"upstream success rate {worst.success_rate:.2%} >= {threshold:.2%} ({worst.requests:.0f} requests, {worst.label})",
        observed=round(worst.success_rate, 6), threshold=threshold, details=details,
    )


def upstream_connect_failures(ctx: Context) -> Verdict:
    """New upstream connect failures: per data cluster, or else Istio's requests flagged `UF`."""
    bound = ctx.settings.max_connect_failures
    stats = ctx.obs.stats
    earlier = ctx.previous.stats_or_none() if ctx.previous is not None else None
    span = "since the last sample" if earlier is not None else "since proxy start"
    clusters = data_clusters(stats)
    if clusters:
        per_cluster = {cluster_name(c): stats.delta(earlier, f"cluster.{c}.upstream_cx_connect_fail")
                       for c in clusters}
        what = "upstream connect failure(s)"
    elif request_series(stats):
        flagged = [n for n, tags in request_series(stats).items() if tags.connect_failure]
        per_cluster = {"requests flagged UF": sum(stats.delta(earlier, n) for n in flagged)}
        what = "request(s) that found no upstream connection (istio_requests_total response_flags UF)"
    else:
        missing = no_evidence(stats)
        if missing is not None:
            return Verdict.skip(missing, threshold=bound, no_data=True)
        per_cluster = {}
        what = "upstream connect failure(s)"
    total = sum(per_cluster.values())
    worst = ", ".join(f"{c} ({v:.0f})" for c, v in sorted(per_cluster.items(), key=lambda kv: -kv[1]) if v)[:200]
    message = f"{total:.0f} {what} {span}" + (f": {worst}" if worst else "")
    if total > bound:
        if earlier is None:
            # Counted over the proxy's whole life, not "per sample": report, do not halt.
            return Verdict.warn(message + f" (> {bound}; judged per sample in a gate)", observed=total, threshold=bound)
        return Verdict.fail(message + f" > {bound}", observed=total, threshold=bound)
    return Verdict.ok(message, observed=total, threshold=bound)


def _baseline_traffic(ctx: Context) -> dict[str, Traffic]:
    """Every baseline's traffic summed per span kind (`last`, `window`, `since`): the same for every canary."""
    base: dict[str, Traffic] = {}
    for view in ctx.baselines:
        if view.obs.stats_or_none() is None:
            continue  # an unreadable baseline reports its own errors; it is no evidence here
        sub = Context(target=view.target, settings=ctx.settings, obs=view.obs, now=ctx.now, recent=view.recent, start=view.start)
        for t in (traffic(s) for s in sub.spans()):
            key = t.label.split(" ")[0]
            prev = base.get(key)
            base[key] = Traffic(t.label, t.requests + (prev.requests if prev else 0), t.errors + (prev.errors if prev else 0))
    return base


def canary_vs_baseline(ctx: Context) -> Verdict:
    margin = ctx.settings.max_error_rate_delta
    minimum = ctx.settings.min_requests
    if ctx.target.role != "canary":
        return Verdict.skip("not a canary")
    if not ctx.baselines:
        return Verdict.skip("no baseline proxies given")
    canary_spans = {t.label.split(" ")[0]: t for t in (traffic(s) for s in ctx.spans())}
    base = ctx.baselines.derive("traffic", lambda: _baseline_traffic(ctx))
    pairs = [(canary_spans[k], base[k]) for k in canary_spans if k in base]
    judged = [(c, b) for c, b in pairs if c.requests >= minimum and b.requests >= minimum]
    details = {"pairs": [{"canary": c.to_dict(), "baseline": b.to_dict()} for c, b in pairs]}
    if not judged:
        missing = no_evidence(ctx.obs.stats)
        return Verdict.skip(f"canary shows {missing}" if missing else "no traffic to compare canary and baseline",
                            threshold=margin, no_data=True, details=details)
    for c, b in judged:
        lower_err, _ = wilson_bounds(c.errors, c.requests)
        if lower_err - b.error_rate > margin:
            return Verdict.fail(
                f"canary error rate {c.error_rate:.2%} exceeds baseline {b.error_rate:.2%} by more than {margin:.2%} ({c.label})",
                observed=round(c.error_rate - b.error_rate, 6), threshold=margin, details=details,
            )
    c, b = max(judged, key=lambda cb: cb[0].error_rate - cb[1].error_rate)
    diff = c.error_rate - b.error_rate
    verdict = Verdict.warn if diff > margin else Verdict.ok
    return verdict(
        f"canary error rate {c.error_rate:.2%} vs baseline {b.error_rate:.2%} ({c.label})",
        observed=round(diff, 6), threshold=margin, details=details,
    )
