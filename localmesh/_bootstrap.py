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
STOP_ACCEPTING = "envoy.overload_actions.stop_accepting_requests"
DISABLE_KEEPALIVE = "envoy.overload_actions.disable_http_keepalive"
XDS_CLUSTER = "xds_cluster"
SERVER_CERT = "server_cert"


@dataclass(frozen=True, kw_only=True)
class OverloadThresholds:
    """Pressure at which each overload action turns on (injected_resource monitor)."""

    disable_keepalive: float = 0.92
    stop_accepting_requests: float = 0.97


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
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def pressure(self) -> Path:
        return self.root / "overload" / "pressure"

    def create(self) -> Layout:
        for path in (self.lds, self.cds, self.sds, self.pressure):
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


def http_connection_manager(*, stat_prefix: str, cluster: str) -> Json:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": stat_prefix,
            "route_config": {
                "name": "local_route",
                "virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                }],
            },
            "http_filters": [{"name": "envoy.filters.http.router",
                              "typed_config": {"@type": ROUTER_TYPE}}],
        },
    }


def http_listener(*, name: str, port: int, cluster: str, stat_prefix: str = "ingress_http") -> Json:
    """A plain HTTP listener on 127.0.0.1:`port` routing everything to `cluster`."""
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": socket_address(port),
        "filter_chains": [{"filters": [http_connection_manager(stat_prefix=stat_prefix,
                                                               cluster=cluster)]}],
    }


def tls_listener(*, name: str, port: int, cluster: str, sds_path: Path) -> Json:
    """An HTTPS listener whose certificate is the SDS secret `server_cert` read from `sds_path`."""
    listener = http_listener(name=name, port=port, cluster=cluster, stat_prefix="ingress_https")
    listener["filter_chains"][0]["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPE,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [
                    {"name": SERVER_CERT, "sds_config": file_source(sds_path)}
                ],
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


def static_cluster(*, name: str, port: int, outlier_detection: bool = False) -> Json:
    """A STATIC cluster with one endpoint at 127.0.0.1:`port`."""
    cluster: Json = {
        "@type": CLUSTER_TYPE,
        "name": name,
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
    return cluster


def _untyped(resource: Json) -> Json:
    """A resource as the bootstrap embeds it: without the Any `@type` of xDS files."""
    return {k: v for k, v in resource.items() if k != "@type"}


def discovery_response(version: str, resources: list[Json]) -> Json:
    """The file format of filesystem xDS: a DiscoveryResponse in JSON."""
    return {"version_info": version, "resources": resources}


def overload_manager(pressure_file: Path, thresholds: OverloadThresholds) -> Json:
    def action(name: str, value: float) -> Json:
        return {"name": name,
                "triggers": [{"name": INJECTED_MONITOR, "threshold": {"value": value}}]}

    return {
        "refresh_interval": "0.1s",
        "resource_monitors": [{
            "name": INJECTED_MONITOR,
            "typed_config": {"@type": INJECTED_TYPE, "filename": str(pressure_file)},
        }],
        "actions": [
            action(DISABLE_KEEPALIVE, thresholds.disable_keepalive),
            action(STOP_ACCEPTING, thresholds.stop_accepting_requests),
        ],
    }


def bootstrap(
    *,
    layout: Layout,
    node_id: str,
    node_cluster: str,
    admin_port: int,
    stats_flush_interval_s: float = 5.0,
    overload: OverloadThresholds | None = None,
    ads_port: int | None = None,
    static_listeners: list[Json] | None = None,
    static_clusters: list[Json] | None = None,
) -> Json:
    """The bootstrap of one proxy.

    Listeners and clusters come from the LDS/CDS files unless `static_*` are
    given: then they are baked into the bootstrap (no file watches, which
    matters for large fleets: each watch is an inotify instance).

    With `ads_port`, an ADS gRPC source at 127.0.0.1:`ads_port` is added.  No
    resource is subscribed over it, yet Envoy opens the stream at start-up and
    keeps reconnecting, so `control_plane.connected_state` tells whether the
    control plane is reachable (a closed port means "unreachable").
    """
    config: Json = {
        "node": {"id": node_id, "cluster": node_cluster},
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
    if overload is not None:
        config["overload_manager"] = overload_manager(layout.pressure, overload)
    if ads_port is not None:
        config["static_resources"]["clusters"].append({
            "name": XDS_CLUSTER,
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
                "cluster_name": XDS_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": socket_address(ads_port)}}]}],
            },
        })
        config["dynamic_resources"]["ads_config"] = {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
        }
    return config
