"""The proxy profile of the stack rendered for a rehearsal's local Envoys.

The Kubernetes path renders the same `meshlift:proxyProfile` into istiod chart
values (`meshmodel.proxy_profile.istiod_values`); the rehearsal hands each of its
Envoys a `localmesh.ProxyProfile` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import localmesh
from meshmodel.proxy_profile import KeepaliveProfile, ProxyProfile


def local_profile(profile: ProxyProfile, workdir: Path) -> Any:
    """The `localmesh.ProxyProfile` of a rehearsal proxy working in `workdir`.

    The access log goes to `workdir/access.log` instead of the configured path: a
    local proxy's stdout is its Envoy log file.
    """
    def keepalive(value: KeepaliveProfile | None) -> Any:
        if value is None:
            return None
        return localmesh.TcpKeepalive(time_s=int(value.time), interval_s=int(value.interval), probes=value.probes)

    log = profile.access_log
    return localmesh.ProxyProfile(
        access_log_path=str(workdir / "access.log") if log.enabled else None,
        access_log_format=log.effective_format,
        access_log_json=log.encoding == "JSON",
        heap_max_bytes=profile.overload.max_heap_bytes if profile.overload.enabled else None,
        heap_disable_keepalive=profile.overload.disable_keepalive_at,
        heap_stop_accepting_requests=profile.overload.stop_accepting_requests_at,
        control_plane_keepalive=keepalive(profile.control_plane_keepalive),
        upstream_keepalive=keepalive(profile.upstream_keepalive),
        log_level=profile.log_level,
        component_log_level=profile.component_log_level,
    )
