"""A real HTTP upstream service on 127.0.0.1, served from background threads.

One `Upstream` is one service; it listens on one or more *endpoints* (ports).
Giving each proxy its own endpoint lets a fault hit a single proxy — the canary
— while the rest of the fleet keeps talking to the same healthy service:

* default answer 200; `/status/<code>` answers `<code>` (noise such as 404);
* `fail_with(503)` answers 503 to every request (fault "5xx");
* `stop()` closes the listening socket and cuts open connections, `start()`
  listens again on the same port (fault "upstream-down").

On the service, these act on every endpoint; on an endpoint, on that one only.
A single acceptor thread watches every listening socket (200 proxies must not
mean 200 polling threads on 2 cores); each connection gets its own thread.
"""

from __future__ import annotations

import re
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler

from ._ports import LOOPBACK

_STATUS_PATH = re.compile(r"^/status/(\d{3})(?:[/?]|$)")


def cut_connections(conns: list[socket.socket]) -> None:
    """Shut every connection down both ways (the peers see them cut); ones already closed are skipped."""
    for conn in conns:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real service behind Envoy
    # Headers and body leave in two writes; with Nagle on, delayed ACKs held each
    # keep-alive answer ~40 ms (about 24 requests a second per connection).
    disable_nagle_algorithm = True
    endpoint: UpstreamEndpoint

    def __init__(self, conn: socket.socket, addr: tuple[str, int], endpoint: UpstreamEndpoint):
        self.endpoint = endpoint
        super().__init__(conn, addr, None)  # type: ignore[arg-type]

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        match = _STATUS_PATH.match(self.path)
        forced = self.endpoint.forced_status or self.endpoint.service.forced_status
        status = forced or (int(match.group(1)) if match else 200)
        body = f"{self.endpoint.service.name}/{self.endpoint.name} {status}\n".encode()
        self.endpoint._count(status)
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # thousands of requests in benchmarks: stay quiet


class UpstreamEndpoint:
    """One listening port of an Upstream service."""

    def __init__(self, service: Upstream, name: str, port: int, host: str = LOOPBACK) -> None:
        self.service = service
        self.name = name
        self.port = port
        self.host = host  # any 127.x address: e.g. a local cluster's pod IP, as the app in that pod
        self.forced_status: int | None = None
        self.requests: dict[int, int] = {}
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self) -> UpstreamEndpoint:
        """Listen (again) on the same port; a no-op when already listening."""
        if self._listener is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # same port despite TIME_WAIT
            sock.bind((self.host, self.port))
            sock.listen(256)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._listener = sock
            self.service._watch(self, sock)
        return self

    def stop(self) -> None:
        """Close the port and cut open connections: proxies get connect failures."""
        sock, self._listener = self._listener, None
        if sock is not None:
            self.service._unwatch(sock)
            sock.close()
        # Envoy pools upstream connections: without cutting them, "down" would
        # go unnoticed until the pool recycled them.
        with self._lock:
            conns = list(self._conns)
        cut_connections(conns)

    def fail_with(self, status: int | None) -> None:
        """Answer `status` to every request on this endpoint; `None` restores normal answers."""
        self.forced_status = status

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            conn.setblocking(True)
            _Handler(conn, addr, self)
        except OSError:
            pass  # the peer or stop() cut the connection
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _count(self, status: int) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1
        self.service._count(status)

    def __repr__(self) -> str:
        state = "listening" if self.running else "stopped"
        return f"UpstreamEndpoint({self.service.name}/{self.name}, port={self.port}, {state})"


class Upstream:
    """An HTTP/1.1 service on 127.0.0.1; its main endpoint listens on `port` (0 picks one).

    Use as a context manager or call `start()`/`stop()`.  `requests` counts the
    answers sent by status code, over all endpoints.
    """

    def __init__(self, *, port: int = 0, name: str = "upstream") -> None:
        self.name = name
        self.forced_status: int | None = None
        self.requests: dict[int, int] = {}
        self._lock = threading.Lock()
        self._endpoints: dict[str, UpstreamEndpoint] = {}
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self.main = self._add("main", port)

    # ---- service ---------------------------------------------------------
    @property
    def port(self) -> int:
        return self.main.port

    @property
    def running(self) -> bool:
        return self.main.running

    @property
    def endpoints(self) -> list[UpstreamEndpoint]:
        return list(self._endpoints.values())

    def endpoint(self, name: str, *, port: int = 0, host: str = LOOPBACK) -> UpstreamEndpoint:
        """The endpoint called `name`, created (and started) on first use, listening on `host:port`."""
        with self._lock:
            existing = self._endpoints.get(name)
        if existing is not None:
            return existing
        endpoint = self._add(name, port, host)
        return endpoint.start() if self._thread is not None else endpoint

    def remove(self, name: str) -> None:
        """Stop the endpoint called `name` and forget it (its proxy is gone for good)."""
        with self._lock:
            endpoint = self._endpoints.pop(name, None)
        if endpoint is not None:
            endpoint.stop()

    def start(self) -> Upstream:
        """Start serving on every endpoint (again, on the same ports)."""
        self._ensure_acceptor()
        for endpoint in self.endpoints:
            endpoint.start()
        return self

    def stop(self) -> None:
        """Stop every endpoint and the acceptor thread."""
        for endpoint in self.endpoints:
            endpoint.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake_w.send(b"x")
            thread.join(timeout=5)
            assert self._selector is not None
            self._selector.close()
            self._selector = None

    def fail_with(self, status: int | None) -> None:
        """Answer `status` to every request on every endpoint; `None` restores normal answers."""
        self.forced_status = status

    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    # ---- internals -------------------------------------------------------
    def _add(self, name: str, port: int, host: str = LOOPBACK) -> UpstreamEndpoint:
        with self._lock:
            endpoint = self._endpoints.setdefault(name, UpstreamEndpoint(self, name, port, host))
        return endpoint

    def _ensure_acceptor(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._thread = threading.Thread(target=self._accept_loop,
                                            name=f"upstream-{self.name}", daemon=True)
            self._thread.start()
            bound = [e for e in self._endpoints.values() if e._listener is not None]
        for endpoint in bound:
            self._watch(endpoint, endpoint._listener)  # type: ignore[arg-type]

    def _watch(self, endpoint: UpstreamEndpoint, sock: socket.socket) -> None:
        if self._selector is None:
            self._ensure_acceptor()  # an endpoint started on its own: serve it too
            return
        try:
            self._selector.register(sock, selectors.EVENT_READ, endpoint)
        except KeyError:
            return  # already registered
        self._wake_w.send(b"x")

    def _unwatch(self, sock: socket.socket) -> None:
        if self._selector is not None:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _accept_loop(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping.is_set():
            for key, _ in selector.select(timeout=1.0):
                if key.data is None:
                    self._wake_r.recv(4096)
                    continue
                try:
                    conn, addr = key.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, OSError):
                    continue  # closed by stop() meanwhile, or nothing left to accept
                threading.Thread(target=key.data._serve, args=(conn, addr),
                                 name=f"upstream-conn-{key.data.port}", daemon=True).start()

    def _count(self, status: int) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Upstream({self.name!r}, port={self.port}, {state}, {len(self._endpoints)} endpoints)"
