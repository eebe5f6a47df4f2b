"""Free TCP ports on the loopback interface.

Ports come from *below* the kernel's ephemeral range: a port picked by binding
port 0 lies inside that range, where any outgoing connection (Envoy to its
upstream, a load generator to Envoy) may take it between the pick and Envoy's
own bind.  A process never hands out the same port twice while it lives, so a
fleet picked up front has no duplicates.  What is left (another program
binding the same port in between) is caught at start-up and retried with new
ports (see Proxy.start).
"""

from __future__ import annotations

import random
import socket
import threading

LOOPBACK = "127.0.0.1"
_LOWEST = 10000
_handed_out: set[int] = set()
_lock = threading.Lock()


def _candidate_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (_LOWEST, low) if low - _LOWEST >= 2000 else (0, 0)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1, free a moment ago and never handed out before by this process."""
    low, high = _candidate_range()
    with _lock:
        for _ in range(1000):
            if high:
                port = random.randrange(low, high)
            else:  # an unusual ephemeral range: fall back to the kernel's choice
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((LOOPBACK, 0))
                    port = sock.getsockname()[1]
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    raise OSError("no free loopback port found")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    return [free_port() for _ in range(count)]


def release_ports(*ports: int | None) -> None:
    """Let ports of a stopped proxy be handed out again (long benchmark runs)."""
    with _lock:
        for port in ports:
            _handed_out.discard(port)  # type: ignore[arg-type]


def closed_port() -> int:
    """A port nothing listens on (for "control plane unreachable")."""
    return free_port()
