"""The lean keep-alive transport against small scripted HTTP servers on loopback:
framing (length, chunked, until close), connection reuse, and stale connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from checks import AdminBodyTooLarge, AdminClient, AdminDecodeError, AdminTimeout
from checks._transport import KeepAliveTransport

Answer = Callable[[bytes], Awaitable[bytes | None]]  # request head -> raw answer (None: hang up)


class Server:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                raw = await self.answer(head)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answer)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    try:
        yield server, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()


def fixed(body: bytes, *extra: bytes) -> Answer:
    async def answer(_: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), b"".join(e + b"\r\n" for e in extra), body)
    return answer


async def test_requests_reuse_one_connection_and_send_a_plain_get() -> None:
    async with serving(fixed(b"LIVE")) as (server, base), AdminClient() as client:
        texts = [(await client.get(base, "/ready")).text for _ in range(5)]
        stats = await client.get(base, "/stats", {"format": "json", "filter": r"^server\.(uptime|version)$"})
    assert texts == ["LIVE"] * 5 and stats.text == "LIVE"
    assert server.connections == 1
    assert all(h.startswith(b"GET /") for h in server.heads)
    assert server.heads[-1].startswith(b"GET /stats?format=json&filter=%5Eserver%5C.%28uptime%7Cversion%29%24 HTTP/1.1")
    assert b"\r\nhost: 127.0.0.1:" in server.heads[0].lower()


async def test_chunked_bodies_are_decoded_and_the_connection_reused() -> None:
    async def answer(_: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\n{\"sta\r\n7;ext=1\r\nts\": []\r\n1\r\n}\r\n0\r\nx-trailer: 1\r\n\r\n")

    async with serving(answer) as (server, base), AdminClient() as client:
        bodies = [(await client.get_json(base, "/stats")) for _ in range(2)]
    assert bodies == [{"stats": []}] * 2 and server.connections == 1


async def test_a_body_that_ends_with_the_connection_is_read_to_the_end_and_not_reused() -> None:
    async with serving(lambda _: _async(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nLIVE")) as (server, base):
        async with AdminClient() as client:
            texts = [(await client.get(base, "/ready")).text for _ in range(2)]
    assert texts == ["LIVE", "LIVE"] and server.connections == 2


async def test_an_idle_connection_the_server_dropped_is_replaced_not_an_error() -> None:
    served = 0

    async def answer(_: bytes) -> bytes | None:
        nonlocal served
        served += 1
        if served == 2:
            return None  # hang up on the second request: as a server closing an idle connection
        return b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nLIVE"

    async with serving(answer) as (server, base), AdminClient() as client:
        first = await client.get(base, "/ready")
        second = await client.get(base, "/ready")
    assert (first.text, second.text) == ("LIVE", "LIVE")
    assert server.connections == 2


async def test_a_short_body_is_a_decode_error_and_never_reused() -> None:
    async def answer(_: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"stats\""

    async def short_then_hang_up(head: bytes) -> bytes | None:
        raw = await answer(head)
        return raw

    async with serving(short_then_hang_up) as (server, base), AdminClient(timeout=0.3) as client:
        with pytest.raises((AdminDecodeError, AdminTimeout)):
            await client.get(base, "/stats")
        # The connection with a half-read body is not handed to the next request.
        with pytest.raises((AdminDecodeError, AdminTimeout)):
            await client.get(base, "/stats")
    assert server.connections == 2


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
])
async def test_answers_that_are_not_http_are_decode_errors(raw: bytes) -> None:
    async with serving(lambda _: _async(raw + b"connection: close")) as (_, base), AdminClient() as client:
        with pytest.raises(AdminDecodeError):
            await client.get(base, "/ready")


async def test_https_is_left_to_httpx() -> None:
    transport = KeepAliveTransport()
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "https://proxy.test:15000/ready"))
    await transport.aclose()


async def _async(value: bytes) -> bytes:
    return value


async def test_an_http_1_0_answer_closes_its_connection_unless_kept_alive() -> None:
    async with serving(lambda _: _async(b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nLIVE")) as (server, base):
        async with AdminClient() as client:
            texts = [(await client.get(base, "/ready")).text for _ in range(2)]
    assert texts == ["LIVE", "LIVE"] and server.connections == 2


async def test_a_body_over_the_cap_stops_the_read_and_its_connection_is_not_reused() -> None:
    async def answer(head: bytes) -> bytes:
        if head.startswith(b"GET /stats/prometheus"):  # sent in chunks: no size known up front
            chunk = b"%x\r\n%s\r\n" % (1024, b"y" * 1024)
            return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunk * 64 + b"0\r\n\r\n"
        if head.startswith(b"GET /config_dump"):
            return b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000
        return b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nLIVE"

    async with serving(answer) as (server, base), AdminClient(max_body_bytes=4000) as client:
        with pytest.raises(AdminBodyTooLarge, match="declares 5000 bytes"):
            await client.get(base, "/config_dump")
        with pytest.raises(AdminBodyTooLarge, match="more than 4000 bytes"):
            await client.get(base, "/stats/prometheus")
        assert (await client.get(base, "/ready")).text == "LIVE"
    # Each unread body closed its connection: the next read could not have started mid-body.
    assert server.connections == 3


async def test_a_clients_headers_go_with_every_plain_http_read_and_the_head_is_the_same_each_time() -> None:
    async with serving(fixed(b"LIVE")) as (server, base), AdminClient(headers={"X-Meshlift-Gate": "wave-1"}) as client:
        for _ in range(2):
            await client.get(base, "/ready")
    first, second = server.heads
    assert first == second
    assert first.startswith(b"GET /ready HTTP/1.1\r\n")
    assert b"\r\nX-Meshlift-Gate: wave-1\r\n" in first and b"\r\nAccept: */*\r\n" in first
