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
Upstream (a real HTTP service; one acceptor thread, one thread per connection)
    Upstream(*, port=0, name="upstream"); .start() .stop() .fail_with(status|None)
    .port .running .requests .total() .main .endpoints
    .endpoint(name, *, port=0) -> UpstreamEndpoint   # one port per proxy, created once
    UpstreamEndpoint: .port .start() .stop() .fail_with(status|None) .requests
    Answers 200; `/status/<code>` answers <code>; stop() cuts open connections.
Control plane stand-in (ADS gRPC that holds the stream, never answers)
    ControlPlane(*, port=0, max_connection_age_s=None); .start() .stop()
        max_connection_age_s: closes streams that old, like istiod's max connection age
Proxies
    ProxySpec(*, binary, upstream_port=0, name="proxy", revision="default",
              workdir=None, admin_port=0, listener_port=0, tls=False, tls_port=0,
              cert=None, root=None, overload=None|OverloadThresholds(), control_plane_port=None,
              stats_flush_interval_s=5.0, outlier_detection=False, log_level="info",
              xds="files" | "static", profile=None | ProxyProfile(...),
              istio_stats=False, stats_inclusion_prefixes=(), stats_inclusion_regexps=())
        istio_stats: Istio 1.30's default stats matcher (widened as proxyStatsMatcher
        widens it), `<cluster>;` stat names, ADS on cluster `xds-grpc`
        profile: access log on every HCM, heap-triggered overload actions,
        TCP keepalive toward ADS and upstreams, log levels (TcpKeepalive)
        xds="files": LDS/CDS from watched files (pushes, reject-config); 2 inotify
        instances per proxy (+2 tls, +1 overload) against a per-user limit of
        often 128 -- use xds="static" for fleets beyond ~50.
    Proxy(spec, *, upstream: Upstream | UpstreamEndpoint | None, control_plane=None)
        .start(timeout_s=20, *, attempts=3) .stop(*, grace_s=5, keep_workdir=False)
        .spawn() .wait_ready() .poll_started() .verify_listeners()  (context manager)
        start = LIVE on /ready *and* every listener active (Envoy itself goes LIVE
        with a listener whose port is taken); a clash on a port the spec left
        open is retried on new ports.
        .admin_port .listener_port .tls_port .url .https_url .admin_url
        .ready() -> (status, body)  .stats(filter) -> dict  .stat(name) -> int
        .upstream_stat(name) -> the upstream cluster's stat name (Istio's form with istio_stats)
        .server_info() -> dict  .post(path)  .upstream (UpstreamEndpoint)
        .process (EnvoyProcess: .pid .running)  .layout (files: .log .bootstrap ...)
        .xds: XdsFiles (push_listeners/push_clusters/push_secrets/push_bad_*)
        .listeners() .clusters()  (the good resource sets)
        .set_certificate(CertPair)  .set_pressure(float)
    start_proxy(binary, upstream, *, own_endpoint=True, control_plane=None,
                **spec_options) -> Proxy (started, LIVE)
Fleets
    Fleet(*, binary, size, upstream, revision="default", name_prefix=None,
          own_endpoints=True, control_plane=None, workdir=None, **spec_options)
        .start(*, max_parallel_starts=None, timeout_s=20) .stop() .push(fn)
        .proxies  (iterable, indexable, context manager)
    start_proxies(proxies, *, max_parallel_starts=None, timeout_s=20, attempts=3)
        (at most 2 x cores starting at once; spawned and polled from the calling thread)
    stop_proxies(proxies, *, grace_s=5)
Faults (see localmesh/_faults.py for the signal each raises)
    inject_fault(proxy, name) -> InjectedFault (.revert(), .signal; context manager)
    FAULTS: dict[name, Callable[[Proxy], InjectedFault]]; REHEARSAL_FAULTS
    names: none 5xx upstream-down reject-config reject-cluster-config cert-expiry
           cert-expired overload draining control-plane-down missing-route
Traffic
    send_traffic(url, *, requests=100, duration_s=None, rate_per_s=200,
                 concurrency=4, noise_fraction=0.0, path="/", timeout_s=2)
        -> TrafficResult(statuses, errors, duration_s; .sent .count(lo, hi) .server_errors)
Certificates
    CertPair; generate_cert(*, common_name, not_before, not_after, valid_days)
    expired_cert(*, days_ago=1); expiring_cert(*, days=3)
    mesh_root(*, valid_days=3650); workload_cert(root, *, spiffe_id, lifetime=24h, age=0)
        (what an Istio sidecar serves: SDS `default` with a spiffe:// URI SAN, `ROOTCA`)
Polling
    wait_until(predicate, *, timeout_s=5, interval_s=0.02, what="") -> value
Process cleanup
    stop_all(); live_pids(); install_signal_handlers()
    on_stop(owner, stopper); forget_stopper(owner)   # what is not our child (a local cluster's daemons)
Errors
    LocalMeshError > EnvoyBinaryNotFound, ProxyStartError(log_tail, port_clash,
    clashing_port), FaultError

Every Envoy runs with `--disable-hot-restart --concurrency 1` in its own
process group and is stopped at interpreter exit, on SIGTERM/SIGHUP/SIGINT
(previous handlers are chained: Ctrl-C stops the proxies, then raises
KeyboardInterrupt as usual) and by `Proxy.stop()`.  Temporary work
directories go with them.  Signal handlers are installed from the main thread
only: a program that first starts proxies from another thread should call
`install_signal_handlers()` early.
"""

from __future__ import annotations

from ._binaries import EnvoyBinary, stable_envoy, target_envoy
from ._bootstrap import OverloadThresholds, ProxyProfile, TcpKeepalive
from ._certs import CertPair, expired_cert, expiring_cert, generate_cert, mesh_root, workload_cert
from ._controlplane import ControlPlane
from ._errors import EnvoyBinaryNotFound, FaultError, LocalMeshError, ProxyStartError
from ._faults import FAULTS, REHEARSAL_FAULTS, InjectedFault, inject_fault
from ._fleet import Fleet, start_proxies, stop_proxies
from ._ports import closed_port, free_port, free_ports
from ._process import wait_until
from ._proxy import Proxy, ProxySpec
from ._registry import forget_stopper, install_signal_handlers, live_pids, on_stop, stop_all
from ._traffic import TrafficResult, send_traffic
from ._upstream import Upstream, UpstreamEndpoint, cut_connections
from ._xds import XdsFiles


def start_proxy(
    binary: EnvoyBinary,
    upstream: Upstream,
    *,
    own_endpoint: bool = True,
    control_plane: ControlPlane | None = None,
    **options: object,
) -> Proxy:
    """Start one proxy in front of `upstream` and wait until it is LIVE.

    With `own_endpoint` the proxy gets its own port on the upstream (named
    after the proxy), so "5xx"/"upstream-down" faults hit it alone.  `options`
    are ProxySpec fields (name, revision, tls, overload, ...).
    """
    name = str(options.get("name", "proxy"))
    endpoint = upstream.endpoint(name) if own_endpoint else upstream.main
    if control_plane is not None:
        options.setdefault("control_plane_port", control_plane.port)
    spec = ProxySpec(binary=binary, **options)  # type: ignore[arg-type]
    return Proxy(spec, upstream=endpoint, control_plane=control_plane).start()


__all__ = [
    "CertPair",
    "ControlPlane",
    "EnvoyBinary",
    "EnvoyBinaryNotFound",
    "FAULTS",
    "FaultError",
    "Fleet",
    "InjectedFault",
    "LocalMeshError",
    "OverloadThresholds",
    "Proxy",
    "ProxySpec",
    "ProxyProfile",
    "ProxyStartError",
    "REHEARSAL_FAULTS",
    "TcpKeepalive",
    "TrafficResult",
    "Upstream",
    "UpstreamEndpoint",
    "XdsFiles",
    "closed_port",
    "cut_connections",
    "expired_cert",
    "expiring_cert",
    "free_port",
    "free_ports",
    "generate_cert",
    "mesh_root",
    "workload_cert",
    "inject_fault",
    "forget_stopper",
    "install_signal_handlers",
    "live_pids",
    "on_stop",
    "send_traffic",
    "stable_envoy",
    "start_proxies",
    "start_proxy",
    "stop_all",
    "stop_proxies",
    "target_envoy",
    "wait_until",
]
