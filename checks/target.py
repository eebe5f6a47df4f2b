"""What a check looks at: one proxy's admin interface, plus what we know of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

__all__ = ["Target", "Role", "PodFacts", "ContainerFacts"]

Role = Literal["canary", "baseline", "proxy"]
_ROLES = ("canary", "baseline", "proxy")


@dataclass(frozen=True)
class ContainerFacts:
    """One container's start facts from a pod's status (Kubernetes targets only)."""

    name: str
    started_at: datetime | None
    ready: bool
    is_proxy: bool = False
    native_sidecar: bool = False  # an init container with restartPolicy: Always
    waits_for_proxy: bool = False  # proxy has the `pilot-agent wait` postStart hook


@dataclass(frozen=True)
class PodFacts:
    """What pod status says about start order; read by the `app-started-after-proxy` check."""

    namespace: str
    name: str
    revision: str | None
    containers: tuple[ContainerFacts, ...] = ()
    hold_application: bool | None = None  # proxy.istio.io/config holdApplicationUntilProxyStarts
    # The team's own proxy log levels on its pod template (sidecar.istio.io/logLevel, /componentLogLevel).
    log_level: str | None = None
    component_log_level: str | None = None

    @property
    def proxy(self) -> ContainerFacts | None:
        return next((c for c in self.containers if c.is_proxy), None)

    @property
    def apps(self) -> tuple[ContainerFacts, ...]:
        return tuple(c for c in self.containers if not c.is_proxy)


@dataclass(frozen=True)
class Target:
    """One proxy to check.

    `admin_url` is the base URL of its Envoy admin interface (a local Envoy, a
    VM's 127.0.0.1:15000, or a port-forward to a pod's 15000). `role` says how a
    gate uses it: `canary` proxies are gated, `baseline` proxies are the
    comparison for the canary's error rate, `proxy` is a plain one-off check.
    `expected_version` (e.g. "1.40.0" or the revision "1-40-0") is what
    `/server_info` must report; None skips the version check.
    """

    name: str
    admin_url: str
    role: Role = "proxy"
    expected_version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    pod: PodFacts | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"role must be one of {_ROLES}, got {self.role!r}")
        if not self.admin_url.startswith(("http://", "https://")):
            raise ValueError(f"admin_url must be an http(s) URL, got {self.admin_url!r}")
        object.__setattr__(self, "admin_url", self.admin_url.rstrip("/"))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __hash__(self) -> int:
        return hash((self.name, self.admin_url, self.role))

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> Target:
        """A target named after its URL (`--admin http://127.0.0.1:15000`)."""
        url = url if "://" in url else f"http://{url}"
        name = str(kwargs.pop("name", None) or url.split("://", 1)[1].rstrip("/"))
        return cls(name=name, admin_url=url, **kwargs)  # type: ignore[arg-type]
