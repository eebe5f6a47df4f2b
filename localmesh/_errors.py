"""Errors raised by localmesh.

    LocalMeshError
    ├── EnvoyBinaryNotFound   a binary is missing (run `make test` / `make rehearse`)
    ├── ProxyStartError       Envoy exited or never became LIVE; carries the log tail
    └── FaultError            a fault cannot be injected on this proxy
"""

from __future__ import annotations


class LocalMeshError(Exception):
    """Base class of every error localmesh raises on purpose."""


class EnvoyBinaryNotFound(LocalMeshError):
    """An Envoy binary (stable or target) is not where it should be."""


class ProxyStartError(LocalMeshError):
    """An Envoy process exited early or did not report LIVE in time."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- envoy log tail ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


class FaultError(LocalMeshError):
    """A fault is unknown or cannot be provoked on the given proxy."""
