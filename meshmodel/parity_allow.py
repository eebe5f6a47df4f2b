"""Allowlist entries of the config-parity check: `<kind>:<glob>` over normalised names.

    listener:virtualOutbound            a listener the canary may lack
    cluster:outbound|*||legacy.*        clusters of a service being retired
    route:*/*/debug-*                   routes named debug-* in any route config and virtual host

Kinds are the inventory types (`KINDS`); the glob is matched with `fnmatch` against
the normalised key that `meshlift inspect --diff` prints, so what the diff shows can
be pasted into `meshlift:gates.parityAllow` as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

__all__ = ["KINDS", "validate_allow_entry", "allowed"]

KINDS = ("listener", "filter-chain", "route-config", "virtual-host", "route", "cluster")


def validate_allow_entry(entry: str) -> tuple[str, str]:
    """(kind, glob) of one entry; ValueError naming the problem otherwise."""
    kind, sep, glob = str(entry).partition(":")
    if not sep or not glob.strip():
        raise ValueError(f"{entry!r} must be '<kind>:<glob>' with kind one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ValueError(f"{entry!r}: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return kind, glob


def allowed(kind: str, key: str, entries: Iterable[str]) -> bool:
    """Whether `key` of `kind` matches an allowlist entry."""
    for entry in entries:
        entry_kind, glob = validate_allow_entry(entry)
        if entry_kind == kind and fnmatchcase(key, glob):
            return True
    return False
