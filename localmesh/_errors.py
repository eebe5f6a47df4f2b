"""Errors raised by localmesh.

    LocalMeshError
    ├── EnvoyBinaryNotFound   a binary is missing (run `make test` / `make rehearse`)
    ├── ProxyStartError       Envoy exited or never became LIVE; carries the log tail
    └── FaultError            a fault cannot be injected on this proxy
"""

from __future__ import annotations

import re


class LocalMeshError(Exception):
    """Base class of every error localmesh raises on purpose."""


class EnvoyBinaryNotFound(LocalMeshError):
    """An Envoy binary (stable or target) is not where it should be."""


class ProxyStartError(LocalMeshError):
    """An Envoy process exited early or did not report LIVE in time."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        hint = _hint(log_tail)
        text = f"{message}{hint}"
        super().__init__(f"{text}\n--- envoy log tail ---\n{log_tail}" if log_tail else text)
        self.log_tail = log_tail

    @property
    def port_clash(self) -> bool:
        """True when a port was taken by someone else: a retry on new ports may succeed."""
        return "Address already in use" in self.log_tail

    @property
    def clashing_port(self) -> int | None:
        """The port Envoy could not bind, read from its log."""
        match = _CANNOT_BIND.search(self.log_tail)
        return int(match.group(1)) if match else None


_CANNOT_BIND = re.compile(r"cannot bind '[^']*:(\d+)': Address already in use")


def _hint(log_tail: str) -> str:
    if "inotify" in log_tail:
        return (
            "\nhint: out of inotify instances (fs.inotify.max_user_instances, often 128 per "
            "user). Each proxy with file-based xDS uses 2, +2 with tls, +1 with overload: "
            "start large fleets with xds='static', or raise the sysctl."
        )
    return ""


class FaultError(LocalMeshError):
    """A fault is unknown or cannot be provoked on the given proxy."""
