"""The section of RESULTS.md for meshlift against the Prometheus-based peer."""

from __future__ import annotations

from collections.abc import Iterable

from ._cost import Cost
from ._flagger import AGGRESSIVE, DEFAULT, DURATION_QUERY, SUCCESS_RATE_QUERY, PeerSettings, render
from ._measure import Summary, mib
from ._result import Section, Table, TargetCheck
from ._sidebyside import FAULTS, NAMESPACE, Observation

WHY_BLIND = {
    "reject-config": "traffic is unaffected (the old listener keeps serving): nothing in the request metrics",
    "cert-expiry": "traffic is unaffected until the certificate expires: nothing in the request metrics",
    "overload": "Envoy refuses requests before routing them, so no upstream request is counted: the "
                "success rate becomes 0/0 = NaN, and Flagger's `99 > NaN` is false, so the check passes",
}


def _pick(observations: Iterable[Observation], observer: str, kind: str, settings: str | None = None) -> list[Observation]:
    return [o for o in observations if o.observer == observer and o.kind == kind
            and (settings is None or o.settings == settings)]


def _latencies(windows: list[Observation]) -> list[float]:
    return [o.onset_to_decision for o in windows if o.decided_fail and o.onset_to_decision is not None]


def _decision_cell(windows: list[Observation]) -> str:
    if not windows:
        return "—"
    lat = _latencies(windows)
    if not lat:
        longest = max(o.elapsed for o in windows)
        return f"**no decision** (0/{len(windows)}; watched {longest:.0f} s)"
    return f"{Summary.of(lat).fmt('s')}; {len(lat)}/{len(windows)} decided"


def _outcomes(windows: list[Observation]) -> str:
    counts: dict[str, int] = {}
    for o in windows:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "—"


def peer_sees(observations: list[Observation], fault: str, settings: str | None = None) -> bool:
    """The peer sees a fault when it rolled back in every decision window of it (a rollback in only
    some is the background noise that also rolls back healthy canaries at the aggressive setting)."""
    windows = _pick(observations, "peer", f"decision:{fault}", settings)
    return bool(windows) and len(_latencies(windows)) == len(windows)


def _settings_used(observations: list[Observation]) -> list[PeerSettings]:
    names = {o.settings for o in observations}
    return [s for s in (AGGRESSIVE, DEFAULT) if s.name in names]


def headline(observations: list[Observation], settings: PeerSettings) -> dict[str, object] | None:
    """Medians over the faults both detect, in the phases of `settings` (the same canaries, same onsets)."""
    both = [f for f in FAULTS if peer_sees(observations, f, settings.name)
            and _latencies(_pick(observations, "meshlift", f"decision:{f}", settings.name))]
    if not both:
        return None
    mesh = [x for f in both for x in _latencies(_pick(observations, "meshlift", f"decision:{f}", settings.name))]
    peer = [x for f in both for x in _latencies(_pick(observations, "peer", f"decision:{f}", settings.name))]
    m, p = Summary.of(mesh), Summary.of(peer)
    return {"faults": both, "meshlift": m.to_dict(), "peer": p.to_dict(), "ratio": p.median / m.median,
            "text": f"meshlift {m.fmt('s')} vs peer {p.fmt('s', digits=1)} on {', '.join(both)}: "
                    f"{p.median / m.median:.0f}x faster"}


def _soak_rows(observations: list[Observation]) -> tuple[list[list[str]], dict[str, int]]:
    rows, false_rollbacks = [], {}
    for observer, settings in [("meshlift", None), *(("peer", s.name) for s in _settings_used(observations))]:
        windows = _pick(observations, observer, "healthy", settings)
        if not windows:
            continue
        label = "meshlift (default gate settings)" if observer == "meshlift" else f"peer, {settings} settings"
        false = sum(not o.promoted for o in windows)
        early = sum(o.failed_before_onset > 0 for o in observations if o.observer == observer
                    and o.kind.startswith("decision:") and (settings is None or o.settings == settings)
                    and o.decided_fail and o.onset_to_decision is None)
        false_rollbacks[label] = false + early
        failed = Summary.of(o.failed_checks for o in windows)
        rows.append([label, str(len(windows)), _outcomes(windows), f"**{false}**",
                     f"{failed.median:g} (max {failed.high:g})", f"{sum(o.elapsed for o in windows):.0f} s"])
    return rows, false_rollbacks


def _cost_rows(costs: list[Cost]) -> list[list[str]]:
    return [[c.observer, str(c.proxies), f"{c.seconds:.0f} s", f"{c.cpu_per_minute:.1f} s", mib(c.peak_rss), c.detail]
            for c in costs]


def section(observations: list[Observation], costs: list[Cost], traffic: dict[str, dict[str, int]], *,
            quick: bool, prometheus: str) -> Section:
    used = _settings_used(observations)
    decision_rows = []
    for fault in FAULTS:
        row = [fault, _decision_cell(_pick(observations, "meshlift", f"decision:{fault}"))]
        for s in used:
            row.append(_decision_cell(_pick(observations, "peer", f"decision:{fault}", s.name)))
        peer = _pick(observations, "peer", f"decision:{fault}")
        noise = [o for o in peer if o.decided_fail]
        if peer_sees(observations, fault):
            row.append("sees it: " + noise[0].message)
        else:
            row.append(f"blind: {WHY_BLIND.get(fault, '')}" + (
                f" ({len(noise)} of {len(peer)} windows rolled back anyway, on background noise as healthy "
                f"canaries do: \"{noise[0].message}\")" if noise else ""))
        decision_rows.append(row)
    faulty_rows = []
    for fault in FAULTS:
        mesh, peer = (_pick(observations, who, f"faulty:{fault}") for who in ("meshlift", "peer"))
        if mesh or peer:
            faulty_rows.append([fault, _outcomes(mesh), _outcomes(peer)])
    soak_rows, false_rollbacks = _soak_rows(observations)
    heads = {s.name: headline(observations, s) for s in used}
    tables = [
        Table("Peer settings", ["setting", "scrape", "analysis interval", "threshold", "success-rate window",
                                "duration window", "promotes after", "rolls back"],
              [[s.name, f"{s.scrape_interval_s:g} s", f"{s.interval_s:g} s", str(s.threshold),
                f"{s.success_window_s:g} s", f"{s.duration_window_s:g} s", f"{s.passes_to_promote} passing checks",
                f"on the tick after the {s.threshold}th failed check"] for s in used]),
        Table("Fault onset → decision, same canary and same onset for both (median, range)",
              ["fault", "meshlift", *(f"peer, {s.name}" for s in used), "what the peer's checks saw"], decision_rows),
    ]
    if faulty_rows:
        tables.append(Table("Fault in force from the start, promotion allowed (aggressive settings)",
                            ["fault", "meshlift (default settings)", "peer (aggressive)"], faulty_rows))
    tables += [
        Table("Healthy soak: windows on healthy canaries, back to back", ["observer", "windows", "outcomes",
              "false rollbacks", "failed checks per window", "watched"], soak_rows),
        Table(f"Cost of watching {costs[0].proxies if costs else 0} proxies, per minute of watching",
              ["observer", "proxies", "watched", "CPU per minute", "peak RSS", "what it did"], _cost_rows(costs)),
    ]
    targets = []
    for s in used:
        h = heads[s.name]
        targets.append(TargetCheck(f"Decision faster than the Prometheus-based peer at its {s.name} settings",
                                   h["text"] if h else "no fault detected by both", bool(h and h["ratio"] > 1)))
    blind = [f for f in FAULTS if not peer_sees(observations, f)]
    mesh_missed = [f for f in FAULTS if not _latencies(_pick(observations, "meshlift", f"decision:{f}"))]
    targets.append(TargetCheck("Every fault decided by meshlift, including those the peer cannot see",
                               f"meshlift decided {len(FAULTS) - len(mesh_missed)}/{len(FAULTS)}; the peer is blind "
                               f"to {', '.join(blind) or 'none'}", not mesh_missed))
    mesh_false = false_rollbacks.get("meshlift (default gate settings)", 0)
    targets.append(TargetCheck("0 false decisions in the healthy soak",
                               "; ".join(f"{k}: {v}" for k, v in false_rollbacks.items()), mesh_false == 0))
    mesh_cost = next((c for c in costs if c.observer.startswith("meshlift")), None)
    prom_cost = next((c for c in costs if c.observer.startswith("Prometheus (aggressive")), None)
    if mesh_cost and prom_cost:
        cheaper = mesh_cost.cpu_per_minute < prom_cost.cpu_per_minute
        targets.append(TargetCheck(
            f"Watching {mesh_cost.proxies} proxies costs less CPU than the peer's Prometheus (aggressive)",
            f"meshlift {mesh_cost.cpu_per_minute:.1f} CPU s/min, {mib(mesh_cost.peak_rss)} peak; Prometheus "
            f"{prom_cost.cpu_per_minute:.1f} CPU s/min, {mib(prom_cost.peak_rss)} peak", cheaper,
            "" if cheaper else "a gate samples every proxy every second from one Python process (four admin "
            "reads per proxy, /server_info alone ~122 KiB); Prometheus's Go scraper reads one ~19 KiB page"))
    base = traffic.get("baseline", {})
    method = [
        f"Prometheus {prometheus} (Debian's package; installed by the benchmark when missing), our own instance on "
        "127.0.0.1 with its own config and a temporary storage directory, scraping each canary Envoy's "
        "`/stats/prometheus`; each canary is labelled `kubernetes_namespace` / `kubernetes_pod_name` as a pod of its "
        "own workload would be by Kubernetes service discovery.",
        "The peer is Flagger's built-in analysis for Envoy proxies (its App Mesh templates: plain Envoy stats; the "
        "Istio templates run the same shape over `istio_requests_total`, which only Istio's stats plugin exports). "
        "request-success-rate, min 99 %: `" + render(SUCCESS_RATE_QUERY, namespace=NAMESPACE, target="<workload>",
                                                     window_s=AGGRESSIVE.success_window_s) + "`",
        "request-duration, max 500 ms: `" + render(DURATION_QUERY, namespace=NAMESPACE, target="<workload>",
                                                   window_s=AGGRESSIVE.duration_window_s) + "`",
        "Both run as instant queries on `/api/v1/query` once per analysis tick, in that order, as Flagger does: "
        "the last result's value is taken; an empty result is *no values found* (a failed check); NaN (no request "
        "in the window) passes, because Flagger's comparison `min > NaN` is false; a failed check adds one to the "
        "analysis's failed checks, never reset; a tick that starts with failed checks ≥ threshold rolls back; "
        "the 5th passing check promotes (`maxWeight` 50, `stepWeight` 10). Traffic shifting is not modelled: "
        "every canary carries the same traffic from the start.",
        "Default settings = Flagger's documented example analysis (`interval: 1m`, `threshold: 5`, success rate "
        "over 1m, duration over 30s) with a 15 s scrape (the Prometheus Flagger's charts install). Aggressive = "
        "the fastest sound setting: a 1 s scrape and rate windows of 4 s (four scrapes: `rate()` needs two samples "
        "in its window, four keep one late scrape from emptying it), one check per second. Flagger itself clamps "
        "`interval` to at least 10 s, so the aggressive peer is faster than Flagger can be configured: it is the "
        "best case of any Prometheus-based analysis with these windows.",
        "meshlift runs its default gate settings (interval 1 s, failure limit 1) against the canary and the "
        "baseline, in decision windows kept from promoting (`consecutive_passes` raised), as in section 1.",
        "Per phase: fresh canaries (Envoy 1.40.0, TLS listener and overload manager wired), one per fault and "
        "2–3 healthy ones, all carrying noisy healthy traffic (bursts at 30–80 req/s, 5 % 404, ~0.5 % 503) beside "
        f"a baseline Envoy 1.39.3 ({base.get('requests', 0):,} requests, {base.get('5xx', 0)} 5xx). Both observers "
        "start once the peer's rate windows are full; the fault is injected at a random instant (aggressive: 2–4 s "
        "after the start, default: 5–65 s, i.e. anywhere within an analysis interval); onset = just before "
        "`localmesh.inject_fault` is called; decision = meshlift's failing sample, the peer's rollback tick.",
        "Faulty windows (aggressive phases): right after the decision window, with the fault still in force, both "
        "observers at their full settings with promotion allowed. Healthy soak: back-to-back windows of both "
        "observers on the healthy canaries while the fault windows run. A false rollback is a healthy window that "
        "does not promote, or a decision window that rolls back before the onset.",
        "Cost: one observer at a time watching the same Envoys (1 cluster each, static config, 10 requests each "
        "before), CPU = user + system seconds of the observer's process over the watched time (psutil), peak RSS = "
        "its VmHWM. The peer's figure is the Prometheus process alone (scraping + the two queries per tick); "
        "meshlift's is its gate in a process of its own (imports excluded from the CPU, not from the peak).",
    ]
    notes = [f"Headline, {name} settings: {h['text']}." for name, h in heads.items() if h]
    notes += [f"False rollback, {o.observer} ({o.settings} phase): {o.message}" for o in observations
              if o.kind == "healthy" and not o.promoted][:8]
    notes.append("The real-engine timing (`pulumi preview` / `up` for 100 and 1,000 workloads on a local cluster) "
                 "is not part of this benchmark yet: it needs the local Kubernetes toolchain.")
    return Section(
        name="prometheus", title="Against the real peer: meshlift vs a Prometheus-based analysis (Flagger's)",
        method=method, tables=tables, targets=targets, notes=notes,
        # meshlift's healthy windows number in the hundreds (2 s each): kept as a summary
        data={"observations": [o.to_dict() for o in observations
                               if not (o.observer == "meshlift" and o.kind == "healthy" and o.promoted)],
              "meshlift_healthy": {"outcomes": _outcomes(_pick(observations, "meshlift", "healthy")),
                                   "seconds": sum(o.elapsed for o in _pick(observations, "meshlift", "healthy"))},
              "costs": [c.__dict__ for c in costs],
              "headline": heads, "traffic": traffic, "prometheus": prometheus,
              "settings": {s.name: s.__dict__ for s in used}},
        quick=quick)
