"""PinnedConfig: Istio config objects pinned to the old revision, relabelled by patch, never by ownership.

istiod applies a config object labelled `istio.io/rev` only when the label is its
own revision (never a tag). With `meshlift:pinnedConfig: relabel`, each object the
run recorded as pinned to the rollout's `from` revision gets one
`CustomResourcePatch` (pulumi-kubernetes: server-side apply of an object of any
kind, by apiVersion, kind, namespace and name) that sends nothing but that label,
under meshlift's field manager (`pulumi.com/patchFieldManager: meshlift`):

- before promotion the patch says the `from` revision, the value the object
  already carries: the API server records meshlift as a co-owner of that one
  label and changes nothing;
- from promotion on it says the `to` revision, at the moment the tags move.
  `pulumi.com/patchForce` takes the label from whoever else owns it (a team's
  `kubectl apply`, a GitOps sync): only that field; every other field of the
  object stays theirs and is never sent;
- a rollback re-applies an earlier stage's config, whose patch says `from`
  again: the label goes back. (Deleting the patch, a rollback to an update
  recorded before the run, relinquishes the label instead: if meshlift alone owns
  it by then, the API server removes it, and the object applies to every
  revision.)

The patches are promotion resources: they accept the gate's resource hooks, so a
plain `pulumi up` relabels only once the promotion gate passed. The wiring also
hands them a `before_create` hook that refuses to create a patch whose object is
gone (`rollout.pinned_config.PinnedTargetCheck`): the provider's server-side apply
would otherwise create the object with nothing but the label, and an
AuthorizationPolicy without a spec denies every request in its namespace. One component
holds them all; children are named `pinned.<namespace>.<kind>.<name>` (a dot
cannot appear in a namespace or a kind).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apiextensions import CustomResourcePatch
from pulumi_kubernetes.meta.v1 import ObjectMetaPatchArgs

from components.namespace_enrollment import PATCH_FIELD_MANAGER, PATCH_FORCE
from meshmodel.plan import REVISION_LABEL, RelabelPlan

FIELD_MANAGER = "meshlift"  # the manager of every label and annotation meshlift patches onto a team's object


def child_name(plan: RelabelPlan) -> str:
    return f"pinned.{plan.namespace}.{plan.kind}.{plan.name}"


@dataclass(frozen=True, kw_only=True)
class PinnedConfigArgs:
    relabels: Sequence[RelabelPlan]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the revision the labels name
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class PinnedConfig(pulumi.ComponentResource):
    """One label patch per pinned Istio config object; `patches` in plan order."""

    def __init__(self, name: str, args: PinnedConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:PinnedConfig", name, None, opts)
        patch_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                            hooks=args.promotion_hooks)
        self.patches: list[pulumi.CustomResource] = [
            CustomResourcePatch(
                child_name(plan),
                api_version=plan.api_version,
                kind=plan.kind,
                metadata=ObjectMetaPatchArgs(
                    name=plan.name, namespace=plan.namespace, labels={REVISION_LABEL: plan.revision},
                    annotations={PATCH_FIELD_MANAGER: FIELD_MANAGER, PATCH_FORCE: "true"},
                ),
                opts=patch_opts,
            )
            for plan in args.relabels
        ]
        self.register_outputs({"relabelled": {str(plan): plan.revision for plan in args.relabels}})
