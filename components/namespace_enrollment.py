"""NamespaceEnrollment: an application namespace labelled `istio.io/rev=<revision or tag>`.

A namespace meshlift creates (`create: true`) is a plain Namespace with the label.

An existing namespace (`create: false`) is never taken over: it is patched by
server-side apply (`NamespacePatch`), so meshlift owns only the labels it sets and
deleting the patch never deletes the namespace. `istio-injection` must also go:
it overrides `istio.io/rev` (the revision injectors require it to be absent,
Istio analyzer IST0123). Under server-side apply a manager can remove only a
field it owns, and that label was usually set by someone else (`kubectl label`).
So, as pulumi-kubernetes documents for deleting an existing field ("Delete an
existing field using Patch"), two patches share one field manager
(`meshlift-enroll-<namespace>`), both with `pulumi.com/patchForce`:

1. `<name>-take-injection-label` force-applies `istio-injection: ""`, taking
   ownership of the label from whoever set it;
2. `<name>-enrollment` (after 1) applies `istio.io/rev` and leaves
   `istio-injection` out (it is written as null, which the provider drops): the
   shared manager no longer asks for a label it alone owns, so the API server
   removes it.

Step 1 must never run again: re-applied under the shared manager, its config
would claim only `istio-injection` and so *remove* `istio.io/rev`. Its labels are
in `ignore_changes`, so the diff a refresh would otherwise find (the label it
set is gone, by design) never turns into an update.

Pods created between the two steps (milliseconds apart) see an empty
`istio-injection` label and are not injected; they keep running uninjected until
their next restart, which every promotion wave performs anyway. A label someone
adds again later by hand is not removed until the namespace is enrolled anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.core.v1 import Namespace, NamespacePatch
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs, ObjectMetaPatchArgs

from components._helm import MANAGED_BY
from meshmodel.plan import NamespacePlan

LEGACY_INJECTION_LABEL = "istio-injection"
PATCH_FORCE = "pulumi.com/patchForce"
PATCH_FIELD_MANAGER = "pulumi.com/patchFieldManager"


def field_manager(namespace: str) -> str:
    return f"meshlift-enroll-{namespace}"


@dataclass(frozen=True, kw_only=True)
class NamespaceEnrollmentArgs:
    plan: NamespacePlan
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # its injector (istiod, tag)
    # A namespace enrolled by revision name is relabelled to the new revision at
    # promotion: that relabelling is a promotion step, gated like the others.
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class NamespaceEnrollment(pulumi.ComponentResource):
    """The namespace's injection label; workloads and canaries in it depend on `labelled`."""

    def __init__(self, name: str, args: NamespaceEnrollmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:NamespaceEnrollment", name, None, opts)
        plan = args.plan
        after = list(args.depends_on)
        self.labelled: pulumi.Resource
        if plan.create:
            self.labelled = Namespace(
                f"{name}-namespace",
                metadata=ObjectMetaArgs(name=plan.name, labels={**plan.labels, **MANAGED_BY}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=after, hooks=args.promotion_hooks),
            )
        else:
            annotations = {PATCH_FORCE: "true", PATCH_FIELD_MANAGER: field_manager(plan.name)}
            take = NamespacePatch(
                f"{name}-take-injection-label",
                metadata=ObjectMetaPatchArgs(
                    name=plan.name, annotations=annotations, labels={LEGACY_INJECTION_LABEL: ""},
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=after, ignore_changes=["metadata.labels"]),
            )
            self.labelled = NamespacePatch(
                f"{name}-enrollment",
                metadata=ObjectMetaPatchArgs(
                    name=plan.name,
                    annotations=annotations,
                    # Left out of the shared manager's config: the label it alone owns goes.
                    labels={**plan.labels, LEGACY_INJECTION_LABEL: None},
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[take, *after], hooks=args.promotion_hooks),
            )
        self.register_outputs({
            "namespace": plan.name,
            "revisionLabel": plan.revision_label,
            "revision": plan.revision,
            "created": plan.create,
        })
