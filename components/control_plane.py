"""ControlPlaneRevision: one `istiod-<rev>` Helm release (chart istio/istiod) per revision.

The chart version is the Istio version and the `revision` value is the revision
name, so several revisions run side by side in the control plane's namespace,
each with its own injector webhook (`istio-sidecar-injector-<rev>`) and Service
(`istiod-<rev>`). Revision tags are *not* rendered by this chart (`revisionTags`
stays empty): they are separate objects, see `components.revision_tags`.

Values are layered: meshlift's production defaults, then the revision's `values`
from the stack config, then what meshlift owns (`revision`, `revisionTags`,
`global.istioNamespace`). `holdApplicationUntilProxyStarts` is on by default in
both of its forms: `meshConfig.defaultConfig` is what the proxies read, and
`global.proxy` is what the injection template of some versions reads
(istio/istio #51310); a revision may still turn it off in its values. The
stack's proxy profile (access log, upstream keepalive, proxy log levels; see
`meshmodel.proxy_profile`) is part of the defaults layer, so a revision's own
`values` can still override it for that revision (and the proxy-profile check
then says so at its gate). The defaults also widen Istio's stats matcher
(`proxyStatsMatcher`, `PROXY_STATS_MATCHER`) so the proxies of these
revisions keep what the gates read beyond Istio's standard metrics: per-cluster
request, 5xx, connect-failure and ejection counters, the control-plane
connection state and the SDS updates (docs/checks.md says what each check reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components._helm import deep_merge, layered_values, release
from meshmodel.plan import ControlPlanePlan, istiod_release_name

# Istio's default stats matcher keeps no per-cluster counters, no `control_plane.*`, `overload.*`
# or `sds.*` stats (an SDS push: the proof that a proxy's certificates did not change), and not
# the admin listener's request count (the proof that a proxy did not restart).
# Stat names carry Istio's `;` after the cluster name: `cluster.outbound|80||web.shop.svc.cluster.local;.upstream_rq_5xx`.
# Envoy matches a regex against the whole name.
PROXY_STATS_MATCHER: dict[str, Any] = {
    "inclusionPrefixes": ["control_plane.", "overload.", "sds.", "http.admin.downstream_rq_total"],
    "inclusionRegexps": [
        r"cluster\.(outbound|inbound)\|.*\.(upstream_rq_completed|upstream_rq_5xx|upstream_cx_connect_fail"
        r"|outlier_detection\.ejections_active)",
    ],
}

DEFAULT_ISTIOD_VALUES: dict[str, Any] = {
    "pilot": {
        # Two replicas and a PDB keep injection and config push available while a
        # node drains; the HPA absorbs push storms during restarts.
        "replicaCount": 2,
        "autoscaleEnabled": True,
        "autoscaleMin": 2,
        "autoscaleMax": 5,
        "cpu": {"targetAverageUtilization": 80},
        "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
    },
    "global": {
        "defaultPodDisruptionBudget": {"enabled": True},
        "proxy": {
            "holdApplicationUntilProxyStarts": True,
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "2000m", "memory": "1024Mi"},
            },
        },
    },
    "meshConfig": {"defaultConfig": {"holdApplicationUntilProxyStarts": True,
                                      "proxyStatsMatcher": PROXY_STATS_MATCHER}},
}


@dataclass(frozen=True, kw_only=True)
class ControlPlaneArgs:
    plan: ControlPlanePlan
    istio_namespace: str
    chart_repository: str
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the CRDs (MeshBase)
    proxy_values: Mapping[str, Any] = field(default_factory=dict)  # the proxy profile's values (istiod_values)
    adopt: bool = False  # `istiod-<rev>` was installed before meshlift: imported, then upgraded


class ControlPlaneRevision(pulumi.ComponentResource):
    """istiod for one revision; gateways and enrolled namespaces of that revision depend on it."""

    def __init__(self, name: str, args: ControlPlaneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:ControlPlaneRevision", name, None, opts)
        plan = args.plan
        self.revision = plan.revision
        self.release_name = istiod_release_name(plan.revision)
        self.values = layered_values(
            deep_merge(DEFAULT_ISTIOD_VALUES, args.proxy_values),
            plan.values,
            {"revision": plan.revision, "revisionTags": [], "global": {"istioNamespace": args.istio_namespace}},
        )
        self.release = release(
            f"{name}-release",
            release_name=self.release_name,
            chart="istiod",
            version=plan.version,
            namespace=args.istio_namespace,
            repository=args.chart_repository,
            values=self.values,
            adopt=args.adopt,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({
            "revision": plan.revision,
            "version": plan.version,
            "release": self.release_name,
        })
