"""A TCP relay on 127.0.0.1 whose path can be cut: one sidecar's line to its istiod.

A real pod reaches istiod through the cluster network; here every stand-in
sidecar's pilot-agent dials its own relay, which forwards each connection to
wherever the revision's istiod runs now (`target()` is asked per connection, so
an istiod that restarts on a new pod IP is found again). `cut()` drops every
open connection and refuses new ones until `restore()`: that one sidecar is
cut off from its control plane (certificates and xDS alike) while the rest of
the mesh is not.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from localmesh import cut_connections

Target = Callable[[], "tuple[str, int] | None"]
_CHUNK = 65536


class Relay:
    """`with Relay(target) as relay:` listens on `relay.address`; `cut()` / `restore()` the path."""

    def __init__(self, target: Target, *, name: str = "relay") -> None:
        self.target, self.name = target, name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.address = self._listener.getsockname()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"relay-{name}", daemon=True)
        self._thread.start()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        self._cut.set()
        self._drop_all()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._drop_all()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        cut_connections(conns)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            target = None if self._cut.is_set() else self._lookup()
            if target is None:
                client.close()  # cut off, or no istiod to reach: the agent sees a reset, as on a severed network
                continue
            threading.Thread(target=self._bridge, args=(client, target), daemon=True,
                             name=f"relay-{self.name}-conn").start()

    def _lookup(self) -> tuple[str, int] | None:
        """Where istiod answers now; None when that cannot be told (the API server restarting): this
        connection is refused, and the agent's next attempt asks again."""
        try:
            return self.target()
        except Exception:  # noqa: BLE001 - one failed lookup must not end the relay for good
            return None

    def _bridge(self, client: socket.socket, target: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((client, upstream))
        pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        pump.start()
        self._pump(client, upstream)
        pump.join()
        with self._lock:
            self._conns.difference_update((client, upstream))
        for sock in (client, upstream):
            sock.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass
