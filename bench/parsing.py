"""Benchmark 3: stats parsing on a 500-cluster Envoy's real admin output.

Both Prometheus parsers get the same `str` (decoded once, outside the timing)
and must produce every sample: meshlift's `parse_prometheus` returns a list,
prometheus_client's generator is drained into one. Before any timing counts,
the two must agree sample by sample (name, labels, value); prometheus_client
0.26 appends `_total` to counter samples, which is normalised away. The JSON
form is parsed from the raw bytes (as the gate does) and checked against a
plain reference reading of the same document, and against the Prometheus
capture: one counter or gauge per JSON name/value entry.
"""

from __future__ import annotations

import json
import math

from prometheus_client.parser import text_string_to_metric_families

import localmesh as lm
from checks import parse_json_stats, parse_prometheus

from ._envoys import admin_get, start_many_clusters
from ._measure import Summary, mib, repeat, with_peak
from ._result import Section, Table, TargetCheck

CLUSTERS = 500


def _prom_client_samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _prom_client_families(text: str) -> dict[str, str]:
    """Sample name -> family type, from prometheus_client (to undo its `_total` suffix)."""
    return {s.name: f.type for f in text_string_to_metric_families(text) for s in f.samples}


def agreement(text: str) -> dict[str, object]:
    """Do both parsers read the same samples with the same values?"""
    ours = parse_prometheus(text)
    theirs = _prom_client_samples(text)
    mine = {}
    for s in ours:
        mine[(s.name, tuple(sorted(s.labels.items())))] = s.value
    other = {}
    for s in theirs:
        name = s.name
        if name.endswith("_total") and (name[: -len("_total")], tuple(sorted(s.labels.items()))) in mine \
                and (name, tuple(sorted(s.labels.items()))) not in mine:
            name = name[: -len("_total")]  # prometheus_client's OpenMetrics-style counter suffix
        other[(name, tuple(sorted(s.labels.items())))] = s.value
    missing = set(mine) ^ set(other)
    differing = [k for k in set(mine) & set(other)
                 if not math.isclose(float(mine[k]), float(other[k]), rel_tol=1e-12, abs_tol=0)]
    return {
        "meshlift_samples": len(ours),
        "prometheus_client_samples": len(theirs),
        "keys_only_in_one": len(missing),
        "values_differing": len(differing),
        "agree": len(ours) == len(theirs) and not missing and not differing,
    }


def json_agreement(raw: bytes, prom_text: str) -> dict[str, object]:
    stats = parse_json_stats(raw)
    reference = {e["name"]: e["value"] for e in json.loads(raw)["stats"]
                 if "name" in e and isinstance(e.get("value"), (int, float, str))}
    numeric_json = sum(1 for v in reference.values() if isinstance(v, (int, float)))
    prom_scalars = sum(len(f.samples) for f in text_string_to_metric_families(prom_text)
                       if f.type in ("counter", "gauge", "untyped"))
    return {
        "entries": len(stats),
        "reference_entries": len(reference),
        "values_equal": dict(stats.to_dict()) == reference,
        "numeric_entries": numeric_json,
        "prometheus_counters_and_gauges": prom_scalars,
        "agree": dict(stats.to_dict()) == reference and numeric_json == prom_scalars,
    }


def run(*, quick: bool) -> Section:
    clusters = 20 if quick else CLUSTERS
    reps_fast, reps_slow = (2, 1) if quick else (9, 5)
    with lm.Upstream(name="parse") as upstream:
        proxy = start_many_clusters(lm.target_envoy(), upstream, clusters=clusters)
        try:
            lm.send_traffic(proxy.url, requests=50)  # some non-zero counters and histogram buckets
            prom_raw = admin_get(proxy.admin_port, "/stats/prometheus")
            json_raw = admin_get(proxy.admin_port, "/stats?format=json")
        finally:
            proxy.stop()
    prom_text = prom_raw.decode()

    prom_ok = agreement(prom_text)
    json_ok = json_agreement(json_raw, prom_text)

    ours = repeat(lambda: parse_prometheus(prom_text), reps_fast)
    theirs = repeat(lambda: _prom_client_samples(prom_text), reps_slow)
    ours_json = repeat(lambda: parse_json_stats(json_raw), reps_fast)
    json_floor = repeat(lambda: json.loads(json_raw), reps_fast)
    _, _, _, ours_mem = with_peak(lambda: parse_prometheus(prom_text))
    _, _, _, theirs_mem = with_peak(lambda: _prom_client_samples(prom_text))
    _, _, _, json_mem = with_peak(lambda: parse_json_stats(json_raw))

    speedup = theirs.median / ours.median
    speedup_json = theirs.median / ours_json.median
    samples = prom_ok["meshlift_samples"]
    table = Table(
        f"Parsing one {clusters}-cluster Envoy's stats (same input for both parsers)",
        ["input", "parser", "time (median, range)", "samples/s", "peak RSS growth", "vs prometheus_client"],
        [
            [f"/stats/prometheus, {len(prom_raw) / 1e6:.1f} MB, {samples:,} samples", "meshlift `parse_prometheus`",
             ours.fmt("s", digits=3), f"{samples / ours.median:,.0f}", mib(ours_mem), f"**{speedup:.1f}x** faster"],
            ["same", "`prometheus_client` 0.26 `text_string_to_metric_families`",
             theirs.fmt("s", digits=3), f"{samples / theirs.median:,.0f}", mib(theirs_mem), "1x"],
            [f"/stats?format=json, {len(json_raw) / 1e6:.1f} MB, {json_ok['entries']:,} counters/gauges/text",
             "meshlift `parse_json_stats` (bytes in)", ours_json.fmt("s", digits=3),
             f"{json_ok['entries'] / ours_json.median:,.0f}", mib(json_mem),
             f"{speedup_json:.1f}x (same stats, Prometheus form)"],
            ["same", "`json.loads` alone (floor)", json_floor.fmt("s", digits=3), "", "", ""],
        ],
    )
    agree_table = Table(
        "Agreement (a comparison of different work would be worthless)",
        ["check", "result"],
        [
            ["Prometheus: sample count meshlift / prometheus_client",
             f"{prom_ok['meshlift_samples']:,} / {prom_ok['prometheus_client_samples']:,}"],
            ["Prometheus: (name, labels) keys found by only one parser", str(prom_ok["keys_only_in_one"])],
            ["Prometheus: values differing", str(prom_ok["values_differing"])],
            ["JSON: entries equal to a plain `json.loads` reading", str(json_ok["values_equal"])],
            ["JSON numeric entries / Prometheus counter+gauge samples (same proxy)",
             f"{json_ok['numeric_entries']:,} / {json_ok['prometheus_counters_and_gauges']:,}"],
        ],
    )
    met = speedup >= 10 and bool(prom_ok["agree"])
    bound = "" if met else (
        "both are pure Python on one core; meshlift's scanner spends its time in per-line str.partition/int() "
        "and sample tuples (~%.1f µs a line), prometheus_client ~%.1f µs a line"
        % (ours.median / samples * 1e6, theirs.median / samples * 1e6))
    return Section(
        name="parsing",
        title="3. Stats parsing",
        method=[
            f"One Envoy {lm.target_envoy().version} with {clusters} static clusters (+1), 50 requests sent; "
            "`/stats/prometheus` and `/stats?format=json` captured once, parsed in memory.",
            f"Wall time per full parse: meshlift {reps_fast} runs, prometheus_client {reps_slow} runs; "
            "garbage collected between runs. Peak RSS growth from VmHWM (reset via /proc/self/clear_refs).",
            "prometheus_client's generator is drained into a list of samples; meshlift returns a list.",
        ],
        tables=[table, agree_table],
        targets=[TargetCheck("Parsing ≥ 10x faster than prometheus_client on the same input",
                             f"{speedup:.1f}x ({ours.median:.3f} s vs {theirs.median:.3f} s, {samples:,} samples)",
                             met, bound)],
        notes=[] if prom_ok["agree"] and json_ok["agree"] else [
            f"DISAGREEMENT: prometheus {prom_ok}, json {json_ok}"],
        data={"prometheus_bytes": len(prom_raw), "json_bytes": len(json_raw), "clusters": clusters,
              "meshlift": ours.to_dict(), "prometheus_client": theirs.to_dict(),
              "meshlift_json": ours_json.to_dict(), "json_loads": json_floor.to_dict(),
              "speedup": speedup, "agreement": prom_ok, "json_agreement": json_ok},
        quick=quick,
    )
