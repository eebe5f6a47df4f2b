"""Checks on what the proxy is living through: certificates, overload, ejections."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .context import Context, Verdict
from .observe import Read

_DAY = 86400.0


def _expiry(entry: Mapping[str, Any]) -> datetime | None:
    raw = entry.get("expiration_time")
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def certificates_valid(ctx: Context) -> Verdict:
    """Every certificate (chain and CA) valid for at least `min_cert_validity_days`.

    Uses the exact `expiration_time` from /certs, not the rounded-down
    `days_until_expiration` string (0 both for "expired" and "expires tonight").
    """
    minimum = ctx.settings.min_cert_validity_days
    certs: list[tuple[str, float]] = []
    unreadable = 0
    for bundle in ctx.obs.get(Read.CERTS):
        if not isinstance(bundle, Mapping):
            continue
        for kind in ("cert_chain", "ca_cert"):
            for entry in bundle.get(kind) or ():
                if not isinstance(entry, Mapping):
                    continue
                when = _expiry(entry)
                label = f"{kind} {entry.get('path') or entry.get('serial_number') or '?'}"
                if when is None:
                    unreadable += 1
                    continue
                certs.append((label, (when - ctx.now).total_seconds() / _DAY))
    if not certs and not unreadable:
        return Verdict.skip("no certificates loaded", threshold=minimum)
    if unreadable:
        return Verdict.fail(f"{unreadable} certificate(s) without a readable expiration_time", threshold=minimum)
    label, days = min(certs, key=lambda c: c[1])
    observed = round(days, 4)
    if days <= 0:
        return Verdict.fail(
            f"certificate {label} expired {-days:.1f} days ago", observed=observed, threshold=minimum
        )
    if days < minimum:
        return Verdict.fail(
            f"certificate {label} expires in {days:.2f} days < {minimum:g} days", observed=observed, threshold=minimum
        )
    return Verdict.ok(
        f"{len(certs)} certificate(s), soonest expiry in {days:.1f} days", observed=observed, threshold=minimum
    )


def overload_inactive(ctx: Context) -> Verdict:
    stats = ctx.obs.stats
    active = sorted(n[: -len(".active")] for n in stats.names(prefix="overload.", suffix=".active") if stats.number(n) > 0)
    scaled = {
        n[: -len(".scale_percent")]: stats.number(n)
        for n in stats.names(prefix="overload.", suffix=".scale_percent")
        if stats.number(n) > 0
    }
    pressure = {n[: -len(".pressure")]: stats.number(n) for n in stats.names(prefix="overload.", suffix=".pressure")}
    observed = {"active": [_short(a) for a in active], "scaled": {_short(k): v for k, v in scaled.items()}, "pressure": {_short(k): v for k, v in pressure.items()}}
    if active:
        return Verdict.fail(f"overload action(s) active: {', '.join(_short(a) for a in active)}", observed=observed, threshold=0)
    if scaled:
        names = ", ".join(f"{_short(k)} {v:.0f}%" for k, v in scaled.items())
        return Verdict.warn(f"overload action(s) scaling: {names}", observed=observed, threshold=0)
    return Verdict.ok("no overload action active", observed=observed, threshold=0)


def _short(name: str) -> str:
    for prefix in ("overload.envoy.overload_actions.", "overload.envoy.resource_monitors.", "overload."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def no_outlier_ejections(ctx: Context) -> Verdict:
    stats = ctx.obs.stats
    ejected = {
        n[len("cluster."): -len(".outlier_detection.ejections_active")]: stats.number(n)
        for n in stats.names(prefix="cluster.", suffix=".outlier_detection.ejections_active")
        if stats.number(n) > 0
    }
    total = sum(ejected.values())
    if total:
        worst = ", ".join(f"{k} ({v:.0f})" for k, v in sorted(ejected.items(), key=lambda kv: -kv[1])[:3])
        return Verdict.fail(f"{total:.0f} upstream host(s) ejected as outliers: {worst}", observed=total, threshold=0)
    return Verdict.ok("no upstream host ejected", observed=0, threshold=0)
