"""`meshlift inspect`: what one proxy really runs, read GET-only through the checks' admin client.

`await inspect_proxy(client, target)` reads /server_info, /config_dump?include_eds,
/clusters?format=json, /certs and a filtered /stats of one proxy and returns a
`ProxyInspection`: server and Istio version, control-plane identity and
connection, per xDS subscription the version accepted and any rejection,
listeners with their state, route configs with virtual hosts and routes,
clusters with endpoint health, certificates with their exact expiry, overload
actions, log levels, and the normalised inventory `inspect_diff` compares.

A read that fails is recorded in `errors` (the rest is still shown). Secrets
never leave this module: every section, and the optional redacted dump, passes
through `config_dump.redact`. Log levels come from /server_info's command line:
Envoy's /logging answers only POST (it changes levels), which the client never sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import AdminError
from .client import AdminClient
from .config_dump import (
    ConfigSnapshot,
    bootstrap,
    chain_id,
    clusters,
    hcms,
    listener_entries,
    parse_config_dump,
    rds_route_configs,
    redact,
)
from .rules_config import subscriptions
from .rules_proxy import proxy_versions
from .stats import parse_json_stats
from .target import Target

__all__ = ["INSPECT_SCHEMA", "ProxyInspection", "inspect_proxy", "inspect_targets"]

INSPECT_SCHEMA = "meshlift.inspect/v1"
_STATS_FILTER = (r"(^control_plane\.|\.(update_rejected|update_failure|update_success|version_text)$"
                 r"|^overload\.|^listener_manager\.total_listeners_)")


@dataclass(frozen=True)
class ProxyInspection:
    """One proxy, summarised; `to_dict()` is the JSON of schema meshlift.inspect/v1 (redacted)."""

    name: str
    admin_url: str
    role: str
    server: dict[str, Any] = field(default_factory=dict)
    control_plane: dict[str, Any] = field(default_factory=dict)
    xds: list[dict[str, Any]] = field(default_factory=list)
    listeners: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    certificates: list[dict[str, Any]] = field(default_factory=list)
    overload: list[dict[str, Any]] = field(default_factory=list)
    log_levels: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    config_dump: Any = None  # the redacted dump, only when asked for

    @property
    def snapshot_inventory(self) -> dict[str, frozenset[str]]:
        return {kind: frozenset(keys) for kind, keys in self.inventory.items()}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name, "admin_url": self.admin_url, "role": self.role, "server": self.server,
            "control_plane": self.control_plane, "xds": self.xds, "listeners": self.listeners,
            "routes": self.routes, "clusters": self.clusters, "certificates": self.certificates,
            "overload": self.overload, "log_levels": self.log_levels, "inventory": self.inventory,
            "errors": self.errors,
        }
        if self.config_dump is not None:
            out["config_dump"] = self.config_dump
        return redact(out)


async def inspect_targets(client: AdminClient, targets: list[Target], *, with_dump: bool = False) -> list[ProxyInspection]:
    return list(await asyncio.gather(*(inspect_proxy(client, t, with_dump=with_dump) for t in targets)))


async def inspect_proxy(client: AdminClient, target: Target, *, with_dump: bool = False) -> ProxyInspection:
    base = target.admin_url
    reads = {
        "server_info": client.get_json(base, "/server_info"),
        "config_dump": client.get_json(base, "/config_dump", {"include_eds": ""}),
        "clusters": client.get_json(base, "/clusters", {"format": "json"}),
        "certs": client.get_json(base, "/certs"),
        "stats": client.get_json(base, "/stats", {"format": "json", "filter": _STATS_FILTER}),
    }
    results = await asyncio.gather(*reads.values(), return_exceptions=True)
    got: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in zip(reads, results):
        if isinstance(value, AdminError):
            errors[key] = str(value)
        elif isinstance(value, BaseException):
            raise value
        else:
            got[key] = value
    return _summarise(target, got, errors, with_dump=with_dump)


def _summarise(target: Target, got: Mapping[str, Any], errors: dict[str, str], *, with_dump: bool) -> ProxyInspection:
    sections: dict[str, Any] = {}

    def section(name: str, source: str, build: Any) -> None:
        if source not in got:
            return
        try:
            sections[name] = build(got[source])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # an answer of an unexpected shape
            errors[f"{source} ({name})"] = f"could not interpret: {type(exc).__name__}: {exc}"

    section("server", "server_info", _server)
    section("log_levels", "server_info", _log_levels)
    section("snapshot", "config_dump", parse_config_dump)
    section("listeners", "config_dump", _listeners)
    section("routes", "config_dump", _routes)
    section("clusters", "clusters", lambda data: _clusters(data, got.get("config_dump")))
    section("certificates", "certs", _certificates)
    section("stats", "stats", parse_json_stats)
    stats = sections.get("stats")
    snapshot: ConfigSnapshot | None = sections.get("snapshot")
    return ProxyInspection(
        name=target.name, admin_url=target.admin_url, role=target.role,
        server=sections.get("server", {}),
        control_plane=_control_plane(stats, got.get("config_dump"), snapshot),
        xds=_xds(stats, snapshot),
        listeners=sections.get("listeners", []),
        routes=sections.get("routes", []),
        clusters=sections.get("clusters", []),
        certificates=sections.get("certificates", []),
        overload=_overload(stats, snapshot),
        log_levels=sections.get("log_levels", {}),
        inventory={kind: sorted(keys) for kind, keys in snapshot.inventory.items()} if snapshot else {},
        errors=errors,
        config_dump=redact(got["config_dump"]) if with_dump and "config_dump" in got else None,
    )


def _server(info: Mapping[str, Any]) -> dict[str, Any]:
    envoy, istio = proxy_versions(info)
    node = info.get("node") or {}
    metadata = node.get("metadata") or {}
    return {
        "envoy_version": envoy, "istio_version": istio, "state": info.get("state"),
        "uptime_s": int(info.get("uptime_current_epoch", "0s").rstrip("s") or 0),
        "node_id": node.get("id"), "node_cluster": node.get("cluster"),
        "namespace": metadata.get("NAMESPACE"), "workload": metadata.get("WORKLOAD_NAME"),
    }


def _log_levels(info: Mapping[str, Any]) -> dict[str, Any]:
    options = info.get("command_line_options") or {}
    components = [p for p in str(options.get("component_log_level", "")).split(",") if p]
    return {"level": options.get("log_level"), "components": components, "source": "command line (/server_info)"}


def _control_plane(stats: Any, dump: Any, snapshot: ConfigSnapshot | None) -> dict[str, Any]:
    out: dict[str, Any] = {"identity": None, "connected": None, "xds_cluster": None, "addresses": []}
    if stats is not None:
        identifier = stats.text("control_plane.identifier")
        out["identity"] = identifier or None
        if "control_plane.connected_state" in stats:
            out["connected"] = stats.number("control_plane.connected_state") >= 1
    if snapshot is not None and snapshot.xds_cluster and isinstance(dump, Mapping):
        out["xds_cluster"] = snapshot.xds_cluster
        for cluster in clusters(dump):
            if cluster.get("name") == snapshot.xds_cluster:
                out["addresses"] = _endpoint_addresses(cluster.get("load_assignment") or {})
    if isinstance(dump, Mapping) and out["xds_cluster"] is None:
        dynamic = bootstrap(dump).get("dynamic_resources") or {}
        paths = sorted({(dynamic.get(k) or {}).get("path_config_source", {}).get("path") or ""
                        for k in ("lds_config", "cds_config")} - {""})
        if paths:
            out["identity"] = out["identity"] or "filesystem xDS"
            out["addresses"] = paths
    return out


def _endpoint_addresses(assignment: Mapping[str, Any]) -> list[str]:
    found = []
    for group in assignment.get("endpoints") or []:
        for lb in group.get("lb_endpoints") or []:
            address = ((lb.get("endpoint") or {}).get("address") or {})
            socket, pipe = address.get("socket_address"), address.get("pipe")
            if socket:
                found.append(f"{socket.get('address')}:{socket.get('port_value')}")
            elif pipe:
                found.append(f"unix:{pipe.get('path')}")
    return found


def _xds(stats: Any, snapshot: ConfigSnapshot | None) -> list[dict[str, Any]]:
    if stats is None:
        return []
    rejected_listeners = {item.name: item.error for item in snapshot.failed} if snapshot else {}
    out = []
    for sub in subscriptions(stats).values():
        if not (sub.success or sub.rejected or sub.failure or sub.version):
            continue  # a static cluster's unused update counters
        entry = {"type": sub.label, "version": sub.version, "accepted": int(sub.success),
                 "rejected": int(sub.rejected), "failed": int(sub.failure), "last_error": None}
        if sub.label == "LDS" and rejected_listeners:
            name, error = next(iter(rejected_listeners.items()))
            entry["last_error"] = f"listener {name!r}: {error}"
        out.append(entry)
    return out


def _listeners(dump: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for listener, state in listener_entries(dump):
        chains = [chain_id(c) for c in (listener or {}).get("filter_chains") or []]
        out.append({"name": state.name, "state": state.state, "address": state.address, "version": state.version,
                    "filter_chains": chains, "error": state.error})
    return out


def _routes(dump: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(config: Mapping[str, Any], source: str, version: str | None) -> None:
        out.append({"route_config": config.get("name"), "source": source, "version": version, "virtual_hosts": [
            {"name": vh.get("name"), "domains": list(vh.get("domains") or []),
             "routes": [r.get("name") or _match_text(r.get("match") or {}) for r in vh.get("routes") or []]}
            for vh in config.get("virtual_hosts") or []]})

    for listener, state in listener_entries(dump):
        if listener is None or state.state != "active":
            continue
        for _, hcm in hcms(listener):
            if isinstance(hcm.get("route_config"), Mapping):  # RDS ones are listed below
                add(hcm["route_config"], f"inline in listener {state.name}", state.version)
    for config, version in rds_route_configs(dump):
        add(config, "RDS", version)
    return out


def _match_text(match: Mapping[str, Any]) -> str:
    for key in ("prefix", "path", "path_separated_prefix"):
        if key in match:
            return f"{key} {match[key]}"
    if "safe_regex" in match:
        return f"regex {match['safe_regex'].get('regex')}"
    return str(dict(match))


def _clusters(data: Mapping[str, Any], dump: Any) -> list[dict[str, Any]]:
    types = {c.get("name"): c.get("type") or ("EDS" if c.get("eds_cluster_config") is not None else None)
             for c in clusters(dump)} if isinstance(dump, Mapping) else {}
    out = []
    for status in data.get("cluster_statuses") or []:
        endpoints = []
        for host in status.get("host_statuses") or []:
            socket = (host.get("address") or {}).get("socket_address") or {}
            health = dict(host.get("health_status") or {})
            flags = sorted(k for k, v in health.items() if v is True)
            endpoints.append({"address": f"{socket.get('address')}:{socket.get('port_value')}",
                              "health": health.get("eds_health_status", "UNKNOWN"), "failed": flags})
        healthy = sum(1 for e in endpoints if e["health"] == "HEALTHY" and not e["failed"])
        out.append({"name": status.get("name"), "type": types.get(status.get("name")),
                    "endpoints": endpoints, "healthy": healthy})
    return out


def _certificates(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    seen: set[tuple[str, Any]] = set()  # a listener update keeps the old TLS context while it drains
    for entry in data.get("certificates") or []:
        for kind in ("cert_chain", "ca_cert"):
            for cert in entry.get(kind) or []:
                if (kind, cert.get("serial_number")) in seen:
                    continue
                seen.add((kind, cert.get("serial_number")))
                names = [next(iter(san.values())) for san in cert.get("subject_alt_names") or [] if san]
                out.append({"kind": "chain" if kind == "cert_chain" else "ca", "path": cert.get("path"),
                            "serial": cert.get("serial_number"), "subject_alt_names": names,
                            "valid_from": cert.get("valid_from"), "expires_at": cert.get("expiration_time"),
                            "days_left": int(cert.get("days_until_expiration") or 0)})
    return out


def _overload(stats: Any, snapshot: ConfigSnapshot | None) -> list[dict[str, Any]]:
    actions = dict(snapshot.overload_actions) if snapshot else {}
    names = set(actions)
    if stats is not None:
        names |= {n[len("overload."):-len(".active")] for n in stats if n.startswith("overload.") and n.endswith(".active")}
    out = []
    for name in sorted(names):
        active = stats.number(f"overload.{name}.active") >= 1 if stats is not None else None
        scale = stats.number(f"overload.{name}.scale_percent") if stats is not None else None
        out.append({"action": name, "active": active, "scale_percent": scale, "triggers": actions.get(name, {})})
    return out
