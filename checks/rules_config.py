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


# What shows an Istio proxy's xDS stream whatever its stats matcher keeps (prefix `cluster.xds-grpc`).
XDS_GRPC_STATS = r"^cluster\.xds-grpc;?\.upstream_(rq_active|rq_total|cx_connect_fail)$"
_XDS_GRPC_PREFIXES = ("cluster.xds-grpc;", "cluster.xds-grpc")


def xds_grpc_cluster(stats: Stats) -> str | None:
    """The stat prefix of Istio's `xds-grpc` cluster (its bootstrap names it so, stats `cluster.xds-grpc;.…`)."""
    for prefix in _XDS_GRPC_PREFIXES:
        if f"{prefix}.upstream_rq_active" in stats:
            return prefix
    return None


def grpc_xds(stats: Stats) -> bool:
    """Config comes over a gRPC stream: Envoy's own gauge says so, or Istio's bootstrap cluster does."""
    return "control_plane.connected_state" in stats or xds_grpc_cluster(stats) is not None


def stream_open(stats: Stats) -> bool | None:
    """Whether the xDS stream is up now; None when the proxy has no gRPC control plane."""
    if "control_plane.connected_state" in stats:
        return stats.number("control_plane.connected_state") >= 1
    prefix = xds_grpc_cluster(stats)
    if prefix is None:
        return None
    # The ADS stream is one long gRPC request on the xds-grpc cluster. On an Istio sidecar
    # that cluster leads to pilot-agent, which ends Envoy's stream whenever its own stream to
    # istiod ends or cannot be opened: an open stream means istiod is being listened to.
    return stats.number(f"{prefix}.upstream_rq_active") >= 1


def control_plane_connected(ctx: Context) -> Verdict:
    """The proxy listens to its control plane: now, or at least in one of two samples in a row.

    Reads `control_plane.connected_state` where kept; on an Istio proxy (whose
    stats matcher drops that gauge) the ADS stream on `xds-grpc`. istiod closes
    every stream after its max connection age and Envoy opens a new one within a
    second, so one sample without a stream only warns; a second in a row, or a
    one-off check, fails: the proxy is cut off from istiod.
    """
    stats = ctx.obs.stats
    now = stream_open(stats)
    if now is None:
        return Verdict.skip("no gRPC control plane configured (static or filesystem config)")
    earlier = ctx.previous.stats_or_none() if ctx.previous is not None else None
    prefix = xds_grpc_cluster(stats)
    gauge = "control_plane.connected_state" in stats
    signal = "control_plane.connected_state" if gauge else "ADS stream open on xds-grpc"
    streams = (stats.delta(earlier, f"{prefix}.upstream_rq_total") if prefix and earlier is not None else 0)
    if now:
        reopened = f"; the stream was re-established {streams:.0f} time(s) since the last sample" if streams else ""
        return Verdict.ok(f"connected to the control plane ({signal}){reopened}", observed=1, threshold=1)
    missing = "control_plane.connected_state 0" if gauge else "no ADS stream open on xds-grpc"
    before = stream_open(earlier) if earlier is not None else None
    failures = stats.delta(earlier, f"{prefix}.upstream_cx_connect_fail") if prefix and earlier is not None else 0
    details = {"stream_attempts": streams, "connect_failures": failures}
    if earlier is None and prefix and stats.number(f"{prefix}.upstream_rq_total") >= 1:
        # A gate's first sample has nothing before it either: a proxy that had a stream and is between two
        # (istiod's max connection age) is judged again at the next sample, not failed on one look.
        return Verdict.warn(f"not connected to the control plane in this sample: {missing} (it had a stream "
                            "before: a stream being re-established fails only if it lasts)",
                            observed=0, threshold=1, details=details)
    if before and not failures:
        return Verdict.warn(f"not connected to the control plane in this sample: {missing} (connected in the "
                            "previous one: a stream being re-established fails only if it lasts)",
                            observed=0, threshold=1, details=details)
    retried = f" ({streams:.0f} stream attempt(s) since the last sample)" if streams else ""
    return Verdict.fail(f"not connected to the control plane: {missing}{retried}",
                        observed=0, threshold=1, details=details)


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
    grpc = grpc_xds(stats)
    reconnected = grpc and stream_open(stats) is True
    reconnects: dict[str, float] = {}
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
            if failed_now and not reconnected:
                # Over gRPC an update_failure is a broken stream (control-plane-connected judges
                # that); with filesystem xDS it is a config that would not even parse.
                (warnings if grpc else failures).append(
                    f"{sub.label}: {failed_now:.0f} update(s) failed during the window"
                )
            elif failed_now:
                # istiod closes every stream after its max connection age; Envoy counts an
                # update_failure on each subscription and opens a new one: not a failure.
                reconnects[sub.label] = failed_now
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
    if reconnects:
        observed["reconnects"] = reconnects  # update_failure counted by a stream the control plane closed
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
