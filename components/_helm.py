"""One way to declare a Helm release, shared by the chart-based components.

Every chart meshlift installs is a `kubernetes.helm.v3.Release`, not a
`helm.v4.Chart`: a Release is a real Helm release (`helm ls` shows it, `helm
rollback` works in an emergency), and Helm's own lifecycle applies, in particular
the `helm.sh/resource-policy: keep` annotation Istio puts on its CRDs. A v4 Chart
renders to plain Pulumi resources, so deleting it would delete the CRDs (and with
them every Istio custom resource in the cluster).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_kubernetes.helm.v3 import Release, ReleaseArgs, RepositoryOptsArgs

from meshmodel.plan import release_ref

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshlift"}

# Long enough for istiod and gateways to become ready on a busy cluster; a release
# that is still not ready after this fails the `pulumi up` instead of hanging it.
RELEASE_TIMEOUT_SECONDS = 600


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, recursing into mappings (lists are replaced, as Helm does)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def layered_values(defaults: Mapping[str, Any], user: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    """meshlift's defaults, then the user's passthrough values, then what the spec dictates."""
    return deep_merge(deep_merge(defaults, user), owned)


def release(
    resource_name: str,
    *,
    release_name: str,
    chart: str,
    version: str,
    namespace: str,
    repository: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    skip_crds: bool = False,
    adopt: bool = False,
) -> Release:
    """A Helm release of an Istio chart from an https:// or oci:// repository.

    `adopt`: the release exists (installed before meshlift); it is imported by its
    Helm ID on the first `pulumi up` and upgraded to these inputs in the same run.
    Installing it instead would fail Helm's "cannot re-use a name that is still in
    use". Once the release is in the stack's state, the import option is inert.
    """
    if repository.startswith("oci://"):
        chart_ref, repository_opts = f"{repository.rstrip('/')}/{chart}", None
    else:
        chart_ref, repository_opts = chart, RepositoryOptsArgs(repo=repository)
    return Release(
        resource_name,
        ReleaseArgs(
            name=release_name,
            chart=chart_ref,
            version=version,
            namespace=namespace,
            repository_opts=repository_opts,
            values=dict(values),
            skip_crds=skip_crds,
            cleanup_on_fail=True,
            max_history=10,
            timeout=RELEASE_TIMEOUT_SECONDS,
        ),
        # The provider's import ID of a release is `<namespace>/<name>`, as meshlift:adopt names it.
        opts=pulumi.ResourceOptions.merge(opts, adopted(release_ref(namespace, release_name) if adopt else None)),
    )


def adopted(import_id: str | None) -> pulumi.ResourceOptions:
    """The import option for an object that exists before meshlift (none when it does not)."""
    return pulumi.ResourceOptions(import_=import_id) if import_id else pulumi.ResourceOptions()
