"""The admin client: read-only allowlist, size cap, error translation, retries, concurrency."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from checks import (
    ALLOWED_PATHS,
    AdminBodyTooLarge,
    AdminClient,
    AdminDecodeError,
    AdminPathNotAllowed,
    AdminStatusError,
    AdminTimeout,
    AdminUnreachable,
)
from checks.client import GATE_CONNECTIONS_PER_PROXY

BASE = "http://proxy.test:15000"


def client_for(handler, **kw) -> AdminClient:
    return AdminClient(transport=httpx.MockTransport(handler), **kw)


@pytest.mark.parametrize(
    "path", ["/quitquitquit", "/healthcheck/fail", "/drain_listeners", "/logging", "/runtime_modify", "/stats/../quitquitquit"]
)
async def test_mutating_paths_are_refused_before_any_request(path: str) -> None:
    sent: list[httpx.Request] = []
    async with client_for(lambda r: sent.append(r) or httpx.Response(200)) as client:
        with pytest.raises(AdminPathNotAllowed):
            await client.get(BASE, path)
    assert sent == []


async def test_every_request_is_a_get_on_an_allowed_path() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(200, json={"version": "x/1.40.0/Clean", "stats": [], "certificates": [], "configs": []})

    async with client_for(handler) as client:
        for path in sorted(ALLOWED_PATHS):
            await client.get(BASE, path)
    assert {m for m, _ in seen} == {"GET"}
    assert {p for _, p in seen} == set(ALLOWED_PATHS)


async def test_unexpected_status_is_a_status_error_with_the_code() -> None:
    async with client_for(lambda r: httpx.Response(500, text="upstream connect error")) as client:
        with pytest.raises(AdminStatusError) as info:
            await client.get(BASE, "/server_info")
    assert info.value.status == 500 and info.value.kind == "bad-status"


async def test_503_is_accepted_where_the_caller_expects_it() -> None:
    async with client_for(lambda r: httpx.Response(503, text="DRAINING\n")) as client:
        response = await client.get(BASE, "/ready", ok_statuses=(200, 503))
    assert (response.status, response.text.strip()) == (503, "DRAINING")


async def test_invalid_json_is_a_decode_error() -> None:
    async with client_for(lambda r: httpx.Response(200, content=b'{"stats": [')) as client:
        with pytest.raises(AdminDecodeError):
            await client.get_json(BASE, "/stats")


async def test_declared_oversized_body_is_refused_without_reading_it() -> None:
    async with client_for(lambda r: httpx.Response(200, headers={"content-length": "5000"}, content=b"x" * 5000), max_body_bytes=1000) as client:
        with pytest.raises(AdminBodyTooLarge, match="declares 5000"):
            await client.get(BASE, "/stats/prometheus")


async def test_streamed_body_is_cut_at_the_cap() -> None:
    produced = 0

    async def endless():
        nonlocal produced
        for _ in range(1000):
            produced += 1024
            yield b"y" * 1024

    async with client_for(lambda r: httpx.Response(200, content=endless()), max_body_bytes=10_000) as client:
        with pytest.raises(AdminBodyTooLarge, match="more than 10000"):
            await client.get(BASE, "/stats/prometheus")
    assert produced < 20_000  # stopped reading, did not drain the stream


async def test_connection_refused_is_retried_then_succeeds() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, text="LIVE")

    async with client_for(handler, attempts=3) as client:
        response = await client.get(BASE, "/ready")
    assert response.text == "LIVE" and attempts == 3


async def test_persistent_refusal_ends_as_unreachable_after_the_attempts() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(handler, attempts=2) as client:
        with pytest.raises(AdminUnreachable):
            await client.get(BASE, "/ready")
    assert attempts == 2


async def test_timeouts_are_not_retried() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ReadTimeout("slow", request=request)

    async with client_for(handler, attempts=3) as client:
        with pytest.raises(AdminTimeout):
            await client.get(BASE, "/ready")
    assert attempts == 1


async def test_broken_connection_mid_answer_is_a_decode_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body", request=request)

    async with client_for(handler) as client:
        with pytest.raises(AdminDecodeError):
            await client.get(BASE, "/server_info")


async def test_concurrency_is_bounded_across_proxies() -> None:
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return httpx.Response(200, text="LIVE")

    async with client_for(handler, concurrency=3) as client:
        await asyncio.gather(*(client.get(f"http://p{i}.test:15000", "/ready") for i in range(12)))
    assert peak == 3


async def test_base_url_with_a_path_prefix_keeps_it() -> None:
    seen: list[str] = []
    async with client_for(lambda r: seen.append(str(r.url)) or httpx.Response(200, text="LIVE")) as client:
        await client.get("https://apiserver.test/api/v1/namespaces/a/pods/b:15000/proxy/", "/ready")
    assert seen == ["https://apiserver.test/api/v1/namespaces/a/pods/b:15000/proxy/ready"]


async def test_connections_to_a_large_fleet_are_kept_alive_from_one_sample_to_the_next() -> None:
    """Beyond httpx's default pool (20 idle connections), every proxy keeps its connection."""
    accepted: dict[int, int] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        accepted[port] = accepted.get(port, 0) + 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nLIVE")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(serve, "127.0.0.1", 0) for _ in range(40)]
    bases = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers]
    try:
        async with AdminClient(concurrency=8) as client:
            for _ in range(3):  # three samples over the whole fleet
                answers = await asyncio.gather(*(client.get(base, "/ready") for base in bases))
                assert {a.text for a in answers} == {"LIVE"}
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert len(accepted) == 40
    assert set(accepted.values()) == {1}, sorted(accepted.values())


def test_a_gate_client_grows_its_reads_in_flight_and_time_limits_with_its_targets() -> None:
    from checks.client import MAX_CONCURRENCY, MAX_DEADLINE_S, limits_for

    small, fleet, mesh = limits_for(16, 1.0), limits_for(400, 1.0), limits_for(2000, 1.0)
    default = AdminClient()
    assert (small.concurrency, small.timeout, small.deadline) == (16, default.timeout, default.deadline)
    assert fleet.concurrency == 80 and (fleet.timeout, fleet.deadline) == (2.5, 5.0)
    assert mesh.concurrency == 400 and (mesh.timeout, mesh.deadline) == (6.0, 12.0)
    # A longer interval leaves more time per sample: fewer reads in flight, limits at least the interval.
    slow = limits_for(2000, 10.0)
    assert slow.concurrency == 40 and slow.deadline >= 10.0
    huge = limits_for(100_000, 0.1)
    assert huge.concurrency == MAX_CONCURRENCY and huge.deadline == MAX_DEADLINE_S


async def test_a_client_made_for_targets_applies_those_limits() -> None:
    async with AdminClient.for_targets(2000, 1.0) as client:
        assert (client.timeout, client.deadline) == (6.0, 12.0)
        assert client._semaphore._value == 400


async def test_a_gates_client_keeps_a_few_reads_of_each_proxy_in_flight_and_the_proxies_in_parallel() -> None:
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] = in_flight.get(host, 0) + 1
        most[host] = max(most.get(host, 0), in_flight[host])
        await asyncio.sleep(0.02)
        in_flight[host] -= 1
        return httpx.Response(200, text="LIVE")

    async with AdminClient.for_targets(2, 1.0, transport=httpx.MockTransport(handler)) as client:
        await asyncio.gather(*(client.get(f"http://{host}:15000", "/ready")
                               for host in ("10.0.0.1", "10.0.0.2") for _ in range(6)))
    assert most == {"10.0.0.1": GATE_CONNECTIONS_PER_PROXY, "10.0.0.2": GATE_CONNECTIONS_PER_PROXY}
