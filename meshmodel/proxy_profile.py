"""The production proxy profile (`meshlift:proxyProfile`): what every proxy of the mesh runs with.

One validated model, rendered two ways:

- `istiod_values(profile)`: the istiod chart values of each revision on the
  Kubernetes path (`meshConfig.accessLog*`, `meshConfig.tcpKeepalive`,
  `global.proxy.logLevel`/`componentLogLevel`);
- `rollout.platforms.local_profile.local_profile(profile, workdir)`: the
  `localmesh.ProxyProfile` of each rehearsal proxy, rendered into its bootstrap
  and listeners.

The `proxy-profile` check reads the same model back from each proxy's
/config_dump and /server_info (docs/proxy-profile.md says what maps where).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from meshmodel.fields import ByteCount, ConfigModel, Duration, Fraction

__all__ = ["ProxyProfile", "AccessLogProfile", "OverloadProfile", "KeepaliveProfile", "REQUIRED_LOG_FIELDS",
           "istiod_values"]

# What an access log line must carry to debug an upgrade: why Envoy answered as it did,
# which upstream host served it, and how long it took.
REQUIRED_LOG_FIELDS = ("%RESPONSE_FLAGS%", "%UPSTREAM_HOST%", "%DURATION%")

DEFAULT_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%"
)
DEFAULT_JSON_FORMAT = json.dumps({
    "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%", "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%", "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "route_name": "%ROUTE_NAME%",
})

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")
LogLevel = Literal["trace", "debug", "info", "warning", "error", "critical", "off"]
_COMPONENT_LEVEL = re.compile(r"^[a-z_0-9]+:(trace|debug|info|warning|warn|error|critical|off)$")


class AccessLogProfile(ConfigModel):
    """Envoy's file access log on every HTTP connection manager (meshConfig.accessLog*)."""

    enabled: bool = True
    path: str = "/dev/stdout"  # where it goes: the proxy container's stdout, collected with its logs
    encoding: Literal["TEXT", "JSON"] = "TEXT"
    format: str | None = None  # Envoy command operators; default: Istio's fields plus route and details

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must be an absolute file path such as /dev/stdout, got {value!r}")
        return value

    @model_validator(mode="after")
    def _format_carries_the_debugging_fields(self) -> AccessLogProfile:
        text = self.effective_format
        if self.encoding == "JSON":
            try:
                fields = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"format must be a JSON object of field: operator with encoding JSON ({exc})") from None
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                raise ValueError("format must be a JSON object whose values are strings with encoding JSON")
        missing = [f for f in REQUIRED_LOG_FIELDS if f not in text]
        if missing:
            raise ValueError(f"format must contain {', '.join(missing)} (response flags, upstream host, duration)")
        return self

    @property
    def effective_format(self) -> str:
        if self.format is not None:
            return self.format
        return DEFAULT_JSON_FORMAT if self.encoding == "JSON" else DEFAULT_TEXT_FORMAT


class OverloadProfile(ConfigModel):
    """Heap-triggered overload actions (Envoy's fixed_heap monitor).

    Off by default: the istiod chart has no value for it (it needs a bootstrap
    override on Kubernetes, see docs/proxy-profile.md), and a wrong
    `maxHeapBytes` would stop a healthy proxy from accepting requests.
    """

    enabled: bool = False
    max_heap_bytes: ByteCount = 1024 * 1024 * 1024  # match the istio-proxy memory limit
    disable_keepalive_at: Fraction = 0.95
    stop_accepting_requests_at: Fraction = 0.99

    @model_validator(mode="after")
    def _ordered(self) -> OverloadProfile:
        if self.disable_keepalive_at >= self.stop_accepting_requests_at:
            raise ValueError("disableKeepaliveAt must be below stopAcceptingRequestsAt "
                             "(shed keep-alive connections before refusing requests)")
        return self


class KeepaliveProfile(ConfigModel):
    """TCP keepalive probes (SO_KEEPALIVE): idle connections outlive cloud load balancers' timeouts."""

    time: Duration = 300.0
    interval: Duration = 75.0
    probes: Annotated[int, Field(ge=1, le=100)] = 9

    @field_validator("time", "interval")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value):
            raise ValueError(f"must be whole seconds (the kernel's keepalive unit), got {value:g}s")
        return value


class ProxyProfile(ConfigModel):
    """Production settings for every proxy of the mesh; the defaults are safe to run as is."""

    access_log: AccessLogProfile = Field(default_factory=AccessLogProfile)
    overload: OverloadProfile = Field(default_factory=OverloadProfile)
    control_plane_keepalive: KeepaliveProfile = Field(default_factory=KeepaliveProfile)
    upstream_keepalive: KeepaliveProfile | None = Field(default_factory=KeepaliveProfile)
    log_level: LogLevel = "warning"
    component_log_level: str = "misc:error"

    @field_validator("component_log_level")
    @classmethod
    def _component_levels(cls, value: str) -> str:
        bad = [part for part in value.split(",") if part and not _COMPONENT_LEVEL.match(part.strip())]
        if bad:
            raise ValueError(f"must be component:level pairs separated by commas (e.g. misc:error,upstream:info), "
                             f"got {', '.join(repr(b) for b in bad)}")
        return value


def _seconds(value: float) -> str:
    return f"{int(value)}s"


def istiod_values(profile: ProxyProfile) -> dict[str, Any]:
    """The istiod chart values the profile sets (layered under a revision's own `values`).

    The overload manager and the control-plane keepalive have no chart value: Istio's
    bootstrap template fixes the xds-grpc keepalive (300 s) and the overload manager
    needs `sidecar.istio.io/bootstrapOverride` (docs/proxy-profile.md).
    """
    log = profile.access_log
    mesh: dict[str, Any] = {
        # An empty accessLogFile is how the chart turns access logging off.
        "accessLogFile": log.path if log.enabled else "",
        "accessLogEncoding": log.encoding,
        "accessLogFormat": log.effective_format if log.enabled else "",
    }
    if profile.upstream_keepalive is not None:
        keepalive = profile.upstream_keepalive
        mesh["tcpKeepalive"] = {"time": _seconds(keepalive.time), "interval": _seconds(keepalive.interval),
                                "probes": keepalive.probes}
    return {
        "meshConfig": mesh,
        "global": {"proxy": {"logLevel": profile.log_level, "componentLogLevel": profile.component_log_level}},
    }
