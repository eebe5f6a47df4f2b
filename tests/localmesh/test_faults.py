"""Each fault, provoked on a real Envoy, raises its documented admin signal and reverts."""

from __future__ import annotations

import pytest

import localmesh as lm

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def control_plane():
    with lm.ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="module")
def canary(upstream, target, control_plane):
    proxy = lm.start_proxy(
        target, upstream, name="canary", revision="canary", tls=True,
        overload=lm.OverloadThresholds(), control_plane=control_plane,
        stats_flush_interval_s=0.5,
    )
    yield proxy
    proxy.stop()


def stat_becomes(proxy: lm.Proxy, name: str, predicate, what: str = "") -> None:
    lm.wait_until(lambda: predicate(proxy.stat(name)), timeout_s=5, what=what or name)


def test_fault_names_are_the_rehearsal_choices_and_more() -> None:
    assert set(lm.REHEARSAL_FAULTS) <= set(lm.FAULTS)
    with pytest.raises(lm.FaultError, match="unknown fault"):
        lm.inject_fault(None, "nope")  # type: ignore[arg-type]


def test_5xx_fault_raises_upstream_503_on_this_proxy_only(canary, upstream) -> None:
    before = canary.stat("cluster.upstream.upstream_rq_503")
    with lm.inject_fault(canary, "5xx"):
        hit = lm.send_traffic(canary.url, requests=20, rate_per_s=None)
        other = lm.send_traffic(f"http://127.0.0.1:{upstream.port}", requests=5)
    assert hit.statuses == {503: 20}
    assert other.statuses == {200: 5}
    assert canary.stat("cluster.upstream.upstream_rq_503") == before + 20
    assert lm.send_traffic(canary.url, requests=5).statuses == {200: 5}


def test_upstream_down_fault_raises_connect_failures(canary) -> None:
    before = canary.stat("cluster.upstream.upstream_cx_connect_fail")
    with lm.inject_fault(canary, "upstream-down"):
        # One client: concurrent requests may share (and fail on) one connection attempt.
        result = lm.send_traffic(canary.url, requests=10, rate_per_s=None, concurrency=1)
    assert result.statuses == {503: 10}
    assert canary.stat("cluster.upstream.upstream_cx_connect_fail") == before + 10
    assert lm.send_traffic(canary.url, requests=5).statuses == {200: 5}


def test_reject_config_is_nacked_keeps_the_version_and_the_traffic(canary) -> None:
    version = canary.stats(filter="lds.version_text")["listener_manager.lds.version_text"]
    before = canary.stat("listener_manager.lds.update_rejected")
    with lm.inject_fault(canary, "reject-config"):
        stat_becomes(canary, "listener_manager.lds.update_rejected", lambda v: v == before + 1)
        assert canary.stats(filter="lds.version_text")["listener_manager.lds.version_text"] == version
        assert lm.send_traffic(canary.url, requests=5).statuses == {200: 5}
        assert canary.stat("listener_manager.lds.update_failure") == 0


def test_reject_cluster_config_is_nacked(canary) -> None:
    before = canary.stat("cluster_manager.cds.update_rejected")
    with lm.inject_fault(canary, "reject-cluster-config"):
        stat_becomes(canary, "cluster_manager.cds.update_rejected", lambda v: v == before + 1)
        assert lm.send_traffic(canary.url, requests=5).statuses == {200: 5}


def expiry_stat(proxy: lm.Proxy) -> str:
    return (f"listener.127.0.0.1_{proxy.tls_port}"
            ".ssl.certificate.server_cert.expiration_unix_time_seconds")


@pytest.mark.parametrize(("fault", "days"), [("cert-expiry", "2"), ("cert-expired", "0")])
def test_cert_faults_swap_the_served_certificate(canary, fault, days) -> None:
    with lm.inject_fault(canary, fault):
        served = canary.cert
        assert served is not None
        stat_becomes(canary, expiry_stat(canary),
                     lambda v: v == int(served.not_after.timestamp()))
        certs = lm._admin.get_json(canary.admin_port, "/certs")["certificates"]
        assert [c["cert_chain"][0]["days_until_expiration"] for c in certs] == [days]
        # The server-wide gauge only moves on a stats flush (0.5 s here).
        stat_becomes(canary, "server.days_until_first_cert_expiring", lambda v: v == int(days))
    assert canary.cert is not None and canary.cert.days_left() > 80
    stat_becomes(canary, expiry_stat(canary),
                 lambda v: v == int(canary.cert.not_after.timestamp()))


def test_overload_fault_activates_the_action_while_ready_stays_live(canary) -> None:
    action = "overload.envoy.overload_actions.stop_accepting_requests.active"
    with lm.inject_fault(canary, "overload"):
        stat_becomes(canary, action, lambda v: v == 1)
        assert canary.stat("overload.envoy.overload_actions.disable_http_keepalive.active") == 1
        assert canary.ready() == (200, "LIVE")
        assert lm.send_traffic(canary.url, requests=3).statuses == {503: 3}
    lm.wait_until(lambda: canary.stat(action) == 0, what="overload cleared")
    assert lm.send_traffic(canary.url, requests=3).statuses == {200: 3}


def test_draining_fault_makes_ready_answer_503_draining(canary) -> None:
    with lm.inject_fault(canary, "draining"):
        assert canary.ready() == (503, "DRAINING")
    assert canary.ready() == (200, "LIVE")


def test_control_plane_down_fault_drops_the_connected_state(canary) -> None:
    state = "control_plane.connected_state"
    assert canary.stat(state) == 1
    with lm.inject_fault(canary, "control-plane-down"):
        lm.wait_until(lambda: canary.stat(state) == 0, what="connected_state 0")
        assert canary.ready() == (200, "LIVE")
    # Envoy reconnects after its retry back-off (0.5 s base, jittered).
    lm.wait_until(lambda: canary.stat(state) == 1, timeout_s=15, what="reconnected")


def test_proxy_with_ads_at_a_closed_port_is_live_but_disconnected(upstream, stable) -> None:
    with lm.Proxy(lm.ProxySpec(binary=stable, name="orphan",
                               control_plane_port=lm.closed_port()),
                  upstream=upstream) as proxy:
        lm.wait_until(lambda: proxy.ready() == (200, "LIVE"))
        assert proxy.stat("control_plane.connected_state") == 0
        assert lm.wait_until(lambda: proxy.stat("cluster.xds_cluster.upstream_cx_connect_fail"))


def test_outlier_detection_ejects_the_failing_endpoint(upstream, target) -> None:
    proxy = lm.start_proxy(target, upstream, name="ejectable", outlier_detection=True)
    try:
        with lm.inject_fault(proxy, "5xx"):
            result = lm.send_traffic(proxy.url, requests=5, rate_per_s=None, concurrency=1)
            lm.wait_until(lambda: proxy.stat(
                "cluster.upstream.outlier_detection.ejections_active") == 1)
        # 3 consecutive 5xx eject the only host; Envoy then answers 503 itself.
        assert result.statuses == {503: 5}
        assert proxy.stat("cluster.upstream.outlier_detection.ejections_consecutive_5xx") == 1
    finally:
        proxy.stop()
