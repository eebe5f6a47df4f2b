"""Benchmark 2: one gate evaluation over 10, 50, 100 and 200 real Envoys, against a naive scrape.

The 200 proxies (Envoy 1.40.0, `--concurrency 1`, loopback) are started once
per shape (localmesh's 1-cluster proxy, and a sidecar-sized proxy with 101
clusters); each size is the first N of them. After a little traffic through
every proxy:

- meshlift: one `run_checks` sample with the default gate settings and checks
  (what one gate interval costs), with a fresh `AdminClient` ("first sample":
  connections opened) and again with the same client and the previous report
  ("steady sample": what every later sample of a gate costs);
- naive: for each proxy in turn, GET the full `/stats` and parse it (meshlift's
  own `parse_text_stats`, so the parser is not what differs).

Bytes are response bodies as received; every meshlift sample must have no
check in `error` (a fast but blind evaluation would be worthless).
"""

from __future__ import annotations

import asyncio
import http.client
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import localmesh as lm
from checks import CATALOG, AdminClient, Status, Target, parse_text_stats, run_checks
from checks.observe import Read
from meshmodel.spec import GateSettings

from ._envoys import ManyClustersProxy, pid_of
from ._measure import Summary, mib, peak_rss, process_memory, reset_peak_rss
from ._result import Section, Table, TargetCheck

SIDECAR_CLUSTERS = 100  # extra clusters of the sidecar-sized shape
WITHOUT_SERVER_INFO = [c.id for c in CATALOG
                       if Read.SERVER_INFO not in c.reads and Read.POD not in c.reads]
SERVER_INFO_CHECKS = [c.id for c in CATALOG if Read.SERVER_INFO in c.reads]


class CountingClient(AdminClient):
    """An AdminClient that adds up the body bytes it received, per admin path."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.bytes: dict[str, int] = defaultdict(int)
        self.requests = 0

    async def get(self, base_url: str, path: str, params: Mapping[str, str] | None = None, **kw):  # type: ignore[override]
        response = await super().get(base_url, path, params, **kw)
        self.bytes[path] += len(response.body)
        self.requests += 1
        return response


def naive_scrape(proxies: Sequence[lm.Proxy]) -> tuple[int, int]:
    """Sequential full `/stats` per proxy, each parsed; returns (bytes, stats parsed)."""
    total = parsed = 0
    for proxy in proxies:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=10)
        try:
            conn.request("GET", "/stats")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        total += len(body)
        parsed += len(parse_text_stats(body.decode()))
    return total, parsed


async def _gate_samples(targets: list[Target], settings: GateSettings,
                        only: list[str] | None = None) -> dict[str, object]:
    client = CountingClient()
    try:
        reset_peak_rss()
        t0 = time.perf_counter()
        first = await run_checks(targets, settings, client=client, only=only)
        t1 = time.perf_counter()
        first_peak = peak_rss()
        first_bytes, first_requests = dict(client.bytes), client.requests
        second = await run_checks(targets, settings, client=client, previous=first, only=only)
        t2 = time.perf_counter()
    finally:
        await client.aclose()
    errors = sum(1 for report in (first, second) for t in report.targets for r in t.results
                 if r.status is Status.ERROR)
    return {"first_s": t1 - t0, "steady_s": t2 - t1, "bytes": first_bytes, "requests": first_requests,
            "peak_rss": first_peak, "errors": errors}


def start_fleet(binary: lm.EnvoyBinary, upstream: lm.Upstream, size: int, clusters: int) -> list[lm.Proxy]:
    proxies: list[lm.Proxy] = []
    for i in range(size):
        name = f"c{clusters}-{i}"
        # Static config: file-based xDS costs 2 inotify instances per proxy, and the
        # per-user limit here is 128 (fs.inotify.max_user_instances).
        spec = lm.ProxySpec(binary=binary, name=name, revision="canary", xds="static")
        proxies.append(ManyClustersProxy(spec, clusters=clusters, upstream=upstream.endpoint(name)))
    lm.start_proxies(proxies, timeout_s=90)
    for proxy in (proxies[0], proxies[-1]):  # LIVE waits for the initial CDS; check it really did
        lm.wait_until(lambda p=proxy: p.stat("cluster_manager.active_clusters") >= clusters + 1, timeout_s=30,
                      what=f"{clusters + 1} clusters on {proxy.spec.name}")
    return proxies


def _measure_shape(binary: lm.EnvoyBinary, sizes: list[int], clusters: int, reps: int,
                   naive_reps: int) -> dict[str, object]:
    settings = GateSettings()
    with lm.Upstream(name=f"fleet{clusters}") as upstream:
        t = time.monotonic()
        fleet = start_fleet(binary, upstream, max(sizes), clusters)
        start_s = time.monotonic() - t
        try:
            t = time.monotonic()
            for proxy in fleet:
                lm.send_traffic(proxy.url, requests=20, rate_per_s=None, concurrency=1)
            traffic_s = time.monotonic() - t
            envoy_mem = process_memory([p for p in (pid_of(x) for x in fleet) if p])
            data: dict[str, dict] = {}
            measure_started = time.monotonic()
            for n in sizes:
                proxies = fleet[:n]
                targets = [Target(name=p.spec.name, admin_url=p.admin_url, role="canary",
                                  expected_version=binary.version) for p in proxies]
                runs = [asyncio.run(_gate_samples(targets, settings)) for _ in range(reps)]
                naive_times, naive_bytes, naive_peaks = [], 0, []
                for _ in range(naive_reps):
                    reset_peak_rss()
                    t = time.perf_counter()
                    naive_bytes, _ = naive_scrape(proxies)
                    naive_times.append(time.perf_counter() - t)
                    naive_peaks.append(peak_rss())
                data[str(n)] = {
                    "first": Summary.of(r["first_s"] for r in runs).to_dict(),
                    "steady": Summary.of(r["steady_s"] for r in runs).to_dict(),
                    "naive": Summary.of(naive_times).to_dict(),
                    "bytes_by_path_per_proxy": {k: v / n for k, v in runs[0]["bytes"].items()},
                    "reads_per_proxy": runs[0]["requests"] / n,
                    "naive_bytes_per_proxy": naive_bytes / n,
                    "peak_rss": Summary.of(r["peak_rss"] for r in runs).to_dict(),
                    "naive_peak_rss": Summary.of(naive_peaks).to_dict(),
                    "errors": sum(r["errors"] for r in runs),
                }
            # What-if: the same sample without the checks that read /server_info (~122 KiB
            # per proxy, mostly the list of compiled-in extensions), to show its share.
            n = max(sizes)
            targets = [Target(name=p.spec.name, admin_url=p.admin_url, role="canary",
                              expected_version=binary.version) for p in fleet[:n]]
            runs = [asyncio.run(_gate_samples(targets, settings, only=WITHOUT_SERVER_INFO)) for _ in range(reps)]
            without_info = {"first": Summary.of(r["first_s"] for r in runs).to_dict(),
                            "steady": Summary.of(r["steady_s"] for r in runs).to_dict(),
                            "bytes_per_proxy": sum(runs[0]["bytes"].values()) / n}
            measure_s = time.monotonic() - measure_started
        finally:
            t = time.monotonic()
            lm.stop_proxies(fleet)
            stop_s = time.monotonic() - t
    return {"clusters": clusters, "start_s": start_s, "traffic_s": traffic_s, "envoy_memory": envoy_mem,
            "sizes": data, "without_server_info": without_info, "measure_s": measure_s, "stop_s": stop_s}


def _fmt(d: dict) -> str:
    if d["n"] == 1:
        return f"{d['median']:.2f} s"
    return f"{d['median']:.2f} s ({d['min']:.2f}–{d['max']:.2f}, n={d['n']})"


def run(*, quick: bool) -> Section:
    sizes = [2, 4] if quick else [10, 50, 100, 200]
    reps, naive_reps = (1, 1) if quick else (3, 3)
    shapes = [0, 20] if quick else [0, SIDECAR_CLUSTERS]
    binary = lm.target_envoy()
    results = [_measure_shape(binary, sizes, clusters, reps, naive_reps) for clusters in shapes]
    rows, targets, mem_rows, path_rows = [], [], [], []
    big = str(max(sizes))
    for shape in results:
        k = shape["clusters"] + 1
        for n, d in shape["sizes"].items():
            rows.append([
                str(k), n, _fmt(d["first"]), _fmt(d["steady"]), _fmt(d["naive"]),
                f"{d['naive']['median'] / d['first']['median']:.2f}x / {d['naive']['median'] / d['steady']['median']:.2f}x",
                f"{sum(d['bytes_by_path_per_proxy'].values()) / 1024:.1f} KiB ({d['reads_per_proxy']:.0f} reads)",
                f"{d['naive_bytes_per_proxy'] / 1024:.1f} KiB",
                mib(d["peak_rss"]["median"]), mib(d["naive_peak_rss"]["median"]), str(d["errors"]),
            ])
        w = shape["without_server_info"]
        rows.append([
            str(k), f"{max(sizes)}, what-if: without the {len(SERVER_INFO_CHECKS)} check(s) reading /server_info "
            f"({', '.join(SERVER_INFO_CHECKS)})", _fmt(w["first"]),
            _fmt(w["steady"]), "", f"{shape['sizes'][str(max(sizes))]['naive']['median'] / w['first']['median']:.2f}x / "
            f"{shape['sizes'][str(max(sizes))]['naive']['median'] / w['steady']['median']:.2f}x",
            f"{w['bytes_per_proxy'] / 1024:.1f} KiB", "", "", "", ""])
        mem = shape["envoy_memory"]
        mem_rows.append([str(k), str(mem["processes"]), f"{shape['start_s']:.1f} s",
                         f"{mib(mem['rss_each'])} / {mib(mem['rss_total'])}",
                         f"{mib(mem['pss_each'])} / {mib(mem['pss_total'])}",
                         f"{shape['traffic_s']:.0f} s / {shape['measure_s']:.0f} s / {shape['stop_s']:.0f} s"])
        d = shape["sizes"][big]
        for path, size in sorted(d["bytes_by_path_per_proxy"].items(), key=lambda kv: -kv[1]):
            path_rows.append([str(k), path, f"{size / 1024:.1f} KiB"])
        first, steady = d["first"]["median"], d["steady"]["median"]
        label = f"{k} cluster{'s' if k > 1 else ''}/proxy"
        targets.append(TargetCheck(
            f"{big} proxies gated in ≤ 3 s wall ({label})", f"{first:.2f} s first sample, {steady:.2f} s steady",
            first <= 3.0, "" if first <= 3.0 else
            "2 cores shared by the Python client (httpx, JSON of /server_info) and the Envoys answering"))
    return Section(
        name="fleet",
        title="2. Fleet scale: one gate evaluation over N real Envoys",
        method=[
            f"{max(sizes)} Envoys {binary.version} (`--concurrency 1 --disable-hot-restart`, loopback) started once "
            "per shape with localmesh's bounded parallel start (`start_proxies`), config static in the bootstrap "
            "(`xds=\"static\"`: file-based xDS needs 2 inotify instances per proxy, the per-user limit is 128); "
            "20 requests through each; size N = "
            f"the first N proxies. Two shapes: localmesh's default proxy (1 cluster) and a sidecar-sized proxy with "
            f"{shapes[1] + 1} clusters (a sidecar holds one cluster per service port of its mesh).",
            "meshlift = one `run_checks` sample with the default `GateSettings()` and every default check, each proxy "
            "a canary with its expected version; *first* = fresh `AdminClient` (default concurrency 16: connections "
            "opened), *steady* = the next sample on the same client with the previous report (every later sample "
            "of a gate).",
            "naive = for each proxy in turn: GET full `/stats` (text) on a new connection and parse it with "
            "meshlift's own `parse_text_stats` (so the parser is not what differs). It reads counters only: no "
            "readiness, version, certificates or listener error state. Kept as history: nobody runs it; the "
            "alternative users run is measured in the section against the Prometheus-based peer.",
            f"{reps} meshlift runs and {naive_reps} naive runs per size. Peak RSS = this Python process's VmHWM, reset "
            "before each run (it includes the local upstream service's threads and the fleet's objects, ~60 MiB "
            "before any evaluation). Bytes = response bodies received.",
        ],
        tables=[
            Table("Wall time, bytes and memory per evaluation",
                  ["clusters/proxy", "proxies", "meshlift first sample", "meshlift steady sample",
                   "naive sequential /stats", "naive ÷ meshlift (first / steady)", "meshlift bytes/proxy",
                   "naive bytes/proxy", "peak RSS meshlift", "peak RSS naive", "checks in error"], rows),
            Table(f"What meshlift reads per proxy ({big} proxies, body bytes)",
                  ["clusters/proxy", "admin read", "bytes/proxy"], path_rows),
            Table("The Envoys themselves", ["clusters/proxy", "processes", "start of the whole fleet",
                                            "RSS each / total", "PSS each / total (binary pages shared)",
                                            "traffic / measuring / stop"], mem_rows),
        ],
        targets=targets,
        data={"shapes": results},
        quick=quick,
    )

