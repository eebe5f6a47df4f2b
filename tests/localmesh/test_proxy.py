from __future__ import annotations

import json

import pytest

import localmesh as lm

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def pair(upstream, stable, target):
    """One stable and one target proxy in front of the same service."""
    proxies = [
        lm.Proxy(lm.ProxySpec(binary=stable, name="old", revision="stable"),
                 upstream=upstream.endpoint("old")),
        lm.Proxy(lm.ProxySpec(binary=target, name="new", revision="canary"),
                 upstream=upstream.endpoint("new")),
    ]
    lm.start_proxies(proxies, timeout_s=30)
    yield proxies
    lm.stop_proxies(proxies)


def test_started_proxy_is_live_and_serves_traffic_to_the_upstream(pair, upstream) -> None:
    for proxy in pair:
        assert proxy.ready() == (200, "LIVE")
        before = upstream.endpoint(proxy.spec.name).requests.get(200, 0)
        result = lm.send_traffic(proxy.url, requests=10, rate_per_s=None)
        assert result.statuses == {200: 10}
        assert upstream.endpoint(proxy.spec.name).requests[200] == before + 10
        assert proxy.stat("cluster.upstream.upstream_rq_200") >= 10


def test_two_binaries_report_different_server_versions(pair) -> None:
    old, new = (proxy.server_info() for proxy in pair)
    assert "/1.39.3/" in old["version"]
    assert "/1.40.0/" in new["version"]
    assert old["node"]["cluster"] == "stable" and new["node"]["cluster"] == "canary"


def test_listeners_and_clusters_come_from_filesystem_xds(pair) -> None:
    proxy = pair[1]
    assert proxy.stats(filter="version_text") == {
        "cluster_manager.cds.version_text": "1",
        "listener_manager.lds.version_text": "1",
    }
    lds = json.loads(proxy.layout.lds.read_text())
    assert lds["resources"][0]["address"]["socket_address"]["port_value"] == proxy.listener_port


def test_good_push_is_applied_and_bumps_the_version(pair) -> None:
    proxy = pair[0]
    version = proxy.xds.push_clusters(proxy.clusters())
    lm.wait_until(lambda: proxy.stats(filter="cds.version_text")
                  .get("cluster_manager.cds.version_text") == version, what="CDS applied")
    assert lm.send_traffic(proxy.url, requests=3).statuses == {200: 3}


def test_proxy_that_cannot_start_raises_with_the_log_tail(upstream, target) -> None:
    taken = lm.free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        proxy = lm.Proxy(lm.ProxySpec(binary=target, name="clash", admin_port=taken),
                         upstream=upstream)
        with pytest.raises(lm.ProxyStartError) as error:
            proxy.start(timeout_s=15)
    assert "Address already in use" in error.value.log_tail  # Envoy's own words
    assert not proxy.running
    proxy.stop()


def test_proxy_whose_listener_port_is_taken_is_not_reported_started(upstream, target) -> None:
    # Envoy itself goes LIVE with the listener rejected: start() must not.
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        proxy = lm.Proxy(lm.ProxySpec(binary=target, name="nolistener", listener_port=taken),
                         upstream=upstream)
        with pytest.raises(lm.ProxyStartError, match="listeners are active") as error:
            proxy.start(timeout_s=15)
    assert error.value.clashing_port == taken
    assert not proxy.can_retry(error.value)  # the spec fixed that port: new ports cannot help
    proxy.stop()


def test_static_proxy_serves_without_xds_files(upstream, stable) -> None:
    with lm.Proxy(lm.ProxySpec(binary=stable, name="static", xds="static"),
                  upstream=upstream) as proxy:
        assert lm.send_traffic(proxy.url, requests=3).statuses == {200: 3}
        assert "listener_manager.lds.version_text" not in proxy.stats(filter="version_text")
        with pytest.raises(lm.FaultError, match="file-based xDS"):
            lm.inject_fault(proxy, "reject-config")
