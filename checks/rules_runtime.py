"""Checks on what the proxy is living through: certificates, overload, ejections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .context import Context, Verdict
from .observe import Read
from .stats import cluster_name

_DAY = 86400.0


def _when(entry: Mapping[str, Any], key: str) -> datetime | None:
    raw = entry.get(key)
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _expiry(entry: Mapping[str, Any]) -> datetime | None:
    return _when(entry, "expiration_time")


# Istio's agent renews a workload certificate at about half its lifetime (grace ratio 0.5,
# ~1 % jitter); one still served past three quarters of it means rotation has stalled.
ROTATION_STALLED_AT = 0.75


def spiffe_id(entry: Mapping[str, Any]) -> str | None:
    """The `spiffe://` URI SAN of a /certs entry: what marks a mesh workload certificate."""
    for san in entry.get("subject_alt_names") or ():
        uri = san.get("uri") if isinstance(san, Mapping) else None
        if isinstance(uri, str) and uri.startswith("spiffe://"):
            return uri
    return None


@dataclass(frozen=True)
class _Cert:
    label: str
    days_left: float
    workload: bool
    used: float | None = None  # workload certificates: fraction of the lifetime gone
    lifetime_h: float | None = None


def _certs(bundles: list[Any], now: datetime) -> tuple[list[_Cert], int]:
    found: list[_Cert] = []
    unreadable = 0
    for bundle in bundles:
        if not isinstance(bundle, Mapping):
            continue
        for kind in ("cert_chain", "ca_cert"):
            for entry in bundle.get(kind) or ():
                if not isinstance(entry, Mapping):
                    continue
                expires = _expiry(entry)
                if expires is None:
                    unreadable += 1
                    continue
                days = (expires - now).total_seconds() / _DAY
                identity = spiffe_id(entry) if kind == "cert_chain" else None
                label = f"{kind} {identity or entry.get('path') or entry.get('serial_number') or '?'}"
                issued = _when(entry, "valid_from")
                if identity is None or issued is None or expires <= issued:
                    found.append(_Cert(label, days, workload=identity is not None))
                    continue
                lifetime = (expires - issued).total_seconds()
                found.append(_Cert(label, days, workload=True, used=(now - issued).total_seconds() / lifetime,
                                   lifetime_h=lifetime / 3600))
    return found, unreadable


def certificates_valid(ctx: Context) -> Verdict:
    """Workload certificates judged against their own lifetime; the others against `min_cert_validity_days`.

    A workload certificate (a chain whose SAN is a `spiffe://` URI: what Istio's
    agent serves over SDS as `default`) lives 24 h and is renewed at about half
    of it, so days left say nothing: it fails when expired or past
    `ROTATION_STALLED_AT` of its lifetime. Roots and intermediates (`ROOTCA`,
    `ca_cert`) and gateway credentials (chains without a SPIFFE identity) must
    have `min_cert_validity_days` left. Uses the exact `expiration_time` and
    `valid_from` from /certs, not the rounded-down `days_until_expiration`
    string (0 both for "expired" and "expires tonight").
    """
    minimum = ctx.settings.min_cert_validity_days
    certs, unreadable = _certs(ctx.obs.get(Read.CERTS), ctx.now)
    if not certs and not unreadable:
        return Verdict.skip("no certificates loaded", threshold=minimum)
    if unreadable:
        return Verdict.fail(f"{unreadable} certificate(s) without a readable expiration_time", threshold=minimum)
    details = {"workload": [{"certificate": c.label, "days_left": round(c.days_left, 4),
                             "lifetime_used": None if c.used is None else round(c.used, 4)}
                            for c in certs if c.workload]}
    soonest = min(certs, key=lambda c: c.days_left)
    if soonest.days_left <= 0:
        return Verdict.fail(f"certificate {soonest.label} expired {-soonest.days_left:.1f} days ago",
                            observed=round(soonest.days_left, 4), threshold=minimum, details=details)
    stalled = [c for c in certs if c.used is not None and c.used > ROTATION_STALLED_AT]
    if stalled:
        worst = max(stalled, key=lambda c: c.used or 0.0)
        return Verdict.fail(
            f"workload certificate {worst.label} is {worst.used:.0%} through its {worst.lifetime_h:.1f} h lifetime "
            f"(> {ROTATION_STALLED_AT:.0%}): rotation stalled, the agent renews at about 50 %",
            observed=round(worst.days_left, 4), threshold=minimum, details=details)
    judged = [c for c in certs if not c.workload]
    short = min(judged, key=lambda c: c.days_left) if judged else None
    if short is not None and short.days_left < minimum:
        return Verdict.fail(f"certificate {short.label} expires in {short.days_left:.2f} days < {minimum:g} days",
                            observed=round(short.days_left, 4), threshold=minimum, details=details)
    workload = [c for c in certs if c.workload]
    parts = []
    if workload:
        newest = max(workload, key=lambda c: c.days_left)
        used = f", {newest.used:.0%} of its {newest.lifetime_h:.1f} h lifetime used" if newest.used is not None else ""
        parts.append(f"{len(workload)} workload certificate(s){used}")
    if short is not None:
        parts.append(f"{len(judged)} other(s), soonest expiry in {short.days_left:.1f} days")
    observed = (short or soonest).days_left
    return Verdict.ok("; ".join(parts), observed=round(observed, 4), threshold=minimum, details=details)


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
        cluster_name(n[len("cluster."): -len(".outlier_detection.ejections_active")]): stats.number(n)
        for n in stats.names(prefix="cluster.", suffix=".outlier_detection.ejections_active")
        if stats.number(n) > 0
    }
    total = sum(ejected.values())
    if total:
        worst = ", ".join(f"{k} ({v:.0f})" for k, v in sorted(ejected.items(), key=lambda kv: -kv[1])[:3])
        return Verdict.fail(f"{total:.0f} upstream host(s) ejected as outliers: {worst}", observed=total, threshold=0)
    return Verdict.ok("no upstream host ejected", observed=0, threshold=0)
