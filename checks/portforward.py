"""Port-forwards to pods through the API server, every one relayed by one event loop.

`PortForward` opens a local 127.0.0.1 listener for one pod port; each connection
to it becomes a websocket to the API server's `pods/portforward` (what `kubectl
port-forward` does; needs the `create` verb on `pods/portforward`). Kubernetes
frames every websocket message with a channel byte (per forwarded port, data on
an even channel and errors on the next); the first message of each channel
carries only the port number.

One daemon thread runs one asyncio loop that accepts and relays for every
forward of the process, with aiohttp's websocket client (aiohttp is already a
dependency of the Kubernetes client). A gate reads a thousand pods at once, and
threads did not scale to that: a thread per listener and per connection (a
thousand accept loops waking every 0.1 s to notice their close) took a quarter
of a core while idle and kept the gate's own event loop waiting for the
interpreter lock, so a sample over 1,000 pods took 8 s of which the reads were
a fraction. The Kubernetes client's own port-forward is no way out either: it
multiplexes with `select()`, which fails once a process holds more than 1,024
descriptors.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

__all__ = ["PortForward", "PodStream", "open_pod_stream", "ChannelWebsocket"]

ADMIN_PORT = 15000
# The subprotocols the Kubernetes client offers for port-forwards, newest first.
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
OPEN_TIMEOUT_S = 10.0  # the websocket handshake; the admin client's own deadline bounds the read
_READ_SIZE = 65536
_DATA_CHANNEL, _ERROR_CHANNEL = 0, 1


class PodStream(Protocol):
    """The bytes of one connection to a pod port: sent as they come, received until the pod side ends."""

    async def send(self, data: bytes) -> None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class ChannelWebsocket:
    """A `PodStream` over a port-forward websocket (anything with `send_bytes`, `close` and async iteration
    over messages that have `type` and `data`, as aiohttp's are)."""

    def __init__(self, websocket: Any) -> None:
        self._websocket = websocket
        self.error = ""

    async def send(self, data: bytes) -> None:
        await self._websocket.send_bytes(b"\x00" + data)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        from aiohttp import WSMsgType

        opened: set[int] = set()
        async for message in self._websocket:
            if message.type is not WSMsgType.BINARY or not message.data:
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel not in opened:
                opened.add(channel)  # the port number, once per channel
                continue
            if channel == _ERROR_CHANNEL:
                self.error += bytes(payload).decode(errors="replace")
                return
            if channel == _DATA_CHANNEL and payload:
                yield bytes(payload)

    async def close(self) -> None:
        await self._websocket.close()


OpenStream = Callable[[Any, str, str, int], Awaitable[PodStream]]


async def open_pod_stream(configuration: Any, namespace: str, pod: str, port: int) -> PodStream:
    """A port-forward websocket to `pod`'s `port`, opened with the API client's configuration
    (server, credentials, CA, proxy) on the relay's loop."""
    import aiohttp

    url = f"{configuration.host}/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports={port}"
    headers = {setting["key"]: setting["value"] for setting in configuration.auth_settings().values()
               if setting.get("in") == "header" and setting.get("value")}
    websocket = await _relay().session().ws_connect(
        "ws" + url[len("http"):] if url.startswith("http") else url,
        protocols=CHANNEL_PROTOCOLS, headers=headers, ssl=_tls(configuration),
        server_hostname=configuration.tls_server_name or None, proxy=configuration.proxy or None,
        proxy_headers=configuration.proxy_headers or None, autoping=True, heartbeat=None, compress=0,
        max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0))
    return ChannelWebsocket(websocket)


def _tls(configuration: Any) -> ssl.SSLContext | bool:
    """The TLS settings the Kubernetes client's own websockets use (`kubernetes.stream.ws_client`)."""
    if not configuration.host.startswith("https"):
        return False
    return _tls_context(bool(configuration.verify_ssl), configuration.ssl_ca_cert, configuration.assert_hostname,
                        configuration.cert_file, configuration.key_file)


# One context per set of settings for the process, as the Kubernetes client keeps one per ApiClient:
# a gate's first sample opens hundreds of websockets, and building a context loads the CA file.
@functools.lru_cache(maxsize=16)
def _tls_context(verify: bool, ca_file: str | None, assert_hostname: bool | None, cert_file: str | None,
                 key_file: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        import certifi

        context = ssl.create_default_context(cafile=ca_file or certifi.where())
        if assert_hostname is not None:
            context.check_hostname = bool(assert_hostname)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


class _Relay:
    """The process's one relay: an asyncio loop in a daemon thread, and its HTTP session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._session: Any = None
        threading.Thread(target=self.loop.run_forever, name="port-forwards", daemon=True).start()
        atexit.register(self._close)  # else aiohttp warns of an unclosed session as the process ends

    def session(self) -> Any:
        import aiohttp

        if self._session is None:  # made on the loop that uses it
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                                  trust_env=False)
        return self._session

    def _close(self) -> None:
        if self._session is not None:
            try:
                self.run(self._session.close(), timeout=2.0)
            except Exception:  # noqa: BLE001 - the process is ending either way
                pass

    def run(self, coroutine: Awaitable[Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]


_the_relay: _Relay | None = None
_relay_lock = threading.Lock()


def _relay() -> _Relay:
    global _the_relay
    with _relay_lock:
        if _the_relay is None:
            _the_relay = _Relay()
        return _the_relay


class PortForward:
    """A local 127.0.0.1 listener that forwards each connection to a pod's port via the API server."""

    def __init__(self, configuration: Any, namespace: str, pod: str, port: int = ADMIN_PORT, *,
                 open_stream: OpenStream | None = None) -> None:
        self._configuration, self.namespace, self.pod, self.port = configuration, namespace, pod, port
        self._open_stream = open_stream or open_pod_stream
        self._socket = socket.create_server(("127.0.0.1", 0))  # bound now: the URL is known at once
        self._socket.setblocking(False)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> PortForward:
        async def listen() -> asyncio.AbstractServer:
            return await asyncio.start_server(self._serve, sock=self._socket)

        self._server = _relay().run(listen(), timeout=OPEN_TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        # Not waited for: a gate closes a forward per pod, at once. Connections still open end
        # when their client or the pod side does, as with `kubectl port-forward`.
        server = self._server
        if server is not None:
            _relay().loop.call_soon_threadsafe(server.close)
        else:
            self._socket.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await asyncio.wait_for(
                self._open_stream(self._configuration, self.namespace, self.pod, self.port), OPEN_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the client sees a closed connection: AdminUnreachable
            writer.close()
            return
        try:
            await relay(reader, writer, stream)
        finally:
            writer.close()
            await _quietly(stream.close())


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: PodStream) -> None:
    """Move bytes both ways until either side ends."""

    async def outbound() -> None:
        while chunk := await reader.read(_READ_SIZE):
            await stream.send(chunk)

    async def inbound() -> None:
        async for payload in stream:
            writer.write(payload)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the answer is whole: a close-delimited body ends here

    tasks = [asyncio.ensure_future(outbound()), asyncio.ensure_future(inbound())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # A side that failed (the client gone mid-answer, the stream cut) has nothing left to forward.
        await asyncio.gather(*tasks, return_exceptions=True)


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception:  # noqa: BLE001 - a stream that is gone is closed
        pass
