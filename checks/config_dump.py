"""What a proxy serves, read from one `/config_dump?include_eds`: inventory, listener states, profile facts.

`parse_config_dump(raw)` turns Envoy's ~100 KiB-several MiB dump into a small
`ConfigSnapshot` (the raw dump is not kept):

- `inventory`: per kind (`listener`, `filter-chain`, `route-config`, `virtual-host`,
  `route`, `cluster`) the keys the proxy serves, with names that legitimately carry
  a revision or version normalised (`outbound|15012||istiod-1-30-3.istio-system...`
  becomes `outbound|15012||istiod-<rev>.istio-system...`), so a canary and its
  baseline compare like for like;
- `listeners`: each listener's state (`active`, `warming`, `draining`, `failed`);
- the facts the proxy-profile check reads: access loggers per HTTP connection
  manager, overload manager actions, keepalive of the xDS and upstream clusters.

`redact(value)` removes secrets (private keys, passwords, tokens, credential
headers) from any part of a dump before it is shown: Envoy itself redacts inline
secrets of SDS, not headers or tokens in other resources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConfigSnapshot", "ListenerState", "HcmLogging", "parse_config_dump", "normalise", "redact",
           "iter_configs", "REDACTED"]

REDACTED = "[redacted]"
_HCM = "envoy.filters.network.http_connection_manager"
_HCM_TYPE_SUFFIX = ".HttpConnectionManager"
# A revision (1-30-3) or version (1.30.3) inside a name, not part of a longer number or address.
_REVISION = re.compile(r"(?<!\d)\d+-\d+-\d+(?!-?\d)")
_VERSION = re.compile(r"(?<![\d.])\d+\.\d+\.\d+(?!\d|\.\d)")
_SECRET_KEYS = frozenset({
    "private_key", "password", "pkcs12", "session_ticket_keys", "hmac_secret", "generic_secret",
    "token", "access_token", "client_secret", "api_key", "secret_access_key", "oauth_token", "bearer_token",
})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
_PRIVATE_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def normalise(name: str) -> str:
    """`name` with revision and version numbers replaced by `<rev>` / `<ver>`."""
    return _VERSION.sub("<ver>", _REVISION.sub("<rev>", name))


def redact(value: Any, *, key: str = "") -> Any:
    """A copy of `value` with secrets replaced by "[redacted]" (paths of key files are kept)."""
    if isinstance(value, Mapping):
        if key.lower() in _SECRET_KEYS:
            return {k: (v if k == "filename" else REDACTED) for k, v in value.items()}
        header = str(value.get("key", "")).lower()
        out = {k: redact(v, key=k) for k, v in value.items()}
        if header in _SECRET_HEADERS and "value" in out:
            out["value"] = REDACTED
        return out
    if isinstance(value, list):
        return [redact(v, key=key) for v in value]
    if isinstance(value, str):
        if key.lower() in _SECRET_KEYS or _PRIVATE_PEM.search(value):
            return REDACTED
    return value


@dataclass(frozen=True)
class ListenerState:
    name: str
    state: str  # active | warming | draining | failed
    version: str | None = None
    address: str | None = None
    error: str | None = None
    static: bool = False  # from the bootstrap, not from the control plane


@dataclass(frozen=True)
class HcmLogging:
    """The access loggers of one HTTP connection manager: (logger name, path, format text)."""

    listener: str
    chain: str
    loggers: tuple[tuple[str, str | None, str], ...]


@dataclass(frozen=True)
class ConfigSnapshot:
    inventory: Mapping[str, frozenset[str]]
    listeners: tuple[ListenerState, ...]
    hcm_logging: tuple[HcmLogging, ...] = ()
    overload_monitors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    overload_actions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # action -> monitor -> value
    xds_cluster: str | None = None
    xds_keepalive: Mapping[str, Any] | None = None
    cluster_keepalive: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)  # dynamic clusters

    @property
    def warming(self) -> list[ListenerState]:
        return [listener for listener in self.listeners if listener.state == "warming"]

    @property
    def failed(self) -> list[ListenerState]:
        return [listener for listener in self.listeners if listener.state == "failed"]


def iter_configs(raw: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    """The dump sections whose @type ends with `kind` (e.g. "ListenersConfigDump")."""
    for section in raw.get("configs", []) if isinstance(raw, Mapping) else []:
        if isinstance(section, Mapping) and str(section.get("@type", "")).endswith("." + kind):
            yield section


def _address(listener: Mapping[str, Any]) -> str | None:
    socket = (listener.get("address") or {}).get("socket_address") or {}
    return f"{socket.get('address')}:{socket.get('port_value')}" if socket else None


def chain_id(chain: Mapping[str, Any]) -> str:
    """A filter chain's name, or its match criteria when it has none (`default`: matches all)."""
    if chain.get("name"):
        return str(chain["name"])
    match = chain.get("filter_chain_match")
    return "match " + json.dumps(match, sort_keys=True, separators=(",", ":")) if match else "default"


def _route_id(route: Mapping[str, Any]) -> str:
    if route.get("name"):
        return str(route["name"])
    return "match " + json.dumps(route.get("match", {}), sort_keys=True, separators=(",", ":"))


def hcms(listener: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(chain id, HCM typed_config) of every HTTP connection manager of a listener."""
    chains = list(listener.get("filter_chains") or [])
    default = listener.get("default_filter_chain")
    pairs = [(chain_id(c), c) for c in chains] + ([("default_filter_chain", default)] if default else [])
    for cid, chain in pairs:
        for flt in chain.get("filters") or []:
            typed = flt.get("typed_config") or {}
            if flt.get("name") == _HCM or str(typed.get("@type", "")).endswith(_HCM_TYPE_SUFFIX):
                yield cid, typed


def listener_entries(raw: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any] | None, ListenerState]]:
    """(listener config or None, state) of every static and dynamic listener."""
    for section in iter_configs(raw, "ListenersConfigDump"):
        for entry in section.get("static_listeners") or []:
            listener = entry.get("listener") or {}
            yield listener, ListenerState(str(listener.get("name", "")), "active", None, _address(listener), static=True)
        for entry in section.get("dynamic_listeners") or []:
            name = str(entry.get("name", ""))
            error = entry.get("error_state")
            reason = None
            if isinstance(error, Mapping):
                lines = str(error.get("details", "")).strip().splitlines()
                reason = lines[-1][:200] if lines else "update rejected"
            for state in ("active", "warming", "draining"):
                held = entry.get(f"{state}_state")
                if isinstance(held, Mapping):
                    listener = held.get("listener") or {}
                    yield listener, ListenerState(name, state, held.get("version_info"), _address(listener))
            if reason is not None:
                yield None, ListenerState(name, "failed", None, None, reason)


def rds_route_configs(raw: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """(route config, version) of every RDS route config. The dump's `static_route_configs` are
    the listeners' inline ones, old listeners' included while they drain: those are read from
    the active listeners instead."""
    for section in iter_configs(raw, "RoutesConfigDump"):
        for entry in section.get("dynamic_route_configs") or []:
            yield entry.get("route_config") or {}, entry.get("version_info")


def clusters(raw: Mapping[str, Any], *, dynamic_only: bool = False) -> Iterator[Mapping[str, Any]]:
    for section in iter_configs(raw, "ClustersConfigDump"):
        entries = [] if dynamic_only else list(section.get("static_clusters") or [])
        entries += list(section.get("dynamic_active_clusters") or [])
        for entry in entries:
            cluster = entry.get("cluster")
            if isinstance(cluster, Mapping):
                yield cluster


def bootstrap(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((s.get("bootstrap") or {} for s in iter_configs(raw, "BootstrapConfigDump")), {})


def parse_config_dump(raw: Mapping[str, Any]) -> ConfigSnapshot:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("configs", []), list):
        raise ValueError("no 'configs' list in /config_dump")
    inventory: dict[str, set[str]] = {k: set() for k in
                                      ("listener", "filter-chain", "route-config", "virtual-host", "route", "cluster")}
    states: list[ListenerState] = []
    logging: list[HcmLogging] = []

    def add_routes(prefix: str, config: Mapping[str, Any]) -> None:
        inventory["route-config"].add(prefix)
        for vhost in config.get("virtual_hosts") or []:
            vh = f"{prefix}/{normalise(str(vhost.get('name', '')))}"
            inventory["virtual-host"].add(vh)
            for route in vhost.get("routes") or []:
                inventory["route"].add(f"{vh}/{normalise(_route_id(route))}")

    for listener, state in listener_entries(raw):
        states.append(state)
        if listener is None or state.state not in ("active",):
            continue  # what a proxy serves is its active config
        name = normalise(state.name)
        inventory["listener"].add(name)
        for chain in [*(listener.get("filter_chains") or []), *([listener["default_filter_chain"]]
                                                                 if listener.get("default_filter_chain") else [])]:
            inventory["filter-chain"].add(f"{name}/{normalise(chain_id(chain))}")
        for cid, hcm in hcms(listener):
            if isinstance(hcm.get("route_config"), Mapping):  # inline: keyed by its listener
                add_routes(f"{name}/{normalise(str(hcm['route_config'].get('name', '')))}", hcm["route_config"])
            if not state.static:  # bootstrap listeners (Istio's 15090 stats, 15021 health) log nothing by design
                logging.append(HcmLogging(state.name, cid, tuple(_loggers(hcm))))
    for config, _ in rds_route_configs(raw):
        add_routes(normalise(str(config.get("name", ""))), config)

    boot = bootstrap(raw)
    xds_name = _xds_cluster_name(boot)
    keepalive: dict[str, Mapping[str, Any] | None] = {}
    xds_keepalive = None
    for cluster in clusters(raw):
        name = str(cluster.get("name", ""))
        inventory["cluster"].add(normalise(name))
        options = (cluster.get("upstream_connection_options") or {}).get("tcp_keepalive")
        if name == xds_name:
            xds_keepalive = options if isinstance(options, Mapping) else None
    for cluster in clusters(raw, dynamic_only=True):
        options = (cluster.get("upstream_connection_options") or {}).get("tcp_keepalive")
        keepalive[str(cluster.get("name", ""))] = options if isinstance(options, Mapping) else None

    manager = boot.get("overload_manager") or {}
    monitors = {str(m.get("name")): dict(m.get("typed_config") or {}) for m in manager.get("resource_monitors") or []}
    actions: dict[str, dict[str, float]] = {}
    for action in manager.get("actions") or []:
        actions[str(action.get("name"))] = {
            str(t.get("name")): float((t.get("threshold") or {}).get("value", (t.get("scaled") or {})
                                                                      .get("saturation_threshold", 0)))
            for t in action.get("triggers") or []
        }
    return ConfigSnapshot(
        inventory={k: frozenset(v) for k, v in inventory.items()},
        listeners=tuple(states),
        hcm_logging=tuple(logging),
        overload_monitors=monitors,
        overload_actions=actions,
        xds_cluster=xds_name,
        xds_keepalive=xds_keepalive,
        cluster_keepalive=keepalive,
    )


def _xds_cluster_name(boot: Mapping[str, Any]) -> str | None:
    dynamic = boot.get("dynamic_resources") or {}
    for source in (dynamic.get("ads_config"), *(((dynamic.get(k) or {}).get("api_config_source"))
                                               for k in ("lds_config", "cds_config"))):
        for service in (source or {}).get("grpc_services") or []:
            name = (service.get("envoy_grpc") or {}).get("cluster_name")
            if name:
                return str(name)
    return None


def _loggers(hcm: Mapping[str, Any]) -> Iterator[tuple[str, str | None, str]]:
    for logger in hcm.get("access_log") or []:
        typed = logger.get("typed_config") or {}
        fmt = typed.get("log_format") or {}
        text = ((fmt.get("text_format_source") or {}).get("inline_string")
                or (json.dumps(fmt["json_format"]) if "json_format" in fmt else None)
                or typed.get("format") or "")
        yield str(logger.get("name", "")), typed.get("path"), str(text)
