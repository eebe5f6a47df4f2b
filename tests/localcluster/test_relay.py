"""The relay between one sidecar and its istiod: bytes pass both ways; a cut severs that one path."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from localcluster.relay import Relay


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def _round_trip(address: tuple[str, int], payload: bytes = b"xds") -> bytes:
    with socket.create_connection(address, timeout=2) as conn:
        conn.sendall(payload)
        return conn.recv(1024)


def _closed_by_peer(conn: socket.socket) -> bool:
    try:
        return conn.recv(16) == b""
    except ConnectionResetError:
        return True


def test_bytes_pass_both_ways_to_the_current_target(echo) -> None:
    with Relay(lambda: echo) as relay:
        assert _round_trip(relay.address) == b"xds"


def test_a_cut_drops_open_streams_and_refuses_new_ones_until_restored(echo) -> None:
    with Relay(lambda: echo) as relay:
        stream = socket.create_connection(relay.address, timeout=2)
        stream.sendall(b"a")
        assert stream.recv(16) == b"a"
        relay.cut()
        assert _closed_by_peer(stream), "the open stream is closed by the cut"
        stream.close()
        with socket.create_connection(relay.address, timeout=2) as refused:
            refused.sendall(b"b")
            assert _closed_by_peer(refused), "a new connection is closed at once"
        relay.restore()
        assert _round_trip(relay.address, b"c") == b"c"


def test_no_target_means_the_connection_is_closed(echo) -> None:
    with Relay(lambda: None) as relay, socket.create_connection(relay.address, timeout=2) as conn:
        assert _closed_by_peer(conn)


def test_a_target_that_cannot_be_found_refuses_that_connection_and_the_relay_goes_on(echo) -> None:
    answers = iter([ConnectionRefusedError("the API server is restarting")])

    def target() -> tuple[str, int]:
        error = next(answers, None)
        if error is not None:
            raise error
        return echo

    with Relay(target) as relay:
        with socket.create_connection(relay.address, timeout=2) as refused:
            refused.sendall(b"a")
            assert _closed_by_peer(refused), "no istiod to reach: closed, as on a severed network"
        assert _round_trip(relay.address) == b"xds", "the next connection reaches istiod again"
