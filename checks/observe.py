"""One sample of one proxy: the admin reads the selected checks need, fetched concurrently.

A read that fails is stored as its `AdminError` (not raised): every check that
needs it then reports `error`, while checks on the other reads still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ._exceptions import AdminDecodeError, AdminError
from .client import AdminClient
from .stats import Stats, parse_json_stats, stats_filter
from .target import Target

__all__ = ["Read", "Observation", "ReadyState", "observe"]


class Read(str, Enum):
    """An admin read a check depends on (`reads` in the catalog)."""

    READY = "/ready"
    SERVER_INFO = "/server_info"
    STATS = "/stats"
    CERTS = "/certs"
    LISTENER_STATE = "/config_dump"  # dynamic listeners' active version and error_state only
    POD = "pod-status"  # Kubernetes pod status, known at discovery; no admin read


@dataclass(frozen=True)
class ReadyState:
    status: int
    state: str  # LIVE, DRAINING, PRE_INITIALIZING, INITIALIZING, or whatever came back

    @property
    def live(self) -> bool:
        return self.status == 200 and self.state == "LIVE"


# Field mask so /config_dump returns a few hundred bytes instead of the listeners' full config.
_LISTENER_MASK = "name,error_state.last_update_attempt,error_state.details,active_state.version_info"


@dataclass(frozen=True)
class Observation:
    """What one sample read from one target; `taken_at` on the caller's (monotonic) clock."""

    target: str
    taken_at: float
    reads: Mapping[Read, Any] = field(default_factory=dict)

    def get(self, read: Read) -> Any:
        """The parsed read; raises its stored `AdminError` when that read failed."""
        value = self.reads.get(read)
        if isinstance(value, AdminError):
            raise value
        return value

    def failed(self, read: Read) -> AdminError | None:
        value = self.reads.get(read)
        return value if isinstance(value, AdminError) else None

    @property
    def stats(self) -> Stats:
        return self.get(Read.STATS) or Stats()

    def stats_or_none(self) -> Stats | None:
        value = self.reads.get(Read.STATS)
        return value if isinstance(value, Stats) else None


async def observe(
    client: AdminClient,
    target: Target,
    reads: Iterable[Read],
    *,
    stat_patterns: Iterable[str] = (),
    taken_at: float = 0.0,
) -> Observation:
    wanted = [r for r in dict.fromkeys(reads) if r is not Read.POD]
    flt = stats_filter(stat_patterns)
    results = await asyncio.gather(*(_read(client, target, r, flt) for r in wanted))
    values: dict[Read, Any] = dict(zip(wanted, results))
    if target.pod is not None:
        values[Read.POD] = target.pod
    return Observation(target=target.name, taken_at=taken_at, reads=values)


async def _read(client: AdminClient, target: Target, read: Read, flt: str) -> Any:
    try:
        return await _FETCHERS[read](client, target.admin_url, flt)
    except AdminError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a parser bug must not crash a gate; fail closed
        return AdminDecodeError(f"could not interpret {read.value} from {target.admin_url}: {exc!r}")


async def _ready(client: AdminClient, base: str, _: str) -> ReadyState:
    response = await client.get(base, "/ready", ok_statuses=(200, 503))
    return ReadyState(response.status, response.text.strip()[:64])


async def _server_info(client: AdminClient, base: str, _: str) -> Mapping[str, Any]:
    data = await client.get_json(base, "/server_info")
    if not isinstance(data, Mapping) or not isinstance(data.get("version"), str):
        raise AdminDecodeError(f"{base}/server_info has no 'version' string", url=base)
    return data


async def _stats(client: AdminClient, base: str, flt: str) -> Stats:
    params = {"format": "json"}
    if flt:
        params["filter"] = flt
    response = await client.get(base, "/stats", params)
    try:
        return parse_json_stats(response.json())
    except ValueError as exc:
        raise AdminDecodeError(f"{base}/stats: {exc}", url=base) from exc


async def _certs(client: AdminClient, base: str, _: str) -> list[Mapping[str, Any]]:
    data = await client.get_json(base, "/certs")
    certs = data.get("certificates") if isinstance(data, Mapping) else None
    if not isinstance(certs, list):
        raise AdminDecodeError(f"{base}/certs has no 'certificates' list", url=base)
    return certs


async def _listener_state(client: AdminClient, base: str, _: str) -> list[Mapping[str, Any]]:
    data = await client.get_json(
        base, "/config_dump", {"resource": "dynamic_listeners", "mask": _LISTENER_MASK}
    )
    # Envoy answers `{}` when there is no dynamic listener (an empty repeated field is omitted).
    configs = data.get("configs", []) if isinstance(data, Mapping) else None
    if not isinstance(configs, list):
        raise AdminDecodeError(f"{base}/config_dump has no 'configs' list", url=base)
    return [c for c in configs if isinstance(c, Mapping)]


_FETCHERS = {
    Read.READY: _ready,
    Read.SERVER_INFO: _server_info,
    Read.STATS: _stats,
    Read.CERTS: _certs,
    Read.LISTENER_STATE: _listener_state,
}
