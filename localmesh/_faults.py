"""Faults provoked for real on a running proxy, each with the admin signal it raises.

    inject_fault(proxy, "5xx") -> InjectedFault;  fault.revert()

Name                 What really happens                         Admin signal
5xx                  the proxy's upstream endpoint answers 503   cluster.upstream.upstream_rq_503 / _5xx rise
upstream-down        the endpoint's port closes, conns are cut   cluster.upstream.upstream_cx_connect_fail +1 per connection
                                                                 attempt (concurrent requests may share one); clients get 503
reject-config        LDS push of an invalid listener             listener_manager.lds.update_rejected +1, lds.version_text kept
reject-cluster-config  CDS push of an invalid cluster            cluster_manager.cds.update_rejected +1, cds.version_text kept
cert-expiry          SDS push of a cert expiring in 2.5 days     listener.127.0.0.1_<tls port>.ssl.certificate.server_cert
                                                                 .expiration_unix_time_seconds = its notAfter (at once);
                                                                 /certs days_until_expiration "2"; gauge
                                                                 server.days_until_first_cert_expiring 2 only after the
                                                                 next stats flush (stats_flush_interval_s)
cert-expired         SDS push of a cert expired 1 day ago        same; /certs "0"; days_until_first_cert_expiring 0
overload             injected pressure 0.98                      overload.envoy.overload_actions.stop_accepting_requests.active 1
                                                                 and disable_http_keepalive.active 1 (alone from 0.92);
                                                                 /ready stays 200 LIVE; data plane 503 "envoy overloaded"
draining             POST /healthcheck/fail                      /ready 503 DRAINING
missing-route        LDS push whose route config lacks the       nothing in /stats: the push is accepted (lds.update_success +1,
                     `status` route (the canary serves less)     new lds.version_text) and traffic to / still flows; only
                                                                 /config_dump shows the route gone (config-parity)
control-plane-down   the proxy's ADS server stops (every proxy   control_plane.connected_state 0 at once; /ready stays LIVE;
                     of that revision's ControlPlane loses it)   back to 1 after Envoy's retry back-off once reverted

"5xx" and "upstream-down" act on the proxy's own upstream endpoint, so only
that proxy (e.g. the canary) is hit.  Every fault is reversible except that a
"reject-config" revert is a new good push (a new version), as a control plane would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ._certs import expired_cert, expiring_cert
from ._errors import FaultError
from ._process import wait_until
from ._proxy import Proxy

OVERLOAD_PRESSURE = 0.98
CERT_EXPIRY_DAYS = 2.5


@dataclass
class InjectedFault:
    """A fault in force on `proxy`; `revert()` undoes it (idempotent)."""

    name: str
    proxy: Proxy
    signal: str
    _revert: Callable[[], None] = field(repr=False)
    reverted: bool = False

    def revert(self) -> None:
        if not self.reverted:
            self._revert()
            self.reverted = True

    def __enter__(self) -> InjectedFault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.revert()


FaultFunction = Callable[[Proxy], InjectedFault]


def _need_upstream(proxy: Proxy, fault: str):  # type: ignore[no-untyped-def]
    if proxy.upstream is None:
        raise FaultError(f"fault {fault!r} needs the proxy's Upstream: pass upstream= to Proxy")
    return proxy.upstream


def _none(proxy: Proxy) -> InjectedFault:
    return InjectedFault("none", proxy, "nothing changes", lambda: None)


def _5xx(proxy: Proxy) -> InjectedFault:
    endpoint = _need_upstream(proxy, "5xx")
    endpoint.fail_with(503)
    return InjectedFault("5xx", proxy, f"{proxy.upstream_stat('upstream_rq_503')} rises with traffic",
                         lambda: endpoint.fail_with(None))


def _upstream_down(proxy: Proxy) -> InjectedFault:
    endpoint = _need_upstream(proxy, "upstream-down")
    endpoint.stop()
    # Let Envoy notice its pooled connections were cut, so that from now on
    # every request is a connect failure rather than a reset on a dying connection.
    try:
        wait_until(lambda: proxy.stat(proxy.upstream_stat("upstream_cx_active")) == 0, timeout_s=2)
    except (TimeoutError, OSError):
        pass  # the fault is in force anyway; only the first requests may differ
    return InjectedFault("upstream-down", proxy,
                         f"{proxy.upstream_stat('upstream_cx_connect_fail')} rises with traffic",
                         endpoint.start)


def _need_file_xds(proxy: Proxy, fault: str) -> None:
    if proxy.spec.xds != "files":
        raise FaultError(f"fault {fault!r} needs file-based xDS: start with xds='files'")


def _reject_config(proxy: Proxy) -> InjectedFault:
    _need_file_xds(proxy, "reject-config")
    proxy.xds.push_bad_listeners()
    return InjectedFault("reject-config", proxy,
                         "listener_manager.lds.update_rejected +1; lds.version_text unchanged",
                         lambda: proxy.xds.push_listeners(proxy.listeners()))


def _reject_cluster_config(proxy: Proxy) -> InjectedFault:
    _need_file_xds(proxy, "reject-cluster-config")
    proxy.xds.push_bad_clusters()
    return InjectedFault("reject-cluster-config", proxy,
                         "cluster_manager.cds.update_rejected +1; cds.version_text unchanged",
                         lambda: proxy.xds.push_clusters(proxy.clusters()))


def _missing_route(proxy: Proxy) -> InjectedFault:
    from ._bootstrap import DEFAULT_ROUTE, STATUS_ROUTE

    _need_file_xds(proxy, "missing-route")
    proxy.xds.push_listeners(proxy.listeners(route_names=(DEFAULT_ROUTE,)))
    return InjectedFault("missing-route", proxy,
                         f"/config_dump: route {STATUS_ROUTE!r} gone from every listener; push accepted",
                         lambda: proxy.xds.push_listeners(proxy.listeners()))


def _cert_fault(name: str, make):  # type: ignore[no-untyped-def]
    def inject(proxy: Proxy) -> InjectedFault:
        if proxy.tls_port is None or proxy.cert is None:
            raise FaultError(f"fault {name!r} needs a TLS listener: start the proxy with tls=True")
        previous = proxy.cert
        proxy.set_certificate(make(common_name=proxy.spec.name))
        return InjectedFault(name, proxy,
                             "ssl.certificate.server_cert.expiration_unix_time_seconds drops; "
                             "/certs days_until_expiration shrinks",
                             lambda: proxy.set_certificate(previous))
    return inject


def _overload(proxy: Proxy) -> InjectedFault:
    if proxy.spec.overload is None:
        raise FaultError("fault 'overload' needs the overload manager: start with overload=")
    proxy.set_pressure(OVERLOAD_PRESSURE)
    return InjectedFault("overload", proxy,
                         "overload.envoy.overload_actions.stop_accepting_requests.active 1; "
                         "/ready stays LIVE",
                         lambda: proxy.set_pressure(0.0))


def _draining(proxy: Proxy) -> InjectedFault:
    proxy.post("/healthcheck/fail")
    return InjectedFault("draining", proxy, "/ready 503 DRAINING",
                         lambda: proxy.post("/healthcheck/ok"))


def _control_plane_down(proxy: Proxy) -> InjectedFault:
    if proxy.spec.control_plane_port is None:
        raise FaultError("fault 'control-plane-down' needs ADS: start with control_plane_port=")
    plane = proxy.control_plane
    if plane is not None:
        plane.stop()
    # Without a ControlPlane object the port was closed from the start: already down.
    return InjectedFault("control-plane-down", proxy, "control_plane.connected_state 0",
                         plane.start if plane is not None else (lambda: None))


FAULTS: dict[str, FaultFunction] = {
    "none": _none,
    "5xx": _5xx,
    "upstream-down": _upstream_down,
    "reject-config": _reject_config,
    "reject-cluster-config": _reject_cluster_config,
    "missing-route": _missing_route,
    "cert-expiry": _cert_fault("cert-expiry",
                               lambda **kw: expiring_cert(days=CERT_EXPIRY_DAYS, **kw)),
    "cert-expired": _cert_fault("cert-expired", expired_cert),
    "overload": _overload,
    "draining": _draining,
    "control-plane-down": _control_plane_down,
}

# What `meshlift rehearse --fault` offers: faults that need no special proxy wiring
# beyond tls=True and overload= on the canary.
REHEARSAL_FAULTS = ("none", "5xx", "reject-config", "cert-expiry", "overload", "upstream-down", "missing-route")


def inject_fault(proxy: Proxy, name: str) -> InjectedFault:
    """Provoke fault `name` (a key of FAULTS) on the running `proxy`."""
    try:
        function = FAULTS[name]
    except KeyError:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}") from None
    return function(proxy)
