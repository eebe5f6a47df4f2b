"""Port-forwards relayed by one event loop: bytes both ways, a failed stream is a closed connection,
and a thousand forwards cost no thread each."""

from __future__ import annotations

import asyncio
import socket
import threading

from checks.portforward import PortForward


class EchoStream:
    """The pod side of one connection: answers every request with its bytes upper-cased, then ends
    when told to (as a server closing the connection does)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._answers: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        await self._answers.put(data.upper())
        if data == b"bye":
            await self._answers.put(None)

    async def __aiter__(self):
        while (answer := await self._answers.get()) is not None:
            yield answer

    async def close(self) -> None:
        self.closed = True


def _connect(forward: PortForward) -> socket.socket:
    host, port = forward.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_bytes_cross_both_ways_and_the_pod_side_ending_ends_the_connection() -> None:
    streams: list[tuple[tuple[str, str, int], EchoStream]] = []

    async def open_stream(configuration, namespace, pod, port):
        stream = EchoStream()
        streams.append(((namespace, pod, port), stream))
        return stream

    with PortForward(object(), "shop", "web-1", open_stream=open_stream) as forward:
        with _connect(forward) as connection:
            connection.sendall(b"hello")
            assert connection.recv(100) == b"HELLO"
            connection.sendall(b"bye")
            assert connection.recv(100) == b"BYE"
            assert connection.recv(100) == b""  # the pod side ended: the client sees the end
    [(opened, stream)] = streams
    assert opened == ("shop", "web-1", 15000) and stream.sent == [b"hello", b"bye"]


def test_a_stream_that_cannot_be_opened_is_a_closed_connection() -> None:
    async def refused(configuration, namespace, pod, port):
        raise ConnectionRefusedError("the API server said no")

    with PortForward(object(), "shop", "web-1", open_stream=refused) as forward:
        with _connect(forward) as connection:
            connection.sendall(b"GET /ready HTTP/1.1\r\n\r\n")
            assert connection.recv(100) == b""


def test_a_thousand_forwards_add_no_thread_each_and_close_at_once() -> None:
    async def open_stream(configuration, namespace, pod, port):
        return EchoStream()

    forwards = [PortForward(object(), "shop", f"web-{i}", open_stream=open_stream) for i in range(1000)]
    before = threading.active_count()
    for forward in forwards:
        forward.__enter__()
    assert threading.active_count() <= before + 1  # the relay's one thread, the first time
    with _connect(forwards[-1]) as connection:
        connection.sendall(b"ping")
        assert connection.recv(100) == b"PING"
    for forward in forwards:
        forward.__exit__(None, None, None)
