"""Build Envoy configuration as plain JSON-able dicts.

One proxy = one bootstrap (admin, node, overload manager, optional ADS) whose
listeners (LDS), clusters (CDS) and server certificate (SDS) come from files
watched by Envoy (`path_config_source` + `watched_directory`): replacing a file
by atomic rename is this local mesh's "control-plane push".  Each resource type
lives in its own directory so a push of one type does not re-read the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ports import LOOPBACK

Json = dict[str, Any]

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
INJECTED_TYPE = (
    "type.googleapis.com/envoy.extensions.resource_monitors.injected_resource.v3"
    ".InjectedResourceConfig"
)
INJECTED_MONITOR = "envoy.resource_monitors.injected_resource"
HEAP_MONITOR = "envoy.resource_monitors.fixed_heap"
HEAP_TYPE = "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
FILE_LOG = "envoy.access_loggers.file"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
STOP_ACCEPTING = "envoy.overload_actions.stop_accepting_requests"
DISABLE_KEEPALIVE = "envoy.overload_actions.disable_http_keepalive"
XDS_CLUSTER = "xds_cluster"
ISTIO_XDS_CLUSTER = "xds-grpc"
# Istio appends this to every cluster's stat name (`alt_stat_name`, its StatPrefixDelimiter).
STAT_DELIMITER = ";"
# The stat name of a proxy's upstream cluster when its stats look like Istio's: an outbound service cluster.
ISTIO_UPSTREAM_STAT_NAME = "outbound|80||upstream.local.svc.cluster.local;"

# The stats_matcher pilot-agent 1.30.3 writes by default (pkg/bootstrap/config.go,
# tools/packaging/common/envoy_bootstrap.json; the default_golden.json of pkg/bootstrap/testdata).
ISTIO_DEFAULT_STATS_MATCHER: list[Json] = [
    {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "listener_manager"}, {"prefix": "server"},
    {"prefix": "cluster.xds-grpc"}, {"prefix": "wasm"}, {"suffix": "rbac.allowed"}, {"suffix": "rbac.denied"},
    {"suffix": "shadow_allowed"}, {"suffix": "shadow_denied"}, {"safe_regex": {"regex": r"vhost\..*\.route\..*"}},
    {"prefix": "component"}, {"prefix": "istio"},
]


def istio_stats_matcher(*, prefixes: tuple[str, ...] = (), regexps: tuple[str, ...] = ()) -> Json:
    """Istio's default stats matcher, widened as `proxyStatsMatcher` widens it."""
    patterns = list(ISTIO_DEFAULT_STATS_MATCHER)
    at = patterns.index({"prefix": "wasm"}) + 1
    patterns[at:at] = [{"prefix": p} for p in prefixes]
    at = patterns.index({"prefix": "component"})
    patterns[at:at] = [{"safe_regex": {"regex": r}} for r in regexps]
    return {"inclusion_list": {"patterns": patterns}}
SERVER_CERT = "server_cert"
ROOT_CERT = "ROOTCA"  # the SDS name Istio's agent serves the mesh root under


@dataclass(frozen=True, kw_only=True)
class OverloadThresholds:
    """Pressure at which each overload action turns on (injected_resource monitor)."""

    disable_keepalive: float = 0.92
    stop_accepting_requests: float = 0.97


@dataclass(frozen=True, kw_only=True)
class TcpKeepalive:
    """SO_KEEPALIVE probing of a connection: survives idle timeouts of cloud load balancers."""

    time_s: int = 300
    interval_s: int = 75
    probes: int = 9

    def to_json(self) -> Json:
        return {"keepalive_time": self.time_s, "keepalive_interval": self.interval_s,
                "keepalive_probes": self.probes}


@dataclass(frozen=True, kw_only=True)
class ProxyProfile:
    """Production settings one proxy runs with (what a stack's proxy profile renders to).

    `access_log_path` None: no access log. `heap_max_bytes` None: no heap-based
    overload actions. Keepalives None: the connection is left at the OS default.
    """

    access_log_path: str | None = None
    access_log_format: str = ""  # Envoy command operators; a text line, or JSON when access_log_json
    access_log_json: bool = False
    heap_max_bytes: int | None = None
    heap_disable_keepalive: float = 0.95
    heap_stop_accepting_requests: float = 0.99
    control_plane_keepalive: TcpKeepalive | None = None
    upstream_keepalive: TcpKeepalive | None = None
    log_level: str = "info"
    component_log_level: str = ""


@dataclass(frozen=True)
class Layout:
    """Where one proxy's files live inside its work directory."""

    root: Path

    @property
    def bootstrap(self) -> Path:
        return self.root / "bootstrap.json"

    @property
    def log(self) -> Path:
        return self.root / "envoy.log"

    @property
    def lds(self) -> Path:
        return self.root / "xds" / "lds" / "lds.json"

    @property
    def cds(self) -> Path:
        return self.root / "xds" / "cds" / "cds.json"

    @property
    def sds(self) -> Path:
        return self.root / "xds" / "sds" / "sds.json"

    @property
    def sds_root(self) -> Path:
        """The `ROOTCA` secret: filesystem SDS wants one secret per subscribed file."""
        return self.root / "xds" / "sds-root" / "rootca.json"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def pressure(self) -> Path:
        return self.root / "overload" / "pressure"

    def create(self) -> Layout:
        for path in (self.lds, self.cds, self.sds, self.sds_root, self.pressure):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.certs.mkdir(parents=True, exist_ok=True)
        return self


def socket_address(port: int) -> Json:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def file_source(path: Path) -> Json:
    """A ConfigSource reading `path`, reloaded whenever a file is renamed into its directory."""
    return {
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
        "resource_api_version": "V3",
    }


ROUTE_CONFIG = "local_route"
VIRTUAL_HOST = "all"
STATUS_ROUTE = "status"  # /status/<code>: the upstream answers <code>
DEFAULT_ROUTE = "default"


def routes(cluster: str) -> list[Json]:
    """The routes of the one virtual host; `status` first, as the more specific prefix."""
    return [
        {"name": STATUS_ROUTE, "match": {"prefix": "/status/"}, "route": {"cluster": cluster}},
        {"name": DEFAULT_ROUTE, "match": {"prefix": "/"}, "route": {"cluster": cluster}},
    ]


def access_log(profile: ProxyProfile) -> list[Json]:
    """The HCM's access log of `profile` (none without a path)."""
    if profile.access_log_path is None:
        return []
    if profile.access_log_json:
        import json

        log_format: Json = {"json_format": json.loads(profile.access_log_format)}
    else:
        line = profile.access_log_format if profile.access_log_format.endswith("\n") else profile.access_log_format + "\n"
        log_format = {"text_format_source": {"inline_string": line}}
    return [{"name": FILE_LOG, "typed_config": {"@type": FILE_LOG_TYPE, "path": profile.access_log_path,
                                                 "log_format": log_format}}]


def http_connection_manager(*, stat_prefix: str, cluster: str, profile: ProxyProfile | None = None,
                            route_names: tuple[str, ...] | None = None) -> Json:
    """An HCM with an inline route config; `route_names` keeps only those routes."""
    kept = [r for r in routes(cluster) if route_names is None or r["name"] in route_names]
    typed: Json = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "route_config": {
            "name": ROUTE_CONFIG,
            "virtual_hosts": [{"name": VIRTUAL_HOST, "domains": ["*"], "routes": kept}],
        },
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": ROUTER_TYPE}}],
    }
    if profile is not None and profile.access_log_path is not None:
        typed["access_log"] = access_log(profile)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": typed}


def http_listener(*, name: str, port: int, cluster: str, stat_prefix: str = "ingress_http",
                  profile: ProxyProfile | None = None, route_names: tuple[str, ...] | None = None) -> Json:
    """A plain HTTP listener on 127.0.0.1:`port` routing everything to `cluster`."""
    hcm = http_connection_manager(stat_prefix=stat_prefix, cluster=cluster, profile=profile,
                                  route_names=route_names)
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": socket_address(port),
        "filter_chains": [{"filters": [hcm]}],
    }


def tls_listener(*, name: str, port: int, cluster: str, sds_path: Path, profile: ProxyProfile | None = None,
                 route_names: tuple[str, ...] | None = None, root_path: Path | None = None) -> Json:
    """An HTTPS listener whose certificate is the SDS secret `server_cert` read from `sds_path`.

    With `root_path`, it also trusts the SDS secret `ROOTCA` read from there for client certificates
    (requested, not required), as a sidecar's inbound listener does: /certs then
    lists that root as `ca_cert`.
    """
    listener = http_listener(name=name, port=port, cluster=cluster, stat_prefix="ingress_https",
                             profile=profile, route_names=route_names)
    listener["filter_chains"][0]["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPE,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [
                    {"name": SERVER_CERT, "sds_config": file_source(sds_path)}
                ],
                **({"validation_context_sds_secret_config": {"name": ROOT_CERT, "sds_config": file_source(root_path)}}
                   if root_path is not None else {}),
            },
        },
    }
    return listener


def server_secret(*, cert_file: Path, key_file: Path) -> Json:
    """The SDS secret `server_cert` pointing at PEM files."""
    return {
        "@type": SECRET_TYPE,
        "name": SERVER_CERT,
        "tls_certificate": {
            "certificate_chain": {"filename": str(cert_file)},
            "private_key": {"filename": str(key_file)},
        },
    }


def root_secret(*, ca_file: Path) -> Json:
    """The SDS secret `ROOTCA`: a validation context trusting the PEM root in `ca_file`."""
    return {"@type": SECRET_TYPE, "name": ROOT_CERT,
            "validation_context": {"trusted_ca": {"filename": str(ca_file)}}}


def static_cluster(*, name: str, port: int, outlier_detection: bool = False,
                   keepalive: TcpKeepalive | None = None, alt_stat_name: str | None = None) -> Json:
    """A STATIC cluster with one endpoint at 127.0.0.1:`port` (stats under `alt_stat_name` if given)."""
    cluster: Json = {
        "@type": CLUSTER_TYPE,
        "name": name,
        **({"alt_stat_name": alt_stat_name} if alt_stat_name else {}),
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(port)}}]}],
        },
    }
    if outlier_detection:
        # Eject fast so a test sees `ejections_active` after a handful of 5xx.
        cluster["outlier_detection"] = {
            "consecutive_5xx": 3,
            "interval": "1s",
            "base_ejection_time": "30s",
            "max_ejection_percent": 100,
        }
    if keepalive is not None:
        cluster["upstream_connection_options"] = {"tcp_keepalive": keepalive.to_json()}
    return cluster


def _untyped(resource: Json) -> Json:
    """A resource as the bootstrap embeds it: without the Any `@type` of xDS files."""
    return {k: v for k, v in resource.items() if k != "@type"}


def discovery_response(version: str, resources: list[Json]) -> Json:
    """The file format of filesystem xDS: a DiscoveryResponse in JSON."""
    return {"version_info": version, "resources": resources}


def overload_manager(pressure_file: Path, thresholds: OverloadThresholds | None,
                     profile: ProxyProfile | None = None) -> Json | None:
    """Both actions, triggered by the injected pressure file (faults) and/or the heap (profile)."""
    monitors: list[Json] = []
    triggers: dict[str, list[Json]] = {DISABLE_KEEPALIVE: [], STOP_ACCEPTING: []}
    if thresholds is not None:
        monitors.append({"name": INJECTED_MONITOR,
                         "typed_config": {"@type": INJECTED_TYPE, "filename": str(pressure_file)}})
        triggers[DISABLE_KEEPALIVE].append(_trigger(INJECTED_MONITOR, thresholds.disable_keepalive))
        triggers[STOP_ACCEPTING].append(_trigger(INJECTED_MONITOR, thresholds.stop_accepting_requests))
    if profile is not None and profile.heap_max_bytes is not None:
        monitors.append({"name": HEAP_MONITOR,
                         "typed_config": {"@type": HEAP_TYPE, "max_heap_size_bytes": profile.heap_max_bytes}})
        triggers[DISABLE_KEEPALIVE].append(_trigger(HEAP_MONITOR, profile.heap_disable_keepalive))
        triggers[STOP_ACCEPTING].append(_trigger(HEAP_MONITOR, profile.heap_stop_accepting_requests))
    if not monitors:
        return None
    return {
        "refresh_interval": "0.1s",
        "resource_monitors": monitors,
        "actions": [{"name": name, "triggers": found} for name, found in triggers.items()],
    }


def _trigger(monitor: str, value: float) -> Json:
    return {"name": monitor, "threshold": {"value": value}}


def bootstrap(
    *,
    layout: Layout,
    node_id: str,
    node_cluster: str,
    admin_port: int,
    stats_flush_interval_s: float = 5.0,
    overload: OverloadThresholds | None = None,
    profile: ProxyProfile | None = None,
    ads_port: int | None = None,
    static_listeners: list[Json] | None = None,
    static_clusters: list[Json] | None = None,
    node_metadata: dict[str, str] | None = None,
    istio_stats: Json | None = None,
) -> Json:
    """The bootstrap of one proxy.

    Listeners and clusters come from the LDS/CDS files unless `static_*` are
    given: then they are baked into the bootstrap (no file watches, which
    matters for large fleets: each watch is an inotify instance).

    With `ads_port`, an ADS gRPC source at 127.0.0.1:`ads_port` is added.  No
    resource is subscribed over it, yet Envoy opens the stream at start-up and
    keeps reconnecting, so `control_plane.connected_state` tells whether the
    control plane is reachable (a closed port means "unreachable").

    With `istio_stats` (a stats matcher, see `istio_stats_matcher`), the proxy's
    stats look like an Istio sidecar's: that matcher, the ADS cluster named
    `xds-grpc` with stats under `xds-grpc;`, and one subscription over ADS (a
    runtime layer whose first fetch does not hold start-up) so that a stream the
    control plane closes counts an `update_failure`, as Istio's LDS/CDS do.
    """
    node: Json = {"id": node_id, "cluster": node_cluster}
    if node_metadata:
        # What istio-agent puts there (e.g. ISTIO_VERSION), for a proxy standing in for a pod's sidecar.
        node["metadata"] = dict(node_metadata)
    config: Json = {
        "node": node,
        "admin": {"address": socket_address(admin_port)},
        "stats_flush_interval": f"{stats_flush_interval_s}s",
        "dynamic_resources": {},
        "static_resources": {"listeners": [], "clusters": []},
    }
    if static_listeners is None:
        config["dynamic_resources"]["lds_config"] = file_source(layout.lds)
    else:
        config["static_resources"]["listeners"] = [_untyped(r) for r in static_listeners]
    if static_clusters is None:
        config["dynamic_resources"]["cds_config"] = file_source(layout.cds)
    else:
        config["static_resources"]["clusters"] = [_untyped(r) for r in static_clusters]
    manager = overload_manager(layout.pressure, overload, profile)
    if manager is not None:
        config["overload_manager"] = manager
    if istio_stats is not None:
        config["stats_config"] = {"stats_matcher": istio_stats}
    if ads_port is not None:
        ads_cluster = ISTIO_XDS_CLUSTER if istio_stats is not None else XDS_CLUSTER
        config["static_resources"]["clusters"].append({
            "name": ads_cluster,
            **({"alt_stat_name": ads_cluster + STAT_DELIMITER} if istio_stats is not None else {}),
            "type": "STATIC",
            "connect_timeout": "0.25s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3"
                             ".HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
            "load_assignment": {
                "cluster_name": ads_cluster,
                "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": socket_address(ads_port)}}]}],
            },
            **({"upstream_connection_options": {"tcp_keepalive": profile.control_plane_keepalive.to_json()}}
               if profile is not None and profile.control_plane_keepalive is not None else {}),
        })
        config["dynamic_resources"]["ads_config"] = {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": ads_cluster}}],
        }
        if istio_stats is not None:
            config["layered_runtime"] = {"layers": [{"name": "rtds", "rtds_layer": {"name": "rtds", "rtds_config": {
                "ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0.2s"}}}]}
    return config
