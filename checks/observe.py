"""One sample of one proxy: the admin reads the selected checks need, fetched concurrently.

A read that fails is stored as its `AdminError` (not raised): every check that
needs it then reports `error`, while checks on the other reads still run.

Steady samples stay cheap without hiding anything:

- `/server_info` (~120 KiB of JSON, for the version) is read once per proxy
  *process*: a later sample carries it over only when this sample's filtered
  `/stats` proves the process is the same one (`process.same_process`) and it
  was read less than `SERVER_INFO_MAX_AGE_S` ago; otherwise it is read again.
- `/config_dump` (listener error states) is read only for proxies with an LDS
  subscription: without one there is no dynamic listener, and Envoy answers `{}`.
  The filtered `/stats` tells which (`listener_manager.lds.*` exists or not).
- The served config (config-parity, proxy-profile): the parts of `/config_dump`
  those checks read, one scoped read per config type (`mask=`, `resource=`), parsed
  into a small `ConfigSnapshot`, is carried over like `/server_info`, and only while
  no xDS counter, version or listener count in this sample's `/stats` moved
  (`config_fingerprint`): a push, a rejection or a listener warming re-reads it.
- `/certs` is carried over like `/server_info` for at most `CERTS_MAX_AGE_S`, and
  only while no SDS counter or version and `server.days_until_first_cert_expiring`
  moved (`certs_fingerprint`). meshlift's `proxyStatsMatcher` keeps the `sds.*`
  stats, so on its revisions a push re-reads at the next sample; a proxy whose
  stats drop them but still prove the same process shows a new certificate
  within that age. An expiry is judged against the sample's clock, so a carried
  certificate that expires meanwhile fails at once.
- `/ready` (readiness and the server state) and `/stats` are read every sample.

Each carried read is read again at its maximum age at the latest, each proxy at its
own point between half of it and all of it (`carry_limit`): proxies first read in
one sample are then read again spread over several, not all in one sample that
would overrun its interval.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ._exceptions import AdminDecodeError, AdminError
from .client import AdminClient
from .config_dump import ConfigSnapshot, parse_config_dump
from .process import PROCESS_STATS, same_process
from .stats import Stats, gc_paused, parse_json_stats, stats_filter
from .target import Target

__all__ = ["Read", "Observation", "ReadyState", "observe", "carry_limit", "SERVER_INFO_MAX_AGE_S",
           "CERTS_MAX_AGE_S"]

# A carried /server_info or config is read again at least this often (seconds on the sample
# clock), whatever the stats say: it bounds how long a restart no stat showed could go unseen.
SERVER_INFO_MAX_AGE_S = 30.0
# A carried /certs is read again at least this often: on a proxy whose stats show no SDS update
# (a stats matcher that drops `sds.*`), it bounds how long a certificate loaded meanwhile goes unseen.
CERTS_MAX_AGE_S = 10.0

# What an xDS subscription (SDS's too) counts of its updates, and the version it holds.
_SUBSCRIPTION_STATS = ("update_attempt", "update_success", "update_rejected", "update_failure", "version_text")
_SUBSCRIPTION_SUFFIXES = tuple(f".{name}" for name in _SUBSCRIPTION_STATS)
_SUBSCRIPTION_RE = rf"\.({'|'.join(_SUBSCRIPTION_STATS)})$"

# What moves whenever a proxy's served config may have changed: every xDS subscription's
# counters and version, and the listener manager's counts (a listener warming or draining).
CONFIG_STATS = (_SUBSCRIPTION_RE, r"^listener_manager\.total_listeners_(active|warming|draining)$")


def config_fingerprint(stats: Stats) -> tuple[tuple[str, Any], ...]:
    return _values_of(stats, lambda name: name.endswith(_SUBSCRIPTION_SUFFIXES)
                      or name.startswith("listener_manager.total_listeners_"))


def _values_of(stats: Stats, chosen: Callable[[str], bool]) -> tuple[tuple[str, Any], ...]:
    """The chosen stats' values, by name: what must not move for a carried read to still hold."""
    return tuple(sorted((name, stats.text(name) if name.endswith("version_text") else stats.number(name))
                        for name in stats if chosen(name)))


# What moves when a proxy may serve other certificates: each SDS subscription's counters and
# version (exported unless a stats matcher drops them, as Istio's default one does), and the
# days its soonest certificate has left.
_SOONEST_CERT_STAT = "server.days_until_first_cert_expiring"
CERTS_STATS = (r"^sds\..*" + _SUBSCRIPTION_RE, rf"^{re.escape(_SOONEST_CERT_STAT)}$")


def certs_fingerprint(stats: Stats) -> tuple[tuple[str, Any], ...]:
    return _values_of(stats, lambda name: (name.startswith("sds.") and name.endswith(_SUBSCRIPTION_SUFFIXES))
                      or name == _SOONEST_CERT_STAT)


def carry_limit(target: str, max_age: float) -> float:
    """How long `target`'s carried read may be carried: its own point between half `max_age` and all of it."""
    return max_age * (0.5 + 0.5 * zlib.crc32(target.encode()) / 2**32)


@dataclass(frozen=True)
class _Carry:
    """When a read may be taken over from the last sample of the same process: at most `max_age`
    seconds after it was fetched, `proof` among the stats read, and `fingerprint` of them unchanged."""

    max_age: float
    proof: tuple[str, ...]
    fingerprint: Callable[[Stats], Any]

# The LDS subscription's counters exist from its creation (at 0) and only with one.
_LDS_STAT = r"^listener_manager\.lds\.update_attempt$"
_LDS_NAMES = tuple(f"listener_manager.lds.{s}" for s in ("update_attempt", "update_success", "update_rejected"))


class Read(str, Enum):
    """An admin read a check depends on (`reads` in the catalog)."""

    READY = "/ready"
    SERVER_INFO = "/server_info"
    STATS = "/stats"
    CERTS = "/certs"
    LISTENER_STATE = "/config_dump"  # dynamic listeners' active version and error_state only
    CONFIG = "/config_dump?all"  # listeners, routes, clusters, bootstrap: a ConfigSnapshot (what the proxy serves)
    POD = "pod-status"  # Kubernetes pod status, known at discovery; no admin read


_CARRIED = {
    Read.SERVER_INFO: _Carry(SERVER_INFO_MAX_AGE_S, PROCESS_STATS, lambda _: None),
    # The whole dump (~100 KiB and up) is read again only when an xDS counter or a listener
    # count moved: an unchanged proxy serves what it served last sample.
    Read.CONFIG: _Carry(SERVER_INFO_MAX_AGE_S, (*PROCESS_STATS, *CONFIG_STATS), config_fingerprint),
    Read.CERTS: _Carry(CERTS_MAX_AGE_S, (*PROCESS_STATS, *CERTS_STATS), certs_fingerprint),
}


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
    """What one sample read from one target; `taken_at` on the caller's (monotonic) clock.

    `carried` names the reads taken over from an earlier sample of the same process,
    with the `taken_at` of the sample that really fetched them; `admin_url` is where
    the reads came from (a fact is only carried over from the same address).
    """

    target: str
    taken_at: float
    reads: Mapping[Read, Any] = field(default_factory=dict)
    carried: Mapping[Read, float] = field(default_factory=dict)
    admin_url: str | None = None

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
    previous: Observation | None = None,
) -> Observation:
    """Read what `reads` need from `target`; `previous` is this target's last observation, if any."""
    wanted = [r for r in dict.fromkeys(reads) if r is not Read.POD]
    patterns = set(stat_patterns)
    for read in wanted:
        if read in _CARRIED:
            patterns.update(_CARRIED[read].proof)
    if Read.LISTENER_STATE in wanted:
        patterns.add(_LDS_STAT)
    if patterns and Read.STATS not in wanted:
        wanted.append(Read.STATS)
    flt = stats_filter(patterns)

    fetched_at = {read: since for read in wanted if read in _CARRIED
                  and (since := _carry_candidate(previous, target, taken_at, read)) is not None}
    # Fetch /config_dump together with the rest when the last sample saw an LDS subscription
    # (every Istio sidecar, so no extra round trip); otherwise only once this sample's stats show one.
    listeners_now = Read.LISTENER_STATE in wanted and previous is not None and _has_lds(previous) is True
    deferred = {*fetched_at, *((Read.LISTENER_STATE,) if Read.LISTENER_STATE in wanted and not listeners_now else ())}
    first = [r for r in wanted if r not in deferred]
    values: dict[Read, Any] = dict(zip(first, await asyncio.gather(*(_read(client, target, r, flt) for r in first))))
    carried: dict[Read, float] = {}
    later: list[Read] = []
    stats = values.get(Read.STATS)
    for read, since in fetched_at.items():
        fingerprint = _CARRIED[read].fingerprint
        if (isinstance(stats, Stats) and previous is not None and same_process(stats, previous.stats)
                and fingerprint(stats) == fingerprint(previous.stats)):
            values[read] = previous.reads[read]
            carried[read] = since
        else:
            later.append(read)
    if Read.LISTENER_STATE in deferred:
        if isinstance(stats, Stats) and not _lds_in(stats):
            values[Read.LISTENER_STATE] = []  # no LDS subscription: no dynamic listener (Envoy answers {})
        else:
            later.append(Read.LISTENER_STATE)
    if later:
        values.update(zip(later, await asyncio.gather(*(_read(client, target, r, flt) for r in later))))
    if target.pod is not None:
        values[Read.POD] = target.pod
    return Observation(target=target.name, taken_at=taken_at, reads=values, carried=carried,
                       admin_url=target.admin_url)


def _carry_candidate(previous: Observation | None, target: Target, taken_at: float, read: Read) -> float | None:
    """When `previous` holds a `read` this sample may carry over: the time it was fetched."""
    if previous is None or previous.admin_url != target.admin_url:
        return None
    value = previous.reads.get(read)
    if value is None or isinstance(value, AdminError) or previous.stats_or_none() is None:
        return None
    since = previous.carried.get(read, previous.taken_at)
    return since if taken_at - since < carry_limit(target.name, _CARRIED[read].max_age) else None


def _has_lds(obs: Observation) -> bool | None:
    """Whether `obs`'s stats show an LDS subscription; None when they were not read."""
    stats = obs.stats_or_none()
    return None if stats is None else _lds_in(stats)


def _lds_in(stats: Stats) -> bool:
    return any(name in stats for name in _LDS_NAMES)


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


# What is kept of /server_info: ~120 KiB of JSON, 100 KiB of it the node's list of compiled-in
# extensions, which no check reads and which a gate would otherwise hold for every proxy.
_SERVER_INFO_KEPT = ("version", "state", "uptime_current_epoch", "uptime_all_epochs", "hot_restart_version")
_NODE_DROPPED = frozenset({"extensions"})
_OPTIONS_KEPT = ("log_level", "component_log_level")


async def _server_info(client: AdminClient, base: str, _: str) -> Mapping[str, Any]:
    response = await client.get(base, "/server_info")
    with gc_paused():  # thousands of small dicts, all garbage but a few
        data = response.json()
        if not isinstance(data, Mapping) or not isinstance(data.get("version"), str):
            raise AdminDecodeError(f"{base}/server_info has no 'version' string", url=base)
        kept: dict[str, Any] = {k: data[k] for k in _SERVER_INFO_KEPT if k in data}
        options = data.get("command_line_options")
        if isinstance(options, Mapping):  # the log levels the proxy started with (proxy-profile)
            kept["command_line_options"] = {k: options[k] for k in _OPTIONS_KEPT if k in options}
        node = data.get("node")
        if isinstance(node, Mapping):
            kept["node"] = {k: v for k, v in node.items() if k not in _NODE_DROPPED}
        elif "node" in data:
            kept["node"] = node
        del data
    return kept


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
    return [c for c in _configs_of(data, base) if isinstance(c, Mapping)]


# What config-parity and proxy-profile need, one config type per request: Envoy (1.39.3 and
# 1.40.0 alike) refuses a mask that spans two types ("could not be successfully applied to any
# configs") or one whose path crosses a repeated field (HTTP 400), and answers `resource=` with
# the bare entries (or `{}` when there are none). Left out: the bootstrap's node (on localmesh's
# proxies ~75 KiB of the ~110 KiB dump: the compiled-in extensions), every cluster field but the
# name and keepalive, secrets and scoped routes. Listeners and routes are read whole: the access
# loggers and route names sit inside `typed_config`, which a mask cannot reach.
_CLUSTER_MASK = "cluster.name,cluster.upstream_connection_options"
_WHOLE_TYPES = ("bootstrap.dynamic_resources,bootstrap.overload_manager", "static_listeners,dynamic_listeners",
                "dynamic_route_configs")
_CLUSTER_KINDS = ("static_clusters", "dynamic_active_clusters")
_CLUSTERS_DUMP = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"


async def _scoped_config_dump(client: AdminClient, base: str) -> dict[str, Any]:
    """The parts of `/config_dump` the config checks read, in the shape of the whole dump.

    Read one after another on one connection: they are taken on a proxy's first sample and after a
    config change only, and a port-forward opens an API-server stream per connection."""
    configs: list[Any] = []
    for mask in _WHOLE_TYPES:
        data = await client.get_json(base, "/config_dump", {"mask": mask})
        configs += _configs_of(data, base)
    clusters: dict[str, Any] = {"@type": _CLUSTERS_DUMP}
    for kind in _CLUSTER_KINDS:
        data = await client.get_json(base, "/config_dump", {"resource": kind, "mask": _CLUSTER_MASK})
        clusters[kind] = _configs_of(data, base)
    return {"configs": [*configs, clusters]}


def _configs_of(data: Any, base: str) -> list[Any]:
    configs = data.get("configs", []) if isinstance(data, Mapping) else None
    if not isinstance(configs, list):
        raise AdminDecodeError(f"{base}/config_dump has no 'configs' list", url=base)
    return configs


async def _config(client: AdminClient, base: str, _: str) -> ConfigSnapshot:
    data = await _scoped_config_dump(client, base)
    with gc_paused():
        try:
            return parse_config_dump(data)
        except ValueError as exc:
            raise AdminDecodeError(f"{base}/config_dump: {exc}", url=base) from exc


_FETCHERS = {
    Read.READY: _ready,
    Read.SERVER_INFO: _server_info,
    Read.STATS: _stats,
    Read.CERTS: _certs,
    Read.LISTENER_STATE: _listener_state,
    Read.CONFIG: _config,
}
