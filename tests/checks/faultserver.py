"""A misbehaving "admin interface" on a raw socket: one server per fault kind.

Each connection's request head is read and its request line recorded (so tests
can prove we only ever sent GETs), then `behaviour(conn)` answers, in its own thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Behaviour = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def hang(conn: socket.socket) -> None:
    time.sleep(5)  # longer than any client deadline used in the tests


def slow_bytes(conn: socket.socket) -> None:
    """A valid response, one byte every 50 ms: each read succeeds, the whole never arrives in time."""
    body = b'{"stats": []}' * 20
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    for byte in head + body:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def status(code: int, body: bytes = b"oops") -> Behaviour:
    def answer(conn: socket.socket) -> None:
            conn.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (code, len(body), body))
    return answer


def garbage(conn: socket.socket) -> None:
    body = b"LIVE\x00\xff<html>not json{{{"
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def not_http(conn: socket.socket) -> None:
    conn.sendall(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")


def truncated_json(conn: socket.socket) -> None:
    """Declares 4 KB, sends the start of a JSON document, closes."""
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"stats": [{"name": "server.')


def oversized(conn: socket.socket) -> None:
    """An endless chunked body: no Content-Length to refuse up front."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    try:
        for _ in range(400):  # 25 MB at most, then give up
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the client hung up once it had enough: what we want


def declared_oversized(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n{")
    time.sleep(1)


@contextmanager
def fault_server(behaviour: Behaviour) -> Iterator[tuple[str, list[bytes]]]:
    """Serve `behaviour` on 127.0.0.1; yields (base URL, request heads seen)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            head = _read_request(conn)
            if head:
                seen.append(head.split(b"\r\n", 1)[0])
            try:
                behaviour(conn)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()
