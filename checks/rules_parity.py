"""Checks on what a proxy serves: parity with its baseline, and the production profile in force."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .config_dump import ConfigSnapshot
from .context import Baselines, BaselineView, Context, Verdict
from .observe import Read
from meshmodel.parity_allow import KINDS, allowed
from .result import Status
from .target import PodFacts, Target

__all__ = ["config_parity", "proxy_profile", "peer_key", "missing", "matching_baselines"]

_SHOWN = 4  # missing keys named per message; the details list them all


def peer_key(target: Target) -> tuple[str | None, str | None]:
    """(namespace, workload) a canary shares with its baseline: pod labels `app`, or the
    rehearsal's `workload` label (a canary Deployment is `<workload>-canary`)."""
    labels = target.labels
    namespace = labels.get("namespace") or (target.pod.namespace if target.pod is not None else None)
    app = labels.get("app") or (labels.get("workload") or "").removesuffix("-canary") or None
    return namespace, app


def matching_baselines(target: Target, baselines: Iterable[BaselineView]) -> list[BaselineView]:
    """The baselines of the same workload; every baseline when the target carries no workload labels."""
    views = baselines if isinstance(baselines, Baselines) else Baselines(baselines)
    key = peer_key(target)
    if key == (None, None):
        return list(views)
    return views.derive("by-workload", lambda: _by_workload(views)).get(key, [])


def _by_workload(views: Iterable[BaselineView]) -> dict[tuple[str | None, str | None], list[BaselineView]]:
    grouped: dict[tuple[str | None, str | None], list[BaselineView]] = {}
    for view in views:
        grouped.setdefault(peer_key(view.target), []).append(view)
    return grouped


def missing(reference: Mapping[str, frozenset[str]], candidate: Mapping[str, frozenset[str]],
            allow: Iterable[str] = ()) -> dict[str, list[str]]:
    """Per kind, the keys `reference` has that `candidate` lacks (allowlisted ones left out)."""
    allow = list(allow)
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        gone = sorted(k for k in reference.get(kind, frozenset()) - candidate.get(kind, frozenset())
                      if not allowed(kind, k, allow))
        if gone:
            out[kind] = gone
    return out


def config_parity(ctx: Context) -> Verdict:
    """A canary serves at least what its baseline serves, and no listener is warming or failed.

    The reference is what *every* matching baseline serves (their intersection), so a
    baseline caught mid-update cannot make the canary fail for something new.
    """
    snapshot: ConfigSnapshot = ctx.obs.get(Read.CONFIG)
    problems: list[str] = []
    details: dict[str, Any] = {}
    failed = snapshot.failed
    if failed:
        problems.append("; ".join(f"listener {item.name!r} failed: {item.error}" for item in failed[:2]))
        details["failed_listeners"] = [item.name for item in failed]
    warming = sorted({item.name for item in snapshot.warming})
    was_warming = _warming_before(ctx)
    stuck = [name for name in warming if name in was_warming]
    if warming:
        details["warming_listeners"] = warming
    if stuck:
        problems.append(f"listener(s) {', '.join(map(repr, stuck[:_SHOWN]))} still warming (not serving)")

    if ctx.target.role != "canary":
        return _verdict(problems, warming, details, "no listener warming or failed")
    baselines = matching_baselines(ctx.target, ctx.baselines)
    if not baselines:
        if problems or warming:
            return _verdict(problems, warming, details, "")
        return Verdict.skip("no baseline proxy of this workload to compare with", details=details or None)
    references: list[Mapping[str, frozenset[str]]] = []
    for view in baselines:
        error = view.obs.failed(Read.CONFIG)
        if error is not None:  # cannot compare: fail closed
            return Verdict(Status.ERROR, f"cannot read baseline {view.target.name}'s /config_dump: {error}",
                           details={"error": error.kind, "baseline": view.target.name})
        references.append(view.obs.get(Read.CONFIG).inventory)
    reference = {kind: frozenset.intersection(*(r.get(kind, frozenset()) for r in references)) for kind in KINDS}
    allow = list(getattr(ctx.settings, "parity_allow", None) or [])
    gone = missing(reference, snapshot.inventory, allow)
    details["baselines"] = [b.target.name for b in baselines]
    if gone:
        details["missing"] = gone
        problems.insert(0, "serves less than its baseline: " + "; ".join(
            f"{kind} {', '.join(map(repr, keys[:_SHOWN]))}{' …' if len(keys) > _SHOWN else ''} missing"
            for kind, keys in gone.items()))
    served = {kind: len(snapshot.inventory.get(kind, ())) for kind in KINDS}
    return _verdict(problems, warming, details,
                    f"serves everything its baseline serves ({served['listener']} listeners, "
                    f"{served['route']} routes, {served['cluster']} clusters)",
                    observed=sum(len(keys) for keys in gone.values()))


def _verdict(problems: list[str], warming: list[str], details: dict[str, Any], ok: str,
             observed: Any = 0) -> Verdict:
    if problems:
        return Verdict.fail("; ".join(problems), observed=observed, threshold=0, details=details)
    if warming:
        return Verdict.warn(f"listener(s) {', '.join(map(repr, warming[:_SHOWN]))} warming", details=details)
    return Verdict.ok(ok, observed=observed, threshold=0, details=details or None)


def _warming_before(ctx: Context) -> set[str]:
    """Listeners warming in the previous sample: warming twice in a row is stuck, once is an update."""
    if ctx.previous is None or ctx.previous.failed(Read.CONFIG) is not None:
        return set()
    earlier = ctx.previous.reads.get(Read.CONFIG)
    return {item.name for item in earlier.warming} if isinstance(earlier, ConfigSnapshot) else set()


# ------------------------------------------------------------------ proxy profile


def proxy_profile(ctx: Context) -> Verdict:
    """The stack's proxy profile is in force on this proxy (config dump and command line)."""
    profile = getattr(ctx.settings, "proxy_profile", None)
    if profile is None:
        return Verdict.skip("no proxy profile configured")
    snapshot: ConfigSnapshot = ctx.obs.get(Read.CONFIG)
    options = ctx.obs.get(Read.SERVER_INFO).get("command_line_options") or {}
    levels, overrides = _log_level_problems(profile, options, ctx.target.pod)
    problems = [*_access_log_problems(profile, snapshot), *_overload_problems(profile, snapshot),
                *_keepalive_problems(profile, snapshot), *levels]
    if problems:
        return Verdict.fail("; ".join(problems[:3]) + (" …" if len(problems) > 3 else ""),
                            observed=len(problems), threshold=0, details={"problems": problems, "overrides": overrides})
    if overrides:
        # A team may run its own workload at another log level: reported, never blocking.
        return Verdict.warn("profile in force but for the workload's own setting: " + "; ".join(overrides),
                            observed=0, threshold=0, details={"overrides": overrides})
    parts = [f"log level {profile.log_level}"]
    if profile.access_log.enabled:
        parts.insert(0, f"access log on {len(snapshot.hcm_logging)} HTTP connection manager(s)")
    if profile.overload.enabled:
        parts.append("heap overload actions")
    return Verdict.ok("profile in force: " + ", ".join(parts), observed=0, threshold=0)


def _access_log_problems(profile: Any, snapshot: ConfigSnapshot) -> list[str]:
    from meshmodel.proxy_profile import REQUIRED_LOG_FIELDS

    if not profile.access_log.enabled:
        return []
    bare = []
    for hcm in snapshot.hcm_logging:
        if not any(all(f in text for f in REQUIRED_LOG_FIELDS) for _, _, text in hcm.loggers):
            bare.append(f"{hcm.listener}/{hcm.chain}")
    if not bare:
        return []
    shown = ", ".join(bare[:_SHOWN]) + (" …" if len(bare) > _SHOWN else "")
    return [f"no access log with {' '.join(REQUIRED_LOG_FIELDS)} on {len(bare)} HTTP connection manager(s): {shown}"]


_ACTIONS = {"envoy.overload_actions.disable_http_keepalive": "disable_keepalive_at",
            "envoy.overload_actions.stop_accepting_requests": "stop_accepting_requests_at"}
_HEAP = "envoy.resource_monitors.fixed_heap"


def _overload_problems(profile: Any, snapshot: ConfigSnapshot) -> list[str]:
    overload = profile.overload
    if not overload.enabled:
        return []
    monitor = snapshot.overload_monitors.get(_HEAP)
    if monitor is None:
        return ["no fixed_heap overload monitor in the bootstrap"]
    problems = []
    if int(monitor.get("max_heap_size_bytes", 0)) != overload.max_heap_bytes:
        problems.append(f"heap monitor max {monitor.get('max_heap_size_bytes')} bytes, expected {overload.max_heap_bytes}")
    for action, attribute in _ACTIONS.items():
        threshold = snapshot.overload_actions.get(action, {}).get(_HEAP)
        expected = getattr(overload, attribute)
        if threshold is None:
            problems.append(f"overload action {action.rsplit('.', 1)[-1]} has no heap trigger")
        elif abs(threshold - expected) > 1e-6:
            problems.append(f"{action.rsplit('.', 1)[-1]} at heap {threshold:.2f}, expected {expected:.2f}")
    return problems


def _keepalive_problems(profile: Any, snapshot: ConfigSnapshot) -> list[str]:
    problems = []
    if snapshot.xds_cluster is not None:
        wanted = profile.control_plane_keepalive.time
        have = snapshot.xds_keepalive
        if have is None:
            problems.append(f"no TCP keepalive toward the control plane (cluster {snapshot.xds_cluster!r})")
        elif float(have.get("keepalive_time", wanted)) > wanted:
            problems.append(f"control-plane keepalive time {have.get('keepalive_time')}s > {wanted:g}s")
    if profile.upstream_keepalive is not None:
        # Istio sets mesh-wide keepalive on outbound clusters only; elsewhere every dynamic cluster.
        names = [n for n in snapshot.cluster_keepalive if n.startswith("outbound|")] or list(snapshot.cluster_keepalive)
        without = [n for n in names if snapshot.cluster_keepalive[n] is None and n != snapshot.xds_cluster]
        if without:
            problems.append(f"no TCP keepalive on {len(without)} upstream cluster(s): "
                            + ", ".join(without[:_SHOWN]) + (" …" if len(without) > _SHOWN else ""))
    return problems


def _log_level_problems(profile: Any, options: Mapping[str, Any],
                        pod: PodFacts | None = None) -> tuple[list[str], list[str]]:
    """(problems, overrides): a level the pod's own annotation asks for is an override, not a problem."""
    level = _level(options.get("log_level", ""))
    problems: list[str] = []
    overrides: list[str] = []
    if level != profile.log_level:
        text = f"log level {level or 'unknown'}, expected {profile.log_level}"
        if pod is not None and pod.log_level is not None and _level(pod.log_level) == level:
            overrides.append(f"{text} (pod annotation sidecar.istio.io/logLevel: {pod.log_level})")
        else:
            problems.append(text)
    components = {p.strip() for p in str(options.get("component_log_level", "")).split(",") if p.strip()}
    lacking = [p for p in profile.component_log_level.split(",") if p.strip() and p.strip() not in components]
    if lacking:
        text = f"component log level lacks {', '.join(lacking)}"
        own = pod.component_log_level if pod is not None else None
        if own is not None and {p.strip() for p in own.split(",") if p.strip()} <= components:
            overrides.append(f"{text} (pod annotation sidecar.istio.io/componentLogLevel: {own})")
        else:
            problems.append(text)
    return problems, overrides


def _level(raw: object) -> str:
    level = str(raw).strip().lower()
    return "warning" if level == "warn" else level
