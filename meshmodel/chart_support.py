"""What Istio's Helm charts of a given release can install on a current Kubernetes, as data.

Read from the charts themselves at their release tags (manifests/charts in
istio/istio):
- istio/base, istio/istiod and istio/gateway are published from 1.12 on; before,
  the gateway chart does not exist (`gateways/istio-ingress`) and istio/base
  ignores `defaultRevision`;
- istiod 1.12 and 1.13 render `autoscaling/v2beta1` HorizontalPodAutoscalers and
  `policy/v1beta1` PodDisruptionBudgets unconditionally (removed in Kubernetes 1.25
  and 1.26); from 1.14 the charts pick the API version from the cluster's;
- istio/gateway has a values schema with `additionalProperties: false` and no
  `podDisruptionBudget` key until 1.16.6, 1.17.3 and 1.18.1: setting it fails the
  release, so meshlift leaves it out for those releases.
"""

from __future__ import annotations

from meshmodel.fields import IstioVersion

# The oldest release whose three charts install on a current cluster, and why older ones cannot.
MIN_INSTALLABLE = IstioVersion(1, 14, 0)
_TOO_OLD = [
    (IstioVersion(1, 12, 0),
     "Istio publishes istio/base, istio/istiod and istio/gateway from 1.12 on (before, there is no "
     "gateway chart and istio/base ignores defaultRevision), and the istiod charts of 1.9 to 1.13 "
     "render API versions removed from Kubernetes (autoscaling/v2beta1, policy/v1beta1)"),
    (MIN_INSTALLABLE,
     "the istiod chart of 1.12 and 1.13 renders autoscaling/v2beta1 and policy/v1beta1, removed in "
     "Kubernetes 1.25 and 1.26; from 1.14 the charts select current API versions"),
]

# (first release of a minor line that accepts the key, first minor line where every release does)
_GATEWAY_PDB_FIXED_IN = {16: IstioVersion(1, 16, 6), 17: IstioVersion(1, 17, 3), 18: IstioVersion(1, 18, 1)}
_GATEWAY_PDB_ALWAYS_FROM_MINOR = 19


def installable(version: IstioVersion) -> str | None:
    """None when the release's charts install on a current Kubernetes, else the reason they do not."""
    for below, reason in _TOO_OLD:
        if version < below:
            return f"Istio {version} cannot be installed on a current Kubernetes: {reason}; use {MIN_INSTALLABLE} or newer"
    return None


def gateway_accepts_pod_disruption_budget(version: IstioVersion) -> bool:
    """Whether istio/gateway of this release accepts the `podDisruptionBudget` value."""
    if version.major > 1 or version.minor >= _GATEWAY_PDB_ALWAYS_FROM_MINOR:
        return True
    fixed = _GATEWAY_PDB_FIXED_IN.get(version.minor)
    return fixed is not None and version >= fixed
