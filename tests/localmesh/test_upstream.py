from __future__ import annotations

import http.client

import pytest

import localmesh as lm


def get(port: int, path: str = "/", host: str = "127.0.0.1") -> int:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_upstream_answers_200_or_the_status_the_path_asks_for() -> None:
    with lm.Upstream() as up:
        assert get(up.port) == 200
        assert get(up.port, "/status/503") == 503
        assert get(up.port, "/status/404?x=1") == 404
        assert up.requests == {200: 1, 503: 1, 404: 1}


def test_fail_with_on_one_endpoint_leaves_the_others_healthy() -> None:
    with lm.Upstream() as up:
        canary = up.endpoint("canary")
        canary.fail_with(503)
        assert get(canary.port) == 503
        assert get(up.port) == 200
        canary.fail_with(None)
        assert get(canary.port) == 200
        up.fail_with(500)  # the whole service
        assert (get(canary.port), get(up.port)) == (500, 500)


def test_stopped_endpoint_refuses_connections_and_restarts_on_the_same_port() -> None:
    with lm.Upstream() as up:
        endpoint = up.endpoint("a")
        port = endpoint.port
        endpoint.stop()
        with pytest.raises(ConnectionRefusedError):
            get(port)
        endpoint.start()
        assert endpoint.port == port
        assert get(port) == 200


def test_stop_cuts_kept_alive_connections() -> None:
    with lm.Upstream() as up:
        conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=2)
        conn.request("GET", "/")
        conn.getresponse().read()
        up.main.stop()
        conn.request("GET", "/")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        conn.close()


def test_an_endpoint_started_on_its_own_is_served() -> None:
    up = lm.Upstream()
    try:
        endpoint = up.endpoint("solo").start()
        assert get(endpoint.port) == 200
        assert not up.main.running  # only what was started listens
    finally:
        up.stop()


def test_endpoints_on_other_loopback_addresses_share_a_port_one_app_per_pod_ip() -> None:
    with lm.Upstream() as up:
        first = up.endpoint("shop/web-0", host="127.0.0.2")
        second = up.endpoint("shop/web-1", host="127.0.0.3", port=first.port)
        second.fail_with(503)
        assert (get(first.port, host="127.0.0.2"), get(first.port, host="127.0.0.3")) == (200, 503)
        up.remove("shop/web-1")
        assert "shop/web-1" not in [e.name for e in up.endpoints]
        with pytest.raises(ConnectionRefusedError):
            get(first.port, host="127.0.0.3")
