"""Is the target an Envoy admin interface at all? Judged once per target, before its checks.

An unreachable address or something that is not Envoy (an application port, a
web page, a proxy's 15020 merged-metrics port) would otherwise fail every check
with its own copy of the same error. `assess` names it once; the report shows
that one line and lists the checks it prevented (linkerd-check style).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._exceptions import AdminBadResponse, AdminError, AdminTransportError
from .catalog import DOCS_HOME
from .observe import Observation, Read

__all__ = ["Endpoint", "assess"]

_ANCHOR = DOCS_HOME + "docs/checks.md#"


@dataclass(frozen=True)
class Endpoint:
    status: str  # ok | unreachable | not-envoy
    message: str = ""
    hint: str = ""
    kind: str = ""  # the admin read's own error kind (timeout, bad-status, ...)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "kind": self.kind, "message": self.message, "hint": self.hint}


OK = Endpoint("ok")


def assess(obs: Observation, admin_url: str) -> Endpoint:
    values = [value for read, value in obs.reads.items() if read is not Read.POD]
    errors = [v for v in values if isinstance(v, AdminError)]
    if errors and len(errors) == len(values) and all(isinstance(e, AdminTransportError) for e in errors):
        return Endpoint("unreachable", f"cannot reach the admin endpoint {admin_url} ({errors[0].kind}: "
                                       f"{_short(str(errors[0]))})",
                        "Check the address, and that the proxy runs and its admin port is forwarded "
                        f"(kubectl port-forward POD 15000). See {_ANCHOR}endpoint-unreachable", errors[0].kind)
    # /server_info (when read) decides; otherwise an answer none of whose reads made sense.
    info = obs.reads.get(Read.SERVER_INFO)
    if not isinstance(info, AdminBadResponse) and errors and len(errors) == len(values):
        info = next((e for e in errors if isinstance(e, AdminBadResponse)), None)
    if isinstance(info, AdminBadResponse):
        return Endpoint("not-envoy", f"{admin_url} answers, but it is not an Envoy admin interface "
                                     f"({info.url or admin_url}: {info.kind})",
                        "Point --admin at the proxy's admin port (15000 in an Istio pod), not at the "
                        f"application or the 15020 metrics port. See {_ANCHOR}endpoint-not-envoy", info.kind)
    return OK


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
