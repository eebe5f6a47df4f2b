"""Checks on configuration delivery: control plane connection and xDS rejections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .context import Context, Verdict
from .observe import Read
from .stats import Stats

_SUFFIXES = ("update_rejected", "update_failure", "update_success", "version_text")
_DOTTED_SUFFIXES = tuple("." + s for s in _SUFFIXES)


def control_plane_connected(ctx: Context) -> Verdict:
    stats = ctx.obs.stats
    if "control_plane.connected_state" not in stats:
        return Verdict.skip("no gRPC control plane configured (static or filesystem config)")
    state = stats.number("control_plane.connected_state")
    if state >= 1:
        return Verdict.ok("connected to the control plane", observed=1, threshold=1)
    return Verdict.fail("not connected to the control plane", observed=int(state), threshold=1)


@dataclass(frozen=True)
class Subscription:
    """One xDS subscription's counters (LDS, CDS, an RDS route config, an EDS cluster, SDS...)."""

    prefix: str
    rejected: float
    failure: float
    success: float
    version: str | None

    @property
    def label(self) -> str:
        return _short(self.prefix)


def subscriptions(stats: Stats) -> dict[str, Subscription]:
    return dict(stats.derived(_subscriptions, _subscriptions))


def _subscriptions(stats: Stats) -> dict[str, Subscription]:
    prefixes = {name.rpartition(".")[0] for name in stats if name.endswith(_DOTTED_SUFFIXES)}
    return {
        p: Subscription(
            prefix=p,
            rejected=stats.number(f"{p}.update_rejected"),
            failure=stats.number(f"{p}.update_failure"),
            success=stats.number(f"{p}.update_success"),
            version=stats.text(f"{p}.version_text"),
        )
        for p in sorted(prefixes)
    }


def _short(prefix: str) -> str:
    return {"listener_manager.lds": "LDS", "cluster_manager.cds": "CDS"}.get(prefix, prefix)


def xds_config_accepted(ctx: Context) -> Verdict:
    """No xDS update rejected during the window, and none still in effect from before it.

    Still in effect means: a dynamic listener carries an `error_state` in
    /config_dump (Envoy clears it when a later update of that listener is
    accepted), or a subscription rejected updates and never accepted one (the
    fresh canary that NACKed its first push: `update_success` still 0, as a
    rejection never counts as a success). A rejection followed by accepted
    updates is superseded for listeners (no error_state left); for other
    subscriptions Envoy keeps no per-resource error state, so it is a warning.
    """
    stats = ctx.obs.stats
    subs = subscriptions(stats)
    earlier = ctx.start.stats_or_none() if ctx.start is not None else None
    earlier_subs = subscriptions(earlier) if earlier is not None else {}
    grpc = "control_plane.connected_state" in stats
    failures: list[str] = []
    warnings: list[str] = []
    details: dict[str, Any] = {}

    for prefix, sub in subs.items():
        before = earlier_subs.get(prefix)
        if earlier is not None:
            rejected_now = _rise(sub.rejected, before.rejected if before else 0)
            failed_now = _rise(sub.failure, before.failure if before else 0)
            if rejected_now:
                failures.append(f"{sub.label}: {rejected_now:.0f} update(s) rejected during the window")
            if failed_now:
                # Over gRPC an update_failure is a broken stream (control-plane-connected judges
                # that); with filesystem xDS it is a config that would not even parse.
                (warnings if grpc else failures).append(
                    f"{sub.label}: {failed_now:.0f} update(s) failed during the window"
                )
        # A rejection never bumps update_success, so 0 means nothing was ever accepted.
        # (version_text alone cannot tell: a control plane may send an empty version.)
        if sub.rejected > 0 and sub.success == 0:
            failures.append(
                f"{sub.label}: {sub.rejected:.0f} update(s) rejected and no version ever accepted"
            )
        elif sub.rejected > 0 and prefix != "listener_manager.lds" and earlier is None:
            warnings.append(
                f"{sub.label}: {sub.rejected:.0f} update(s) rejected since start, later ones accepted "
                f"(now at version {sub.version!r}); Envoy keeps no error state to tell if superseded"
            )
        if sub.rejected or sub.failure:
            details[sub.label] = {"rejected": sub.rejected, "failure": sub.failure, "version": sub.version}

    for listener in _listeners_in_error(ctx.obs.get(Read.LISTENER_STATE)):
        failures.append(listener)

    observed = {"rejected": sum(s.rejected for s in subs.values()), "subscriptions": details}
    if failures:
        return Verdict.fail("; ".join(failures[:3]) + (" …" if len(failures) > 3 else ""), observed=observed, threshold=0)
    if warnings:
        return Verdict.warn("; ".join(warnings[:3]), observed=observed, threshold=0)
    versions = {s.label: s.version for s in subs.values() if s.version is not None and "." not in s.label}
    shown = ", ".join(f"{k} {v!r}" for k, v in versions.items()) or "no xDS subscriptions"
    return Verdict.ok(f"no update rejected ({shown})", observed=observed, threshold=0)


def _rise(now: float, before: float) -> float:
    return now - before if now >= before else now  # counters reset: the proxy restarted


def _listeners_in_error(configs: list[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    nameless = 0
    for entry in configs:
        error = entry.get("error_state")
        if not isinstance(error, Mapping):
            continue
        if not entry.get("name"):
            # The field mask leaves a nameless copy of an error_state next to the named
            # one; alone, it is still evidence of a rejection in effect.
            nameless += 1
            continue
        details = str(error.get("details", "")).strip().splitlines()
        reason = details[-1] if details else "no details"
        found.append(
            f"listener {entry['name']!r} update rejected at {error.get('last_update_attempt', '?')} "
            f"and still in effect: {reason[:160]}"
        )
    if nameless and not found:
        found.append("a listener update rejection is still in effect (config_dump error_state)")
    return found


def no_unknown_fields(ctx: Context) -> Verdict:
    count = ctx.obs.stats.number("server.dynamic_unknown_fields")
    if count > 0:
        return Verdict.fail(
            f"{count:.0f} dynamic config message(s) carried fields this proxy does not know",
            observed=count,
            threshold=0,
        )
    return Verdict.ok("no unknown fields in dynamic config", observed=0, threshold=0)
