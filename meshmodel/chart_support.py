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

Where they are published (Istio 1.31 upgrade notes): up to 1.30 in the Google
Cloud Storage repository, which is being switched off; from 1.31 only at
blob.istio.io (an HTTPS Helm repository) and ghcr.io (OCI). The default
`meshlift:chartRepository` names Istio's own charts, so each chart version is
fetched from where Istio publishes it; any other repository is used as given.
"""

from __future__ import annotations

from meshmodel.fields import IstioVersion
from meshmodel.spec import DEFAULT_CHART_REPOSITORY

ISTIO_GCS_CHARTS = DEFAULT_CHART_REPOSITORY  # https://istio-release.storage.googleapis.com/charts
ISTIO_HTTPS_CHARTS = "https://blob.istio.io/istio-release/charts"
ISTIO_OCI_CHARTS = "oci://ghcr.io/istio/release/charts"
# (first release published there, repository), newest first
_ISTIO_PUBLISHES = [(IstioVersion(1, 31, 0), ISTIO_HTTPS_CHARTS), (IstioVersion(0, 0, 0), ISTIO_GCS_CHARTS)]

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


def chart_repository_for(configured: str, version: IstioVersion) -> str:
    """The repository to fetch a chart of `version` from: where Istio publishes it when the
    stack keeps the default, else the configured one."""
    if configured.rstrip("/") != DEFAULT_CHART_REPOSITORY:
        return configured
    release = IstioVersion(version.major, version.minor, version.patch)  # 1.31.0-rc.1 is on the 1.31 hosts
    return next(repository for first, repository in _ISTIO_PUBLISHES if release >= first)
