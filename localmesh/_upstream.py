"""A real HTTP upstream service on 127.0.0.1, run in a background thread.

It answers 200 by default; `/status/<code>` answers `<code>`; `fail_with(503)`
makes every request answer 503 (fault "5xx"); `stop()` then `start()` brings it
back on the same port (fault "upstream-down").
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ._ports import LOOPBACK

_STATUS_PATH = re.compile(r"^/status/(\d{3})(?:[/?]|$)")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like a real service behind Envoy

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        match = _STATUS_PATH.match(self.path)
        status = self.server.upstream.forced_status or (int(match.group(1)) if match else 200)
        body = f"{self.server.upstream.name} {status}\n".encode()
        self.server.upstream._count(status)
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # thousands of requests in benchmarks: stay quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart on the same port despite TIME_WAIT
    request_queue_size = 128

    def __init__(self, port: int, upstream: Upstream) -> None:
        self.upstream = upstream
        self.connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__((LOOPBACK, port), _Handler)

    # Envoy keeps upstream connections alive; tracking them lets stop() cut
    # them, so "upstream down" really means connect failures, not a quiet pool.
    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self._conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self._conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            live = list(self.connections)
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Upstream:
    """An HTTP/1.1 server on 127.0.0.1:`port` (0 picks a free one).

    Use as a context manager or call `start()`/`stop()`.  `requests` counts the
    answers it sent by status code.
    """

    def __init__(self, *, port: int = 0, name: str = "upstream") -> None:
        self.name = name
        self.port = port
        self.forced_status: int | None = None
        self.requests: dict[int, int] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    def start(self) -> Upstream:
        """Listen (again) on the same port; a no-op when already running."""
        if self._server is not None:
            return self
        server = _Server(self.port, self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"upstream-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused until `start()`."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def fail_with(self, status: int | None) -> None:
        """Answer `status` to every request; `None` goes back to normal."""
        self.forced_status = status

    def _count(self, status: int) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Upstream({self.name!r}, port={self.port}, {state})"
