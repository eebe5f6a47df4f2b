"""Async, read-only client for Envoy admin interfaces.

One `AdminClient` serves many proxies: a semaphore bounds concurrent requests
across all of them, while connections are pooled per proxy (plain HTTP through
`_transport.KeepAliveTransport`, read without httpx's client layer; https through
one small httpx pool per origin; idle connections kept `keepalive_s`), so every sample of a gate
reuses the connections the first one opened instead of re-opening them against
hundreds of proxies. (One shared pool cannot do this: httpcore matches each
request against every pooled connection, which is quadratic at fleet size, and
its default keeps only 20 idle connections.) Each request has its own connect/read timeouts *and* a
total deadline (a server dribbling one byte a second never trips a read
timeout), bodies are streamed and cut at `max_body_bytes`, and only GET on the
read-only paths in `ALLOWED_PATHS` is possible. Connection failures are retried
(tenacity, a few short attempts: a proxy restarting is transient); timeouts and
bad answers are not, so the worst case stays bounded at about
`attempts * deadline`. All httpx errors are translated in `_translate()`.

Unit tests need no network: pass `transport=httpx.MockTransport(handler)` (every
read then goes through httpx's client with it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import ssl
import sys
import time
from collections.abc import AsyncIterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ._exceptions import (
    AdminBodyTooLarge,
    AdminDecodeError,
    AdminError,
    AdminPathNotAllowed,
    AdminStatusError,
    AdminTimeout,
    AdminUnreachable,
)
from ._transport import KeepAliveTransport, request_head

__all__ = ["AdminClient", "AdminResponse", "ALLOWED_PATHS", "ClientLimits", "limits_for"]

# httpcore runs `import sniffio` (optional, to tell asyncio from trio) for every lock and
# cancellation shield, ~6 times a request; without sniffio installed (anyio >= 4.11 no longer
# pulls it in) each failed import rescans sys.path, and that was ~15% of a steady gate sample
# (encode/httpcore discussion #1102, PR #1103). Record its absence once, as Python does for a
# blocked import: httpcore then falls back to asyncio at once, as it did after each failure.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

# Read-only endpoints of Envoy's admin port (15000) and Istio's agent ports
# (15020 merged Prometheus, 15021 health, 15090 Envoy Prometheus). Everything
# that mutates (/quitquitquit, /healthcheck/fail, /drain_listeners, /logging,
# /runtime_modify, /reset_counters, /cpuprofiler, /heapprofiler) is absent on purpose.
ALLOWED_PATHS = frozenset(
    {
        "/ready",
        "/server_info",
        "/stats",
        "/stats/prometheus",
        "/certs",
        "/clusters",
        "/listeners",
        "/config_dump",
        "/memory",
        "/runtime",
        "/healthz/ready",
    }
)

DEFAULT_MAX_BODY = 16 * 1024 * 1024  # a 500-cluster /stats/prometheus is ~6.4 MB
# Idle connections kept per proxy: one per read a sample makes at once. Kept longer than
# any sensible gate interval, so connections survive from one sample to the next.
DEFAULT_POOL_PER_PROXY = 8
_BACKOFF_S = 0.05  # before the second attempt; doubling after
_MAX_CACHED_URLS = 8192  # a few per proxy; cleared when full
_USER_AGENT = b"meshlift-checks"
DEFAULT_KEEPALIVE_S = 60.0
# Reads of one proxy a gate's client has in flight: a sample's first reads of a proxy go out
# together, and through port-forwards each extra connection costs a websocket handshake.
GATE_CONNECTIONS_PER_PROXY = 2

# How a gate's client grows with its targets. A steady sample makes about READS_PER_TARGET reads
# of each proxy; through an API-server port-forward each takes ROUND_TRIP_S or more, so finishing
# within one interval needs targets * READS_PER_TARGET * ROUND_TRIP_S / interval reads in flight.
# MAX_CONCURRENCY bounds the connections (and port-forward streams) open at once.
READS_PER_TARGET = 4
ROUND_TRIP_S = 0.05
MIN_CONCURRENCY, MAX_CONCURRENCY = 16, 512
# With hundreds of reads in flight on one event loop each read waits for the others' parsing, so
# per-read time limits grow with the targets too: TARGETS_PER_EXTRA_SECOND more targets, one more
# second, up to MAX_DEADLINE_S; never shorter than the interval (a sample may use its whole slot).
TARGETS_PER_EXTRA_SECOND = 250
MAX_DEADLINE_S = 30.0


@dataclass(frozen=True)
class ClientLimits:
    """Concurrency and per-read time limits of a client for a number of targets."""

    concurrency: int
    timeout: float
    deadline: float


def limits_for(targets: int, interval: float) -> ClientLimits:
    """The limits a gate of `targets` proxies sampled every `interval` seconds reads with.

    At 16 targets or fewer these are the client's defaults (16 reads in flight, a 2 s timeout,
    a 4 s deadline)."""
    wanted = math.ceil(targets * READS_PER_TARGET * ROUND_TRIP_S / max(interval, 0.001))
    concurrency = min(MAX_CONCURRENCY, max(MIN_CONCURRENCY, wanted))
    extra = targets // TARGETS_PER_EXTRA_SECOND
    timeout = min(MAX_DEADLINE_S / 2, max(2.0, interval) + extra / 2)
    deadline = min(MAX_DEADLINE_S, max(4.0, interval) + extra)
    return ClientLimits(concurrency, timeout, max(deadline, timeout))


@dataclass(frozen=True)
class AdminResponse:
    """A complete, size-checked answer."""

    url: str
    status: int
    body: bytes
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdminDecodeError(f"invalid JSON from {self.url}: {exc}", url=self.url) from exc


class AdminClient:
    """GET-only client for many admin interfaces; use as an async context manager."""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        deadline: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        concurrency: int = 16,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str | ssl.SSLContext = True,
        pool_per_proxy: int = DEFAULT_POOL_PER_PROXY,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        connections_per_proxy: int | None = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline if deadline is not None else 2 * timeout
        self.max_body_bytes = max_body_bytes
        self.attempts = max(1, attempts)
        self._semaphore = asyncio.Semaphore(concurrency)
        # Reads of one proxy in flight at once (None: as many as the client allows). Through a
        # port-forward every new connection is a new websocket to the API server (a TLS handshake
        # there and a stream to the node), so a gate reuses a few instead of opening one per read.
        self._per_proxy = connections_per_proxy
        self._proxy_slots: dict[str, asyncio.Semaphore] = {}
        self._options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout),
            "headers": dict(headers or {}),
            "follow_redirects": False,
            # One TLS context for every pool: building one loads the CA bundle (~20 ms each).
            "verify": httpx.create_ssl_context(verify=verify, trust_env=False),
            "trust_env": False,
            # The semaphore bounds requests in flight; a pool only keeps its proxy's connections.
            "limits": httpx.Limits(
                max_connections=None, max_keepalive_connections=pool_per_proxy, keepalive_expiry=keepalive_s
            ),
        }
        # A caller's transport (tests: httpx.MockTransport) does its own pooling: one client for all.
        # Otherwise plain-HTTP admin ports (local Envoys, port-forwards) are read through our lean
        # keep-alive transport directly (`KeepAliveTransport.fetch`), and https (the API server's
        # pod proxy) through httpx's own.
        self._shared = httpx.AsyncClient(transport=transport, **self._options) if transport is not None else None
        self._keepalive = (KeepAliveTransport(per_origin=pool_per_proxy, keepalive_s=keepalive_s)
                           if transport is None else None)
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        self._pools: dict[str, httpx.AsyncClient] = {}
        # Parsed request URLs (and, for plain HTTP, request heads): httpx re-parses and re-quotes the
        # ~400-character stats filter character by character on every request; a gate asks the same
        # few URLs every sample.
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._heads: dict[httpx.URL, tuple[tuple[str, int], bytes]] = {}

    @classmethod
    def for_targets(cls, targets: int, interval: float, **options: Any) -> AdminClient:
        """A client whose concurrency and time limits suit `targets` proxies sampled every `interval` s."""
        limits = limits_for(targets, interval)
        options.setdefault("connections_per_proxy", GATE_CONNECTIONS_PER_PROXY)
        return cls(concurrency=limits.concurrency, timeout=limits.timeout, deadline=limits.deadline, **options)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients = [*self._pools.values(), *((self._shared,) if self._shared is not None else ())]
        self._pools.clear()
        await asyncio.gather(*(c.aclose() for c in clients))
        if self._keepalive is not None:
            await self._keepalive.aclose()

    def _http(self, url: str) -> httpx.AsyncClient:
        """The httpx client (and connection pool) of `url`'s origin."""
        if self._shared is not None:
            return self._shared
        origin = _origin(url)
        client = self._pools.get(origin)
        if client is None:
            client = self._pools[origin] = httpx.AsyncClient(**self._options)
        return client

    async def get(
        self,
        base_url: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        ok_statuses: tuple[int, ...] = (200,),
    ) -> AdminResponse:
        """GET `base_url + path`; raise an `AdminError` unless the status is in `ok_statuses`."""
        url = _join(base_url, path)
        try:
            response = await self._get_once(url, params)
        except AdminUnreachable:
            if self.attempts == 1:
                raise
            response = await self._retry(url, params)
        if response.status not in ok_statuses:
            raise AdminStatusError(
                f"GET {path} answered HTTP {response.status}: {response.text[:200]!r}",
                url=url,
                status=response.status,
            )
        return response

    async def _retry(self, url: str, params: Mapping[str, str] | None) -> AdminResponse:
        """Attempts 2..`attempts` after a connection failure (the first one is made without tenacity's
        per-call set-up: it is the only one almost every request needs)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts - 1),
            # The back-off of one loop over all attempts: 0.05 s, then 0.1 s, 0.2 s, ... up to 0.5 s.
            wait=wait_exponential(multiplier=2 * _BACKOFF_S, max=0.5),
            retry=retry_if_exception_type(AdminUnreachable),
            reraise=True,
        )
        await asyncio.sleep(_BACKOFF_S)
        async for attempt in retrying:
            with attempt:
                return await self._get_once(url, params)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def get_json(self, base_url: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self.get(base_url, path, params)).json()

    async def _get_once(self, url: str, params: Mapping[str, str] | None) -> AdminResponse:
        if self._per_proxy is None:
            return await self._get_in_turn(url, params)
        origin = _origin(url)
        slots = self._proxy_slots.get(origin)
        if slots is None:
            slots = self._proxy_slots[origin] = asyncio.Semaphore(self._per_proxy)
        async with slots:  # waited for before a slot of the whole client is taken, and before the deadline
            return await self._get_in_turn(url, params)

    async def _get_in_turn(self, url: str, params: Mapping[str, str] | None) -> AdminResponse:
        async with self._semaphore:
            started = time.monotonic()
            with _translate(url):
                try:
                    async with asyncio.timeout(self.deadline):
                        return await self._read(url, params, started)
                except TimeoutError as exc:
                    raise AdminTimeout(
                        f"no complete answer from {url} within {self.deadline:g}s", url=url
                    ) from exc

    async def _read(self, url: str, params: Mapping[str, str] | None, started: float) -> AdminResponse:
        key = (url, tuple(params.items()) if params else ())
        target = self._urls.get(key)
        if target is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
                self._heads.clear()
            target = self._urls[key] = httpx.URL(url, params=params)
        if self._keepalive is not None and url.startswith("http://"):
            origin, head = self._plain_request(target)
            answer = await self._keepalive.fetch(origin, head, self._timeouts)
            try:
                return await self._collect(url, answer.status, answer.header(b"content-length"), answer.body, started)
            finally:
                await answer.body.aclose()  # a body left unread (over the cap) closes its connection
        async with self._http(url).stream("GET", target) as response:
            declared = response.headers.get("content-length")
            return await self._collect(url, response.status_code, declared, response.aiter_bytes(), started)

    def _plain_request(self, target: httpx.URL) -> tuple[tuple[str, int], bytes]:
        """Where a plain-HTTP GET of `target` goes, and its request head (built once per URL)."""
        known = self._heads.get(target)
        if known is None:
            port = target.port or 80
            host = target.raw_host + (b":%d" % port if target.port else b"")
            headers = [(b"Host", host), (b"Accept", b"*/*"), (b"User-Agent", _USER_AGENT), *self._extra_headers]
            known = self._heads[target] = ((target.host, port), request_head("GET", target, headers))
        return known

    async def _collect(self, url: str, status: int, declared: str | bytes | None, chunks: AsyncIterable[bytes],
                       started: float) -> AdminResponse:
        """The body, read to its end unless it declares or sends more than `max_body_bytes`."""
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise AdminBodyTooLarge(
                f"{url} declares {int(declared)} bytes, above the {self.max_body_bytes}-byte cap", url=url
            )
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_body_bytes:
                raise AdminBodyTooLarge(f"{url} sent more than {self.max_body_bytes} bytes; stopped reading", url=url)
            parts.append(chunk)
        return AdminResponse(url, status, b"".join(parts), time.monotonic() - started)


def _origin(url: str) -> str:
    """`scheme://host:port` of a URL `_join` made (it always has a path)."""
    return url[: url.find("/", url.find("//") + 2)]


def _join(base_url: str, path: str) -> str:
    if path not in ALLOWED_PATHS:
        raise AdminPathNotAllowed(f"{path!r} is not a read-only admin path we may call", url=base_url)
    if not base_url.startswith(("http://", "https://")):
        raise AdminPathNotAllowed(f"{base_url!r} is not an http(s) URL", url=base_url)
    return base_url.rstrip("/") + path


@contextmanager
def _translate(url: str) -> Iterator[None]:
    """The one place where httpx errors become ours."""
    try:
        yield
    except AdminError:
        raise
    except httpx.TimeoutException as exc:
        raise AdminTimeout(f"timed out talking to {url}: {type(exc).__name__}", url=url) from exc
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
        raise AdminUnreachable(f"cannot connect to {url}: {exc or type(exc).__name__}", url=url) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.DecodingError) as exc:
        # The peer answered something, then broke off or spoke non-HTTP.
        raise AdminDecodeError(f"broken answer from {url}: {exc or type(exc).__name__}", url=url) from exc
    except httpx.HTTPError as exc:
        raise AdminUnreachable(f"request to {url} failed: {exc or type(exc).__name__}", url=url) from exc
    except OSError as exc:
        raise AdminUnreachable(f"cannot reach {url}: {exc}", url=url) from exc
