"""localmesh — a local data plane of real Envoy processes on 127.0.0.1.

Used by the checks' tests (healthy proxies and every failure provoked for
real), by `meshlift rehearse` (a stable 1.39 fleet and a target 1.40 fleet fed
by filesystem xDS per revision) and by the benchmarks (10-200 proxies).

Binaries
    EnvoyBinary(path, version); EnvoyBinary.at(path)
    stable_envoy() -> EnvoyBinary     # 1.39.3; env MESHLIFT_STABLE_ENVOY overrides
    target_envoy() -> EnvoyBinary     # 1.40.0; env MESHLIFT_TARGET_ENVOY overrides
Ports
    free_port() -> int; free_ports(n) -> list[int]; closed_port() -> int
Upstream (real HTTP server in a thread)
    Upstream(*, port=0, name="upstream"); .start() .stop() .fail_with(status|None)
    .port .running .requests  -- `/status/<code>` answers <code>, else 200
Control plane stand-in (ADS gRPC that holds the stream, never answers)
    ControlPlane(*, port=0); .start() .stop()
Proxies
    ProxySpec(*, binary, upstream_port, name="proxy", revision="default",
              workdir=None, admin_port=0, listener_port=0, tls=False, tls_port=0,
              cert=None, overload=None|OverloadThresholds(), control_plane_port=None,
              stats_flush_interval_s=5.0, outlier_detection=False, log_level="info")
    Proxy(spec, *, upstream=None, control_plane=None)
        .start(timeout_s=20) .stop(grace_s=5) .spawn() .wait_ready()  (context manager)
        .admin_port .listener_port .tls_port .url .https_url .admin_url
        .ready() -> (status, body)  .stats(filter) -> dict  .stat(name) -> int
        .server_info() -> dict  .post(path)
        .xds: XdsFiles (push_listeners/push_clusters/push_secrets/push_bad_*)
        .listeners() .clusters()  (the good resource sets)
        .set_certificate(CertPair)  .set_pressure(float)
    start_proxy(binary, upstream, **spec_options) -> Proxy (started)
Certificates
    CertPair; generate_cert(*, common_name, not_before, not_after, valid_days)
    expired_cert(*, days_ago=1); expiring_cert(*, days=3)
Process cleanup
    stop_all(); live_pids(); install_signal_handlers()
Errors
    LocalMeshError > EnvoyBinaryNotFound, ProxyStartError(log_tail), FaultError

Every Envoy runs with `--disable-hot-restart --concurrency 1` in its own
process group and is stopped at interpreter exit, on SIGTERM/SIGHUP/SIGINT
(previous handlers are chained) and by `Proxy.stop()`.
"""

from __future__ import annotations

from ._binaries import EnvoyBinary, stable_envoy, target_envoy
from ._bootstrap import OverloadThresholds
from ._certs import CertPair, expired_cert, expiring_cert, generate_cert
from ._controlplane import ControlPlane
from ._errors import EnvoyBinaryNotFound, FaultError, LocalMeshError, ProxyStartError
from ._ports import closed_port, free_port, free_ports
from ._proxy import Proxy, ProxySpec
from ._registry import install_signal_handlers, live_pids, stop_all
from ._upstream import Upstream
from ._xds import XdsFiles


def start_proxy(binary: EnvoyBinary, upstream: Upstream, **options: object) -> Proxy:
    """Start one proxy in front of `upstream` and wait until it is LIVE.

    `options` are ProxySpec fields (name, revision, tls, overload, ...).
    """
    spec = ProxySpec(binary=binary, upstream_port=upstream.port, **options)  # type: ignore[arg-type]
    return Proxy(spec, upstream=upstream).start()


__all__ = [
    "CertPair",
    "ControlPlane",
    "EnvoyBinary",
    "EnvoyBinaryNotFound",
    "FaultError",
    "LocalMeshError",
    "OverloadThresholds",
    "Proxy",
    "ProxySpec",
    "ProxyStartError",
    "Upstream",
    "XdsFiles",
    "closed_port",
    "expired_cert",
    "expiring_cert",
    "free_port",
    "free_ports",
    "generate_cert",
    "install_signal_handlers",
    "live_pids",
    "stable_envoy",
    "start_proxy",
    "stop_all",
    "target_envoy",
]
