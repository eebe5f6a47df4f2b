"""Checks on the proxy process itself: ready, version, draining, memory."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .context import Context, Verdict
from .observe import Read, ReadyState
from .process import restart_evidence

_ENVOY_VERSION = re.compile(r"/(\d+\.\d+\.\d+[^/]*)/")


def proxy_ready(ctx: Context) -> Verdict:
    ready: ReadyState = ctx.obs.get(Read.READY)
    if ready.live:
        return Verdict.ok("LIVE", observed="LIVE", threshold="LIVE")
    state = ready.state or f"HTTP {ready.status}"
    return Verdict.fail(f"/ready answered {ready.status} {state!r}, not LIVE", observed=state, threshold="LIVE")


def proxy_versions(info: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(Envoy version, Istio proxy version) from /server_info; either may be None."""
    match = _ENVOY_VERSION.search(str(info.get("version", "")))
    envoy = match.group(1) if match else None
    node = info.get("node") if isinstance(info.get("node"), Mapping) else {}
    metadata = node.get("metadata") if isinstance(node.get("metadata"), Mapping) else {}
    istio = metadata.get("ISTIO_VERSION")
    return envoy, istio if isinstance(istio, str) and istio else None


def _normalise(version: str) -> str:
    # A revision name is the version with dots as dashes (1-40-0); compare in one form.
    return version.strip().lstrip("v").replace("-", ".").lower()


def version_matches(actual: str, expected: str) -> bool:
    a, e = _normalise(actual), _normalise(expected)
    return a == e or a.startswith(e + ".")


def proxy_version(ctx: Context) -> Verdict:
    expected = ctx.target.expected_version
    info = ctx.obs.get(Read.SERVER_INFO)
    envoy, istio = proxy_versions(info)
    # An Istio sidecar reports Envoy's version in `version`; the revision's version is
    # the agent's ISTIO_VERSION in the node metadata. Plain Envoy has only the former.
    actual, source = (istio, "ISTIO_VERSION") if istio else (envoy, "Envoy")
    details = {"envoy_version": envoy, "istio_version": istio}
    if expected is None:
        return Verdict.skip(f"no expected version given (running {source} {actual})", observed=actual, details=details)
    if actual is None:
        return Verdict.fail(
            f"cannot tell the version from /server_info {str(info.get('version'))[:80]!r}",
            threshold=expected,
            details=details,
        )
    if version_matches(actual, expected):
        return Verdict.ok(f"{source} {actual}", observed=actual, threshold=expected, details=details)
    return Verdict.fail(
        f"proxy runs {source} {actual}, expected {expected}", observed=actual, threshold=expected, details=details
    )


def not_draining(ctx: Context) -> Verdict:
    stats = ctx.obs.stats
    # /ready's body is the server state /server_info reports (both come from Envoy's
    # Utility::serverState), read fresh every sample; /server_info is read once per process.
    ready: ReadyState = ctx.obs.get(Read.READY)
    state = ready.state
    stopped = stats.number("listener_manager.listener_stopped")
    draining = stats.number("listener_manager.total_listeners_draining")
    observed = {"state": state, "listeners_stopped": stopped, "listeners_draining": draining}
    if state == "DRAINING":
        return Verdict.fail("server is DRAINING (health check failed or shutting down)", observed=observed)
    if stopped > 0:
        return Verdict.fail(f"{stopped:.0f} listener(s) stopped (listeners drained)", observed=observed, threshold=0)
    if draining > 0:
        # Normal for a moment after every listener update; worth a look if it persists.
        return Verdict.warn(f"{draining:.0f} listener(s) draining", observed=observed, threshold=0)
    return Verdict.ok(f"state {state}, no listener stopped or draining", observed=observed)


# Added to the baseline-relative bound, so proxies of a few MiB do not fail on noise.
MEMORY_SLACK_BYTES = 32 * 1024 * 1024


def memory_within_bound(ctx: Context) -> Verdict:
    """A canary's memory against its baseline's (`max_memory_ratio` times the largest, plus slack).

    Gateways and sidecars with a large config normally use hundreds of MiB, so no
    one figure fits every proxy: what the upgrade changes is the canary against
    the same workload on the old revision. `max_memory_bytes`, when set, is an
    absolute cap on every proxy as well.
    """
    stats = ctx.obs.stats
    cap = ctx.settings.max_memory_bytes
    if "server.memory_allocated" not in stats:
        return Verdict.skip("server.memory_allocated not reported", threshold=cap)
    allocated = stats.number("server.memory_allocated")
    details: dict[str, Any] = {"memory_heap_size": stats.number("server.memory_heap_size")}
    reference = _baseline_memory(ctx)
    if reference is not None:
        name, used = reference
        bound = used * ctx.settings.max_memory_ratio + MEMORY_SLACK_BYTES
        details.update(baseline=name, baseline_memory_allocated=used, bound=bound)
        message = (f"memory allocated {_mib(allocated)} {'>' if allocated > bound else '<='} "
                   f"{ctx.settings.max_memory_ratio:g} x baseline {name}'s {_mib(used)} + {_mib(MEMORY_SLACK_BYTES)}")
        if allocated > bound:
            return Verdict.fail(message, observed=allocated, threshold=bound, details=details)
    else:
        message = f"memory allocated {_mib(allocated)}"
    if cap is not None and allocated > cap:
        return Verdict.fail(f"memory allocated {_mib(allocated)} > {_mib(cap)} (maxMemoryBytes)",
                            observed=allocated, threshold=cap, details=details)
    if reference is None and cap is None:
        return Verdict.ok(message + " (no baseline of this workload to compare with, no maxMemoryBytes)",
                          observed=allocated, details=details)
    return Verdict.ok(message, observed=allocated, threshold=details.get("bound", cap), details=details)


def _baseline_memory(ctx: Context) -> tuple[str, float] | None:
    """The largest `server.memory_allocated` among the canary's baselines of the same workload."""
    if ctx.target.role != "canary":
        return None
    from .rules_parity import matching_baselines

    found = [(view.target.name, stats.number("server.memory_allocated"))
             for view in matching_baselines(ctx.target, ctx.baselines)
             if (stats := view.obs.stats_or_none()) is not None and "server.memory_allocated" in stats]
    return max(found, key=lambda item: item[1]) if found else None


def _mib(value: float) -> str:
    return f"{value / 1048576:.1f} MiB"


def not_restarted(ctx: Context) -> Verdict:
    """The proxy kept running between samples.

    A restart resets every counter: errors before it vanish from the deltas, and
    a crash-looping canary can look healthy one sample at a time. Seen as
    `server.uptime` going back (it counts whole seconds, so by more than one), a
    process-lifetime counter going back, or another build (`server.version`).
    """
    stats = ctx.obs.stats
    uptime = stats.number("server.uptime", default=-1)
    if uptime < 0:
        return Verdict.skip("server.uptime not reported")
    earlier = ctx.previous.stats_or_none() if ctx.previous is not None else None
    if earlier is None:
        return Verdict.ok(f"up {uptime:.0f}s", observed=uptime)
    restart = restart_evidence(stats, earlier)
    if restart is not None:
        return Verdict.fail(f"proxy restarted between samples ({restart.reason})", observed=uptime,
                            details={"previous_uptime": restart.previous_uptime,
                                     "counters_reset": list(restart.counters_reset[:5]),
                                     "build_changed": restart.build_changed})
    return Verdict.ok(f"up {uptime:.0f}s", observed=uptime)
