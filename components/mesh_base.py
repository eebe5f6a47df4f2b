"""MeshBase: the control plane's namespace and the istio/base chart (CRDs, default validator).

CRDs are kept on delete by Helm's `keep` resource policy, which Istio's CRD
manifests carry (`"helm.sh/resource-policy": keep`, both in the chart's `crds/`
directory and in the templated CRDs of newer charts). meshlift does not set
`retain_on_delete` on the release instead: that would also leave the
`istiod-default-validator` webhook behind after the istiod it points at is gone,
which blocks every write of Istio config (istio/istio #35590, #43227).

The control plane's namespace *is* retained on delete: it holds the mesh's root
CA (`istio-ca-secret`); deleting it would invalidate every workload certificate.

`base.enableCRDTemplates` is on by default so that `helm upgrade` of this release
upgrades the CRDs along with the newest revision (CRDs in `crds/` are installed
once and never upgraded by Helm); `skip_crds` follows it, because installing the
same CRDs from both `crds/` and the templates fails (istio/istio #43204). An
installation whose CRDs came from `crds/` sets `baseValues.base.enableCRDTemplates:
false`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components._helm import MANAGED_BY, adopted, layered_values, release
from meshmodel.plan import BASE_RELEASE_NAME

DEFAULT_BASE_VALUES: dict[str, Any] = {"base": {"enableCRDTemplates": True}}


@dataclass(frozen=True, kw_only=True)
class MeshBaseArgs:
    istio_namespace: str
    chart_repository: str
    version: str  # the newest installed revision's version
    default_revision: str  # always an installed revision (the plan guarantees it)
    values: dict[str, Any] = field(default_factory=dict)
    # Moving the default validator to the new revision is part of promotion.
    promotion_hooks: pulumi.ResourceHookBinding | None = None
    # Taking over an installation made with Helm: the namespace and the `istio-base`
    # release exist, and are imported instead of created.
    namespace_exists: bool = False
    adopt_release: bool = False


class MeshBase(pulumi.ComponentResource):
    """istio/base in the control plane's namespace; resources using Istio CRDs depend on `crds`."""

    def __init__(self, name: str, args: MeshBaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:MeshBase", name, None, opts)
        self.namespace = Namespace(
            f"{name}-namespace",
            metadata=ObjectMetaArgs(name=args.istio_namespace, labels=dict(MANAGED_BY)),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True).merge(
                adopted(args.istio_namespace if args.namespace_exists else None)),
        )
        values = layered_values(
            DEFAULT_BASE_VALUES,
            args.values,
            {"defaultRevision": args.default_revision, "global": {"istioNamespace": args.istio_namespace}},
        )
        self.release = release(
            f"{name}-release",
            release_name=BASE_RELEASE_NAME,
            chart="base",
            version=args.version,
            namespace=args.istio_namespace,
            repository=args.chart_repository,
            values=values,
            skip_crds=bool(values.get("base", {}).get("enableCRDTemplates")),
            adopt=args.adopt_release,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace], hooks=args.promotion_hooks),
        )
        # Istio custom resources (and istiod, which needs the CRDs) depend on this.
        self.crds: pulumi.Resource = self.release
        self.register_outputs({
            "release": BASE_RELEASE_NAME,
            "version": args.version,
            "defaultRevision": args.default_revision,
        })
