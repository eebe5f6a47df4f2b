"""The check catalog: every check as data, in report order.

Each `CheckSpec` says what it checks (`description`), where to read more
(`hint`: a sentence of advice and a link to the check's section of
docs/checks.md), whether a failure blocks a promotion
(`fatal`; a non-fatal failure is reported as `warn`), which admin reads it
needs (`reads`) and which stats (`stats`: RE2 patterns merged into one
`/stats?filter=`), and the function that judges one `Context`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import rules_config, rules_kube, rules_parity, rules_proxy, rules_runtime, rules_traffic
from .context import Context, GateSettingsLike, Verdict
from .istio_metrics import ISTIO_REQUEST_STATS
from .observe import Read
from .process import PROCESS_STATS

__all__ = ["CheckSpec", "CATALOG", "CATEGORIES", "DOCS_HOME", "HINT_BASE", "ADVICE", "check_by_id", "select_checks"]

# Where the project's documents live, so a hint link works outside a checkout. The one place to change it.
DOCS_HOME = "https://github.com/meshlift/meshlift/blob/main/"
HINT_BASE = DOCS_HOME + "docs/checks.md#"

# What to do when a check fails, in a sentence (shown with the link under each failure).
ADVICE: dict[str, str] = {
    "proxy-ready": "The proxy is not serving yet or is shutting down: look at its logs and at /ready on its admin port.",
    "proxy-version": "The proxy runs another version than the revision it should be on: restart the workload so "
                     "the injector gives it the target revision's proxy.",
    "proxy-not-draining": "The proxy is draining or stopped a listener: it is being shut down or was told to fail "
                          "health checks; wait for the replacement pod, or find who drained it.",
    "proxy-not-restarted": "The proxy restarted during the gate: look for OOM kills and crash loops in the pod's events.",
    "proxy-memory": "The canary uses much more memory than the same workload on the old revision: check the "
                    "size of its configuration (Sidecar resources narrow it) or a leak in the new version; raise "
                    "maxMemoryRatio if the growth is expected.",
    "control-plane-connected": "The proxy lost its control plane: check that istiod of its revision runs and is "
                               "reachable from the pod.",
    "xds-config-accepted": "The proxy rejected configuration from its control plane: read the rejection in "
                           "/config_dump (error_state) and fix the Istio resource that produced it.",
    "xds-unknown-fields": "The control plane sends fields this proxy does not know: the control plane is newer "
                          "than the proxy by more than the supported skew.",
    "certificates-valid": "A certificate expired, a workload certificate was not renewed in time, or a root or "
                          "gateway credential expires soon: check the agent's rotation (istiod's CA reachable, "
                          "`istioctl proxy-config secret POD`), the mesh root, or the gateway's secret.",
    "overload-inactive": "The overload manager is shedding load: give the proxy more CPU or memory, or reduce "
                         "the traffic it takes.",
    "upstream-success-rate": "Requests through the proxy fail: compare the canary with the stable pods and look "
                             "at the upstream's own logs.",
    "upstream-connect-failures": "The proxy cannot connect to an upstream: check that the upstream runs and that "
                                 "mTLS and network policy allow the connection.",
    "canary-vs-baseline": "The canary fails more requests than the stable baseline: the target revision changes "
                          "behaviour for this workload; roll back and compare their configuration.",
    "outlier-ejections": "An upstream host was ejected for failing: find which host in /clusters and why it fails.",
    "app-started-after-proxy": "The application started before its proxy was ready: use native sidecars or set "
                               "holdApplicationUntilProxyStarts.",
}

CATEGORIES = ("proxy", "configuration", "security", "overload", "traffic", "kubernetes")

_XDS_STATS = r"\.(update_rejected|update_failure|update_success|version_text)$"
_CLUSTER_STATS = r"^cluster\..*\.(upstream_rq_completed|upstream_rq_5xx|upstream_cx_connect_fail)$"
# Request evidence: cluster counters, Istio's standard metric, and what tells an Istio proxy
# without either (its xds-grpc cluster) from a plain Envoy with no traffic.
_TRAFFIC_STATS = (_CLUSTER_STATS, *ISTIO_REQUEST_STATS, rules_traffic.ISTIO_XDS_STATS)


@dataclass(frozen=True)
class CheckSpec:
    id: str
    category: str
    description: str
    fatal: bool
    reads: tuple[Read, ...]
    evaluate: Callable[[Context], Verdict]
    threshold: str  # the default threshold, in words (README and `--list`)
    stats: tuple[str, ...] = ()

    @property
    def hint_url(self) -> str:
        return HINT_BASE + self.id

    @property
    def hint(self) -> str:
        """What to do about a failure, as a full sentence, and where to read more."""
        advice = ADVICE.get(self.id) or f"The check '{self.description}' failed."
        return f"{advice} See {self.hint_url}"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "category": self.category,
            "description": self.description,
            "fatal": self.fatal,
            "reads": [r.value for r in self.reads],
            "stats": list(self.stats),
            "threshold": self.threshold,
            "hint": self.hint,
            "hint_url": self.hint_url,
        }


CATALOG: tuple[CheckSpec, ...] = (
    CheckSpec(
        "proxy-ready", "proxy", "proxy is ready (/ready LIVE)", True, (Read.READY,),
        rules_proxy.proxy_ready, "LIVE (not the lagging server.state gauge)",
    ),
    CheckSpec(
        "proxy-version", "proxy", "proxy runs the expected version", True, (Read.SERVER_INFO,),
        rules_proxy.proxy_version, "ISTIO_VERSION (or Envoy version) equals the target's expected version",
    ),
    CheckSpec(
        "proxy-not-draining", "proxy", "proxy is not draining and no listener is stopped", True,
        (Read.READY, Read.STATS), rules_proxy.not_draining,
        "state != DRAINING, listener_manager.listener_stopped = 0 (draining listeners warn)",
        (r"^listener_manager\.(listener_stopped|total_listeners_draining)$",),
    ),
    CheckSpec(
        "proxy-not-restarted", "proxy", "proxy did not restart between samples", True, (Read.STATS,),
        rules_proxy.not_restarted,
        "server.uptime (or a process-lifetime counter) never goes back between samples; same build",
        PROCESS_STATS,
    ),
    CheckSpec(
        "proxy-memory", "proxy", "proxy memory within bound", True, (Read.STATS,),
        rules_proxy.memory_within_bound,
        "canary server.memory_allocated <= maxMemoryRatio (2) x its largest baseline's + 32 MiB; "
        "<= maxMemoryBytes when set (no cap by default)",
        (r"^server\.memory_(allocated|heap_size)$",),
    ),
    CheckSpec(
        "control-plane-connected", "configuration", "proxy is connected to its control plane", True,
        (Read.STATS,), rules_config.control_plane_connected,
        "control_plane.connected_state = 1, or (Istio) the ADS stream on xds-grpc open; "
        "two samples in a row without it fail",
        (r"^control_plane\.connected_state$", rules_config.XDS_GRPC_STATS),
    ),
    CheckSpec(
        "xds-config-accepted", "configuration", "no xDS update rejected, now or still in effect", True,
        (Read.STATS, Read.LISTENER_STATE), rules_config.xds_config_accepted,
        "0 rejected updates in the window; no listener error_state; no subscription rejected without ever accepting",
        (_XDS_STATS, r"^control_plane\.connected_state$", rules_config.XDS_GRPC_STATS),
    ),
    CheckSpec(
        "xds-unknown-fields", "configuration", "dynamic config has no fields unknown to this proxy", False,
        (Read.STATS,), rules_config.no_unknown_fields, "server.dynamic_unknown_fields = 0",
        (r"^server\.dynamic_unknown_fields$",),
    ),
    CheckSpec(
        "config-parity", "configuration", "canary serves everything its baseline serves", True,
        (Read.CONFIG,), rules_parity.config_parity,
        "no listener, filter chain, route config, virtual host, route or cluster of the baseline missing "
        "(parityAllow excepted); no listener failed or warming in two samples in a row",
    ),
    CheckSpec(
        "proxy-profile", "configuration", "the production proxy profile is in force", True,
        (Read.CONFIG, Read.SERVER_INFO), rules_parity.proxy_profile,
        "meshlift:proxyProfile: access log on every HTTP connection manager, heap overload actions, "
        "keepalives, log levels",
    ),
    CheckSpec(
        "certificates-valid", "security", "certificates valid for long enough", True, (Read.CERTS,),
        rules_runtime.certificates_valid,
        "workload (SPIFFE) certificates: not expired, < 75% of their lifetime used; roots, intermediates and "
        "gateway credentials: >= minCertValidityDays (7 days) left",
    ),
    CheckSpec(
        "overload-inactive", "overload", "no overload action active", True, (Read.STATS,),
        rules_runtime.overload_inactive, "every overload.<action>.active = 0 (scale_percent > 0 warns)",
        (r"^overload\.",),
    ),
    CheckSpec(
        "upstream-success-rate", "traffic", "upstream success rate at or above threshold", True,
        (Read.STATS,), rules_traffic.upstream_success_rate,
        "non-5xx / completed >= minSuccessRate (99%) with >= minRequests (10) requests, 99% confidence "
        "(istio_requests_total where counted, else cluster counters)",
        _TRAFFIC_STATS,
    ),
    CheckSpec(
        "upstream-connect-failures", "traffic", "upstream connect failures within bound", True,
        (Read.STATS,), rules_traffic.upstream_connect_failures,
        "new upstream_cx_connect_fail (else istio_requests_total flagged UF) per sample <= maxConnectFailures (0)",
        _TRAFFIC_STATS,
    ),
    CheckSpec(
        "canary-vs-baseline", "traffic", "canary error rate not worse than baseline", True,
        (Read.STATS,), rules_traffic.canary_vs_baseline,
        "canary error rate - baseline error rate <= maxErrorRateDelta (1 point), 99% confidence",
        _TRAFFIC_STATS,
    ),
    CheckSpec(
        "outlier-ejections", "traffic", "no upstream host ejected as an outlier", False, (Read.STATS,),
        rules_runtime.no_outlier_ejections, "cluster.*.outlier_detection.ejections_active = 0",
        (r"^cluster\..*\.outlier_detection\.ejections_active$",),
    ),
    CheckSpec(
        "app-started-after-proxy", "kubernetes", "application containers started after the proxy was ready",
        False, (Read.POD,), rules_kube.app_started_after_proxy,
        "native sidecar or holdApplicationUntilProxyStarts, and no app container started before istio-proxy",
    ),
)

_BY_ID = {c.id: c for c in CATALOG}


def check_by_id(check_id: str) -> CheckSpec:
    return _BY_ID[check_id]


def select_checks(settings: GateSettingsLike | None = None, *, only: Iterable[str] | None = None) -> tuple[list[CheckSpec], list[CheckSpec]]:
    """(selected, skipped) by `settings.checks`/`skip_checks` and `only`; unknown ids raise ValueError."""
    wanted = list(only) if only is not None else (list(settings.checks) if settings and settings.checks is not None else None)
    skipped_ids = list(settings.skip_checks) if settings else []
    unknown = sorted({*(wanted or []), *skipped_ids} - _BY_ID.keys())
    if unknown:
        raise ValueError(f"unknown check id(s): {', '.join(unknown)}; known: {', '.join(_BY_ID)}")
    selected = [c for c in CATALOG if (wanted is None or c.id in wanted) and c.id not in skipped_ids]
    return selected, [c for c in CATALOG if c not in selected]
