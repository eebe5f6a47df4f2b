"""Benchmark: one gate sample over a mesh's baseline, at 50, 200 and 400 real Envoys.

A wave gate judges the promoted waves against every workload not yet promoted,
so at fleet size almost every pod a sample reads is a baseline pod. The fleet
here is `workloads x REPLICAS` proxies (Envoy 1.40.0, `--concurrency 1`,
loopback, sidecar-sized: `CLUSTERS` + 1 clusters each, static config), one
workload of which is the canary under test; each size is the first N proxies.

Per size, one sample with the client the gate makes for that many targets
("first": fresh connections, every read) and the next sample at once on the same
client with the previous report ("steady": a later sample in which every answer
reused across samples is still young enough to be reused, so the cheapest one),
three times. Benchmark 5 measures later samples over a gate's window instead
(`gate_window`), where reused answers come due and are read again. Which pods
are read is the gate's choice (`_gate_targets`), so a declared sample per
workload shows here as fewer reads. The config reads are
measured apart, on one proxy of each Envoy version at 101 and 501 clusters:
bytes and time of the whole `/config_dump` against what the config checks read.

Every run keeps the figures of the earlier runs stored under other commits
(`data.runs`), so before/after ratios stay on record.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import time
from pathlib import Path

import localmesh as lm
from checks import AdminClient, Status, Target, run_checks
from checks.gate import evidence_kept_from_collection
from checks.sampling import choose
from meshmodel.spec import GateSettings

from . import _report
from ._envoys import ManyClustersProxy, admin_get, start_many_clusters
from ._measure import Summary
from ._result import Section, Table, TargetCheck
from .fleet import CountingClient

HERE = Path(__file__).resolve().parent
REPLICAS = 4  # pods per workload
CLUSTERS = 20  # extra clusters per proxy


def _commit(what: str = "%h") -> str:
    """The checked-out commit (`%h`: short hash, `%s`: its subject): what each stored run measured."""
    out = subprocess.run(["git", "log", "-1", f"--format={what}"], cwd=HERE, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _host() -> str:
    from ._machine import machine

    facts = machine()
    return f"{facts.get('cpu')}, {facts.get('nproc')} cores, {facts.get('memory')}"


def _gate_targets(fleet: list[lm.Proxy], version: str, settings: GateSettings) -> tuple[list[Target], list[Target]]:
    """(canary, baseline) targets as the gate reads them: workload i is pods i*REPLICAS.. of the fleet;
    every canary pod, `baselinePodsPerWorkload` of each baseline workload (as gate discovery chooses)."""
    canary, baseline = [], []
    for start in range(0, len(fleet), REPLICAS):
        workload = f"w{start // REPLICAS}"
        pods = fleet[start:start + REPLICAS]
        role = "canary" if workload == "w0" else "baseline"
        chosen = pods if role == "canary" else choose(pods, settings.baseline_pods_per_workload,
                                                      name=lambda p: p.spec.name)
        (canary if role == "canary" else baseline).extend(
            Target(name=p.spec.name, admin_url=p.admin_url, role=role, expected_version=version,
                   labels={"workload": workload}) for p in chosen)
    return canary, baseline


def _gate_client(n_targets: int, settings: GateSettings) -> AdminClient:
    """The client `run_gate` makes for this many targets (`AdminClient.for_targets`), counting bytes."""
    return CountingClient.for_targets(n_targets, settings.interval)  # type: ignore[return-value]


async def _two_samples(canary: list[Target], baseline: list[Target], settings: GateSettings) -> dict:
    return await gate_window(canary, baseline, settings, later=1, paced=False)


async def gate_window(canary: list[Target], baseline: list[Target], settings: GateSettings, *, later: int,
                      paced: bool = True) -> dict:
    """A first sample, then `later` ones: `paced`, each at its slot of the gate's interval grid, as
    `run_gate` takes them (slots a sample overran are skipped); else each right after the last."""
    targets = [*canary, *baseline]
    client = _gate_client(len(targets), settings)
    reports, durations = [], []
    try:
        with evidence_kept_from_collection() as keep:  # as `run_gate` keeps its evidence
            started = time.monotonic()
            slot = 0
            for _ in range(later + 1):
                t0 = time.perf_counter()
                reports.append(await run_checks(targets, settings, client=client,
                                                previous=reports[-1] if reports else None))
                durations.append(time.perf_counter() - t0)
                keep()
                if len(reports) == 1:
                    first_bytes, first_requests = sum(client.bytes.values()), client.requests
                if paced:
                    slot = max(slot + 1, math.ceil((time.monotonic() - started) / settings.interval))
                    await asyncio.sleep(max(0.0, started + slot * settings.interval - time.monotonic()))
    finally:
        await client.aclose()
    errors = sorted({f"{r.check_id}: {r.message}"[:120] for report in reports for t in report.targets
                     for r in t.results if r.status is Status.ERROR})
    later_s = durations[1:]
    return {"first_s": durations[0], "steady_s": statistics.median(later_s), "steady_max_s": max(later_s),
            "later_samples": later, "later_s": [round(d, 3) for d in later_s],
            "bytes": first_bytes, "requests": first_requests, "errors": len(errors), "error_kinds": errors[:3]}


def _measure_gate(sizes: list[int], reps: int) -> dict[str, dict]:
    binary = lm.target_envoy()
    settings = GateSettings()
    out: dict[str, dict] = {}
    with lm.Upstream(name="gatescale") as upstream:
        fleet = []
        for i in range(max(sizes)):
            spec = lm.ProxySpec(binary=binary, name=f"gs{i}", revision="stable", xds="static")
            fleet.append(ManyClustersProxy(spec, clusters=CLUSTERS, upstream=upstream.endpoint(spec.name)))
        started = time.monotonic()
        lm.start_proxies(fleet, timeout_s=180)
        start_s = time.monotonic() - started
        try:
            for proxy in fleet[:REPLICAS]:  # the canary workload carries traffic
                lm.send_traffic(proxy.url, requests=20, rate_per_s=None, concurrency=1)
            for n in sizes:
                canary, baseline = _gate_targets(fleet[:n], binary.version, settings)
                runs = [asyncio.run(_two_samples(canary, baseline, settings)) for _ in range(reps)]
                out[str(n)] = {
                    "pods": n, "read": len(canary) + len(baseline),
                    "first": Summary.of(r["first_s"] for r in runs).to_dict(),
                    "steady": Summary.of(r["steady_s"] for r in runs).to_dict(),
                    "bytes": runs[0]["bytes"], "requests": runs[0]["requests"],
                    "errors": sum(r["errors"] for r in runs), "error_kinds": runs[0]["error_kinds"],
                    "start_s": start_s,
                }
        finally:
            lm.stop_proxies(fleet)
    return out


def _config_reads(clusters: list[int]) -> list[dict]:
    """Bytes and time of the whole dump against the config checks' own reads, one proxy per version."""
    rows = []
    with lm.Upstream(name="gatescale-config") as upstream:
        for binary in (lm.stable_envoy(), lm.target_envoy()):
            for k in clusters:
                proxy = start_many_clusters(binary, upstream, clusters=k, name=f"cfg{k}-{binary.version}")
                try:
                    rows.append({"version": binary.version, "clusters": k + 1,
                                 "whole": _timed(lambda: admin_get(proxy.admin_port, "/config_dump")),
                                 "scoped": asyncio.run(_scoped(proxy.admin_url))})
                finally:
                    proxy.stop()
    return rows


def _timed(read) -> dict:
    times, size = [], 0
    for _ in range(5):
        t = time.perf_counter()
        size = len(read())
        times.append(time.perf_counter() - t)
    return {"bytes": size, "time": Summary.of(times).to_dict()}


async def _scoped(admin_url: str) -> dict:
    """What the config checks read now (Read.CONFIG), on a counting client."""
    from checks.observe import Read, _read

    times, size = [], 0
    for _ in range(5):
        client = CountingClient()
        try:
            t = time.perf_counter()
            value = await _read(client, Target(name="p", admin_url=admin_url), Read.CONFIG, "")
            times.append(time.perf_counter() - t)
        finally:
            await client.aclose()
        if isinstance(value, Exception):
            raise value
        size = sum(client.bytes.values())
    return {"bytes": size, "time": Summary.of(times).to_dict(), "reads": client.requests}


def _fmt(d: dict) -> str:
    return Summary(tuple(d["values"])).fmt() if "values" in d else f"{d['median']:.2f} s"


def run(*, quick: bool) -> Section:
    sizes = [8, 16] if quick else [50, 200, 400]
    reps = 1 if quick else 3
    commit = _commit()
    gate = _measure_gate(sizes, reps)
    config = _config_reads([20] if quick else [100, 500])
    earlier = _report.load(HERE / "results.json")["sections"].get("gatescale", {}).get("data", {}).get("runs", {})
    runs = {k: v for k, v in earlier.items() if k != commit and not quick}
    runs[commit] = {"measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gate": gate,
                    "config": config, "code": _commit("%s")}
    big = gate[str(max(sizes))]
    ok = big["first"]["median"] <= 1.0 and big["steady"]["median"] <= 1.0 and big["errors"] == 0
    target = TargetCheck(
        f"one gate sample over {max(sizes)} pods inside the default 1 s interval",
        f"{big['first']['median']:.2f} s first, {big['steady']['median']:.2f} s steady, {big['errors']} errors",
        ok, "" if ok else "2 cores shared by the Python client and the Envoys answering it; /server_info "
                          "(~120 KiB) is still read from every baseline pod on its first sample")
    return Section(
        name="gatescale",
        title="6. Gate sample over a mesh's baseline",
        method=[
            f"{max(sizes)} Envoys {lm.target_envoy().version} (`--concurrency 1`, loopback, static config, "
            f"{CLUSTERS + 1} clusters each) as workloads of {REPLICAS} pods; workload 0 is the canary (20 requests "
            "through each of its pods), every other pod a baseline pod; size N = the first N proxies.",
            "first = one `run_checks` sample with the default `GateSettings()` on the client the gate makes for "
            "N targets (fresh connections); steady = the next sample on that client with the previous report. "
            f"{reps} runs per size. *Pods read* = the targets the gate reads (its baseline sample per workload plus "
            "the canary pods).",
            f"Config reads: one proxy of each Envoy version with "
            f"{' and '.join(str(c['clusters']) for c in config[:len(config) // 2])} clusters; the whole "
            "`/config_dump` against what the config checks (config-parity, proxy-profile) read, 5 reads each, "
            "body bytes.",
            "Each run is stored under its commit; the first stored run is the reference of the ratios.",
        ],
        tables=tables(runs),
        targets=[target],
        # The Machine table at the top is the last run's, whichever benchmark ran; this section's own.
        notes=[f"Measured on {_host()}."],
        data={"runs": runs},
        quick=quick,
    )


def tables(runs: dict[str, dict]) -> list[Table]:
    """Every stored run's figures, oldest first; ratios against the oldest."""
    runs = dict(sorted(runs.items(), key=lambda item: item[1]["measured_at"]))
    first_run = next(iter(runs))
    rows = []
    for label, run_ in runs.items():
        for n, d in sorted(run_["gate"].items(), key=lambda item: int(item[0])):
            before = runs[first_run]["gate"].get(n)
            ratio = (f"{before['first']['median'] / d['first']['median']:.1f}x / "
                     f"{before['steady']['median'] / d['steady']['median']:.1f}x") if before and label != first_run else "—"
            rows.append([f"`{label}` {run_.get('code', '')} ({run_['measured_at']})", str(d["pods"]), str(d["read"]), _fmt(d["first"]),
                         _fmt(d["steady"]), ratio, f"{d['requests']} / {d['bytes'] / 1024:.0f} KiB",
                         str(d["errors"])])
    config_rows = []
    for label, run_ in runs.items():
        for c in run_["config"]:
            config_rows.append([f"`{label}`", c["version"], str(c["clusters"]),
                                f"{c['whole']['bytes'] / 1024:.0f} KiB, {c['whole']['time']['median'] * 1000:.1f} ms",
                                f"{c['scoped']['bytes'] / 1024:.0f} KiB in {c['scoped'].get('reads', 1)} read(s), "
                                f"{c['scoped']['time']['median'] * 1000:.1f} ms"])
    return [
        Table("One gate sample", ["run", "pods", "pods read", "first sample", "steady sample",
                                  "first run ÷ this (first / steady)", "reads / bytes (first sample)",
                                  "checks in error"], rows),
        Table("Config reads per proxy", ["run", "Envoy", "clusters", "whole /config_dump",
                                         "what the config checks read"], config_rows),
    ]
