"""A local proxy: one real Envoy fed by filesystem xDS, in front of an upstream."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import _admin, _registry
from . import _bootstrap as cfg
from ._binaries import EnvoyBinary
from ._bootstrap import Layout, OverloadThresholds, ProxyProfile
from ._certs import CertPair, generate_cert
from ._controlplane import ControlPlane
from ._errors import ProxyStartError
from ._ports import LOOPBACK, free_port, release_ports
from ._process import DEFAULT_START_TIMEOUT_S, EnvoyProcess, log_tail, wait_until
from ._upstream import Upstream, UpstreamEndpoint
from ._xds import XdsFiles, write_atomic

UPSTREAM_CLUSTER = "upstream"
HTTP_LISTENER = "http"
TLS_LISTENER = "https"


@dataclass(kw_only=True)
class ProxySpec:
    """What to start.  Ports left at 0 are picked free at construction.

    `revision` becomes the Envoy `node.cluster` (e.g. "stable", "canary").
    `tls` adds an HTTPS listener whose certificate comes from file-based SDS
    (a fresh 90-day self-signed pair unless `cert` is given; with `root`, the
    listener also trusts that mesh root, served as SDS `ROOTCA`).  `overload` wires
    the injected_resource monitor to disable_http_keepalive and
    stop_accepting_requests.  `control_plane_port` adds ADS at that port (a
    ControlPlane, or a closed port for "control plane unreachable").  `profile`
    adds the production settings (access log, heap overload actions, keepalives,
    log levels); its log levels replace `log_level`.
    """

    binary: EnvoyBinary
    upstream_port: int = 0  # or hand the Proxy an Upstream / UpstreamEndpoint
    name: str = "proxy"
    revision: str = "default"
    workdir: Path | None = None
    admin_port: int = 0
    listener_port: int = 0
    tls: bool = False
    tls_port: int = 0
    cert: CertPair | None = None
    root: CertPair | None = None
    overload: OverloadThresholds | None = None
    control_plane_port: int | None = None
    stats_flush_interval_s: float = 5.0
    outlier_detection: bool = False
    log_level: str = "info"
    xds: str = "files"  # or "static": no LDS/CDS files, no inotify (large benchmark fleets)
    profile: ProxyProfile | None = None
    node_metadata: dict[str, str] | None = None  # e.g. {"ISTIO_VERSION": "1.31.0"} for a pod's stand-in
    # Stats shaped like an Istio sidecar's: Istio's default stats matcher widened by these
    # (what proxyStatsMatcher adds), `;` after every cluster's stat name (the upstream's stats
    # under `outbound|80||upstream.local.svc.cluster.local;`), ADS on `xds-grpc`.
    istio_stats: bool = False
    stats_inclusion_prefixes: tuple[str, ...] = ()
    stats_inclusion_regexps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.xds not in ("files", "static"):
            raise ValueError(f"xds must be 'files' or 'static', not {self.xds!r}")


class Proxy:
    """A running (or startable) Envoy.  Use as a context manager or start()/stop()."""

    def __init__(
        self,
        spec: ProxySpec,
        *,
        upstream: Upstream | UpstreamEndpoint | None = None,
        control_plane: ControlPlane | None = None,
    ) -> None:
        """`upstream` / `control_plane` are the objects faults act on ("5xx",
        "upstream-down", "control-plane-down"); `spec` holds their ports."""
        self.spec = spec
        self.binary = spec.binary
        self.upstream = upstream.main if isinstance(upstream, Upstream) else upstream
        self.control_plane = control_plane
        if self.upstream is None and not spec.upstream_port:
            raise ValueError("a proxy needs an upstream: pass upstream= or spec.upstream_port")
        self._own_workdir = spec.workdir is None
        root = spec.workdir or Path(tempfile.mkdtemp(prefix=f"meshlift-{spec.name}-"))
        self.layout = Layout(Path(root)).create()
        if self._own_workdir:
            _registry.register_dir(self.layout.root)
        self.cert: CertPair | None = spec.cert
        profile = spec.profile
        self.process = EnvoyProcess(
            spec.binary, bootstrap=self.layout.bootstrap, log=self.layout.log,
            admin_port=0, log_level=profile.log_level if profile else spec.log_level,
            extra_args=("--component-log-level", profile.component_log_level)
            if profile and profile.component_log_level else (),
        )
        self._configure()

    def _configure(self) -> None:
        """Pick the ports the spec left open and write version 1 of every file."""
        spec = self.spec
        if hasattr(self, "admin_port"):  # a retry: the old ports go back to the pool
            release_ports(self.admin_port, self.listener_port, self.tls_port)
        self.admin_port = spec.admin_port or free_port()
        self.listener_port = spec.listener_port or free_port()
        self.tls_port = (spec.tls_port or free_port()) if spec.tls else None
        self.process.admin_port = self.admin_port
        self.xds = XdsFiles(self.layout)
        self._write_initial_config()

    # ---- configuration -------------------------------------------------
    def listeners(self, *, route_names: tuple[str, ...] | None = None) -> list[cfg.Json]:
        """The good listener set of this proxy (what a healthy push contains);
        `route_names` keeps only those routes (a push that serves less)."""
        profile = self.spec.profile
        out = [cfg.http_listener(name=HTTP_LISTENER, port=self.listener_port, cluster=UPSTREAM_CLUSTER,
                                 profile=profile, route_names=route_names)]
        if self.tls_port is not None:
            out.append(cfg.tls_listener(name=TLS_LISTENER, port=self.tls_port, cluster=UPSTREAM_CLUSTER,
                                        sds_path=self.layout.sds, profile=profile, route_names=route_names,
                                        root_path=self.layout.sds_root if self.spec.root is not None else None))
        return out

    def clusters(self) -> list[cfg.Json]:
        port = self.upstream.port if self.upstream is not None else self.spec.upstream_port
        keepalive = self.spec.profile.upstream_keepalive if self.spec.profile else None
        alt = cfg.ISTIO_UPSTREAM_STAT_NAME if self.spec.istio_stats else None
        return [cfg.static_cluster(name=UPSTREAM_CLUSTER, port=port, outlier_detection=self.spec.outlier_detection,
                                   keepalive=keepalive, alt_stat_name=alt)]

    def _write_initial_config(self) -> None:
        spec = self.spec
        static = spec.xds == "static"
        boot = cfg.bootstrap(
            layout=self.layout, node_id=spec.name, node_cluster=spec.revision, node_metadata=spec.node_metadata,
            admin_port=self.admin_port, stats_flush_interval_s=spec.stats_flush_interval_s,
            overload=spec.overload, profile=spec.profile, ads_port=spec.control_plane_port,
            static_listeners=self.listeners() if static else None,
            static_clusters=self.clusters() if static else None,
            istio_stats=cfg.istio_stats_matcher(prefixes=spec.stats_inclusion_prefixes,
                                                regexps=spec.stats_inclusion_regexps) if spec.istio_stats else None,
        )
        self.layout.bootstrap.write_text(json.dumps(boot, indent=1))
        if spec.profile is not None and spec.profile.access_log_path:
            # Envoy rejects a listener whose access log file it cannot open.
            Path(spec.profile.access_log_path).parent.mkdir(parents=True, exist_ok=True)
        if spec.overload is not None:
            self.set_pressure(0.0)
        if spec.tls:
            self.set_certificate(self.cert or generate_cert(common_name=spec.name, valid_days=90))
        else:
            self.xds.push_secrets([])  # the file must exist for a path_config_source
        if not static:
            self.xds.push_clusters(self.clusters())
            self.xds.push_listeners(self.listeners())

    def set_certificate(self, cert: CertPair) -> None:
        """Serve `cert` on the TLS listener: write it under new file names, push SDS (with the spec's root)."""
        self.cert = cert
        cert_file, key_file = cert.write(self.layout.certs)
        if self.spec.root is not None:
            ca_file, _ = self.spec.root.write(self.layout.certs)
            write_atomic(self.layout.sds_root,
                         json.dumps(cfg.discovery_response("1", [cfg.root_secret(ca_file=ca_file)])))
        self.xds.push_secrets([cfg.server_secret(cert_file=cert_file, key_file=key_file)])

    def set_pressure(self, pressure: float) -> None:
        """Rename a new injected-resource pressure (0..1) into place."""
        write_atomic(self.layout.pressure, f"{pressure:.4f}")

    # ---- lifecycle ------------------------------------------------------
    def spawn(self) -> None:
        self.process.spawn()

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        self.process.wait_ready(timeout_s)

    def poll_started(self) -> bool:
        """One non-blocking step of start-up: True once LIVE with every listener bound.

        Raises ProxyStartError (`.port_clash` tells whether new ports may help).
        """
        if not self.process.poll_ready():
            return False
        self.verify_listeners()
        return True

    def verify_listeners(self) -> None:
        """Raise ProxyStartError unless every listener of this proxy is active.

        A listener whose port was taken meanwhile is rejected while Envoy still
        reports LIVE: without this check such a proxy would look healthy.
        """
        expected = len(self.listeners())

        def settled() -> str | None:
            found = self.stats(filter="listener_manager.(total_listeners_active|lds.update_rejected)")
            if int(found.get("listener_manager.total_listeners_active", 0)) >= expected:
                return "ok"
            return "rejected" if int(found.get("listener_manager.lds.update_rejected", 0)) else None

        try:
            outcome = wait_until(settled, timeout_s=2)
        except TimeoutError:
            outcome = "timeout"
        if outcome != "ok":
            self.process.stop(grace_s=1)  # first: Envoy flushes its log file on exit
            tail = log_tail(self.layout.log)
            raise ProxyStartError(
                f"envoy {self.binary.version} is LIVE but not all {expected} listeners are "
                f"active (log: {self.layout.log})", log_tail=tail,
            ) from None

    def can_retry(self, error: ProxyStartError) -> bool:
        """Whether new ports may cure `error`: a clash on a port the spec did not fix."""
        fixed = {self.spec.admin_port, self.spec.listener_port, self.spec.tls_port} - {0}
        return error.port_clash and error.clashing_port not in fixed

    def restart_on_new_ports(self) -> None:
        """After a port clash: stop, pick new free ports, rewrite the config, spawn again."""
        self.process.stop(grace_s=1)
        self._configure()
        self.spawn()

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S, *, attempts: int = 3) -> Proxy:
        """Spawn and wait until LIVE with its listeners bound (ProxyStartError with the log
        tail otherwise).  A port taken meanwhile by another program is retried on new ports."""
        self.spawn()
        for attempt in range(1, attempts + 1):
            try:
                self.wait_ready(timeout_s)
                self.verify_listeners()
                return self
            except ProxyStartError as error:
                if not self.can_retry(error) or attempt == attempts:
                    raise
                self.restart_on_new_ports()
        raise AssertionError("unreachable")

    def stop(self, *, grace_s: float = 5.0, keep_workdir: bool = False) -> None:
        """Stop Envoy (SIGTERM, SIGKILL after `grace_s`); remove the work directory we made."""
        self.process.stop(grace_s=grace_s)
        release_ports(self.admin_port, self.listener_port, self.tls_port)
        if self._own_workdir:
            if keep_workdir:
                _registry.forget_dir(self.layout.root)
            else:
                shutil.rmtree(self.layout.root, ignore_errors=True)
                _registry.forget_dir(self.layout.root)

    @property
    def running(self) -> bool:
        return self.process.running

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- admin ------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    @property
    def url(self) -> str:
        """Base URL of the plain HTTP listener."""
        return f"http://{LOOPBACK}:{self.listener_port}"

    @property
    def https_url(self) -> str | None:
        return f"https://{LOOPBACK}:{self.tls_port}" if self.tls_port else None

    def ready(self) -> tuple[int, str]:
        """(status, body) of `/ready`."""
        status, body = _admin.request(self.admin_port, "/ready")
        return status, body.strip()

    def stats(self, filter: str | None = None) -> dict[str, int | str]:  # noqa: A002
        return _admin.stats(self.admin_port, filter=filter)

    def upstream_stat(self, name: str) -> str:
        """The full name of the upstream cluster's stat `name` (`cluster.upstream.<name>`, or Istio's form)."""
        prefix = cfg.ISTIO_UPSTREAM_STAT_NAME if self.spec.istio_stats else UPSTREAM_CLUSTER
        return f"cluster.{prefix}.{name}"

    def stat(self, name: str) -> int:
        """One counter or gauge; 0 when absent (Envoy creates some only on first use)."""
        value = self.stats(filter=f"^{_escape(name)}$").get(name, 0)
        return int(value) if isinstance(value, int) else 0

    def server_info(self) -> dict[str, object]:
        return _admin.get_json(self.admin_port, "/server_info")

    def post(self, path: str) -> tuple[int, str]:
        """POST to the admin endpoint (tooling only: e.g. `/healthcheck/fail`)."""
        return _admin.request(self.admin_port, path, method="POST")

    def __repr__(self) -> str:
        return (f"Proxy({self.spec.name!r}, envoy {self.binary.version}, "
                f"admin={self.admin_port}, http={self.listener_port})")


def _escape(name: str) -> str:
    import re

    return re.escape(name)
