"""A lean httpx transport for plain-HTTP admin interfaces: HTTP/1.1 over asyncio streams.

httpx's default transport (httpcore + anyio + h11) costs about a millisecond of
Python per request, which is most of a gate sample over hundreds of proxies. An
admin read is simple: a GET, a status line, a few headers, a body framed by
`Content-Length`, chunked encoding, or the end of the connection. This transport
does exactly that and keeps idle connections per origin for the next sample.

It speaks httpx's language both ways: it receives an `httpx.Request` and returns
an `httpx.Response` whose body streams (so the client's size cap stops reading),
and raises httpx's own exceptions (`ConnectError`, `ConnectTimeout`,
`ReadTimeout`, `WriteTimeout`, `RemoteProtocolError`, `ReadError`), which
`client._translate` turns into ours. `https://` is not handled here: the client
sends it through httpx's default transport.

`fetch` is the same exchange without httpx's objects: a request head built once
per URL and the answer's status, headers and body stream. The admin client
reads plain-HTTP admin ports through it: httpx's client layer (request
building, header merging, cookies, response wrapping) cost as much Python per
read as the exchange itself, and a GET of a fixed URL needs none of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import NamedTuple

import httpx

__all__ = ["Answer", "KeepAliveTransport", "request_head"]

_MAX_HEAD = 64 * 1024  # status line and headers
_READ_SIZE = 256 * 1024


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()

    @property
    def usable(self) -> bool:
        # An idle connection the server closed has its EOF already seen by the event loop.
        return not self.reader.at_eof() and not self.writer.is_closing()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """GET over HTTP/1.1, keeping up to `per_origin` idle connections per origin for `keepalive_s`."""

    def __init__(self, *, per_origin: int = 8, keepalive_s: float = 60.0) -> None:
        self._per_origin = per_origin
        self._keepalive_s = keepalive_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} is not plain HTTP", request=request)
        answer = await self.fetch((url.host, url.port or 80), _request_head(request),
                                  request.extensions.get("timeout", {}), request)
        return httpx.Response(answer.status, headers=answer.headers, stream=answer.body, request=request)

    async def fetch(self, origin: tuple[str, int], head: bytes, timeouts: Mapping[str, float | None],
                    request: httpx.Request | None = None) -> Answer:
        """Send `head` (a whole GET request head) to `origin`; the answer's body streams.

        `timeouts` as httpx's request extension has them (`connect`, `read`, `write`);
        `request`, when there is one, is named by the httpx exceptions raised."""
        conn = self._take(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, origin, head, request, timeouts)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not getattr(exc, "before_answer", False):
                    raise
                # The server closed this idle connection as we reused it: once more on a new one.
        conn = await self._connect(origin, request, timeouts.get("connect"))
        return await self._exchange(conn, origin, head, request, timeouts)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _take(self, origin: tuple[str, int]) -> _Connection | None:
        conns = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while conns:
            conn = conns.pop()
            if conn.usable and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.close()
        return None

    def _give_back(self, origin: tuple[str, int], conn: _Connection) -> None:
        conns = self._idle.setdefault(origin, [])
        if len(conns) >= self._per_origin or not conn.usable:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conns.append(conn)

    async def _connect(self, origin: tuple[str, int], request: httpx.Request | None, timeout: float | None
                       ) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*origin, limit=_MAX_HEAD)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {origin[0]}:{origin[1]} timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, conn: _Connection, origin: tuple[str, int], head: bytes, request: httpx.Request | None,
        timeouts: Mapping[str, float | None],
    ) -> Answer:
        read_timeout = timeouts.get("read")
        try:
            try:
                conn.writer.write(head)
                async with asyncio.timeout(timeouts.get("write")):
                    await conn.writer.drain()
            except TimeoutError as exc:
                raise httpx.WriteTimeout("sending the request timed out", request=request) from exc
            except OSError as exc:
                raise _before_answer(httpx.WriteError(str(exc) or type(exc).__name__, request=request)) from exc
            version, status, headers = await _read_head(conn.reader, request, read_timeout)
        except BaseException:
            conn.close()
            raise
        body = _body(conn, status, headers, request, read_timeout)
        reusable = _keep_alive(version, headers)
        stream = _BodyStream(body, on_complete=lambda: self._give_back(origin, conn) if reusable else conn.close(),
                             on_abandon=conn.close)
        return Answer(status, headers, stream)


class Answer(NamedTuple):
    """An answer's status, header lines as sent, and body (read it to the end, or `aclose` it)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: _BodyStream

    def header(self, name: bytes) -> bytes | None:
        """The last value of header `name` (lower case), None when absent."""
        return next((v for k, v in reversed(self.headers) if k.lower() == name), None)


class _BodyStream(httpx.AsyncByteStream):
    """The response body; hands the connection back once read to the end, closes it otherwise."""

    def __init__(self, chunks: AsyncIterator[bytes], *, on_complete, on_abandon) -> None:  # type: ignore[no-untyped-def]
        self._chunks = chunks
        self._on_complete = on_complete
        self._on_abandon = on_abandon
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except BaseException:
            self._finish(complete=False)
            raise
        self._finish(complete=True)

    async def aclose(self) -> None:
        self._finish(complete=False)

    def _finish(self, *, complete: bool) -> None:
        if not self._done:
            self._done = True
            (self._on_complete if complete else self._on_abandon)()


def _request_head(request: httpx.Request) -> bytes:
    return request_head(request.method, request.url, request.headers.raw)


def request_head(method: str, url: httpx.URL, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The HTTP/1.1 head of a request without a body: `headers` must hold `Host`."""
    target = url.raw_path  # path and query, already percent-encoded
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target)]
    lines += [b"%s: %s" % (name, value) for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _before_answer(exc: httpx.TransportError) -> httpx.TransportError:
    exc.before_answer = True  # type: ignore[attr-defined]
    return exc


@asynccontextmanager
async def _reading(request: httpx.Request | None, timeout: float | None) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        raise httpx.ReadTimeout("reading the answer timed out", request=request) from exc
    except (ConnectionError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


async def _read_head(reader: asyncio.StreamReader, request: httpx.Request | None, timeout: float | None
                     ) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    try:
        async with _reading(request, timeout):
            raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        error = httpx.RemoteProtocolError("server disconnected without sending a complete answer", request=request)
        raise (_before_answer(error) if not exc.partial else error) from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("answer head too long", request=request) from exc
    except httpx.ReadError as exc:
        raise _before_answer(exc)
    status_line, *header_lines = raw[:-4].split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x answer: {status_line[:40]!r}", request=request)
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line {line[:40]!r}", request=request)
        headers.append((name, value.strip()))
    return version, int(code), headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    found = [v for k, v in headers if k.lower() == name]
    if len(found) > 1 and name == b"content-length" and len(set(found)) > 1:
        raise ValueError("conflicting Content-Length headers")
    return found[-1] if found else None


def _keep_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    connection = (_header(headers, b"connection") or b"").lower()
    if version == b"HTTP/1.0":  # closes after each answer unless it says otherwise
        return b"keep-alive" in connection
    return b"close" not in connection


async def _body(conn: _Connection, status: int, headers: list[tuple[bytes, bytes]], request: httpx.Request | None,
                timeout: float | None) -> AsyncIterator[bytes]:
    reader = conn.reader
    if status in (204, 304) or 100 <= status < 200:
        return
    encoding = _header(headers, b"transfer-encoding")
    if encoding is not None and b"chunked" in encoding.lower():
        async for chunk in _chunked(reader, request, timeout):
            yield chunk
        return
    try:
        declared = _header(headers, b"content-length")
    except ValueError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    if declared is None:  # the body ends with the connection
        while True:
            async with _reading(request, timeout):
                data = await reader.read(_READ_SIZE)
            if not data:
                return
            yield data
    if not declared.isdigit():
        raise httpx.RemoteProtocolError(f"bad Content-Length {declared[:20]!r}", request=request)
    left = int(declared)
    while left:
        async with _reading(request, timeout):
            data = await reader.read(min(left, _READ_SIZE))
        if not data:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({left} bytes missing)", request=request
            )
        left -= len(data)
        yield data


async def _chunked(reader: asyncio.StreamReader, request: httpx.Request | None, timeout: float | None) -> AsyncIterator[bytes]:
    try:
        while True:
            async with _reading(request, timeout):
                size_line = await reader.readuntil(b"\r\n")
            size_text = size_line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}", request=request) from exc
            if size == 0:
                async with _reading(request, timeout):
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                return
            left = size
            while left:
                async with _reading(request, timeout):
                    data = await reader.read(min(left, _READ_SIZE))
                if not data:
                    raise httpx.RemoteProtocolError("peer closed connection in a chunk", request=request)
                left -= len(data)
                yield data
            async with _reading(request, timeout):
                if await reader.readexactly(2) != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk not followed by CRLF", request=request)
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("peer closed connection in a chunked body", request=request) from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("chunk size line too long", request=request) from exc
