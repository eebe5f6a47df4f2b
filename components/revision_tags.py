"""RevisionTags: one `istio-revision-tag-<tag>` MutatingWebhookConfiguration per tag.

Why separate objects and not the istiod chart's `revisionTags` value:

- Moving a tag is the promotion switch. As its own object, a move is one update
  of one webhook (its Service reference and `istio.io/rev` label), which a
  resource hook can gate and `pulumi preview` shows as exactly that. With
  `revisionTags`, a move re-renders two istiod releases (remove the tag from
  the old one, add it to the new one); Pulumi may run both upgrades in either
  order, and the second release then fails Helm's ownership check on an object
  the first still owns.
- A tag must outlive the revision it pointed at. Rendered by `istiod-<old>`, it
  is deleted with that release (or left orphaned, istio/istio #33822); here its
  lifetime is the tag's own, and the validator refuses a cleanup while any tag
  still points at the revision being removed.
- Rollback moves it back: returning to an earlier stage restores the webhook's
  earlier inputs, an ordinary update of the same object.

The webhooks mirror what istiod's chart and `istioctl tag set` render: one
namespace-level and one object-level webhook sending pods to `istiod-<rev>`.
`caBundle` is left out on purpose: istiod patches it into every webhook labelled
with its revision, and under server-side apply a field meshlift never sets is
never reset by it.

A tag named `default` also renders the two webhooks Istio's own
`revision-tags-mwc.yaml` adds for that tag (`if eq $tagName "default"`), which
a revisioned istiod's chart never renders: `namespace.` for namespaces labelled
`istio-injection=enabled`, and `object.` for pods labelled
`sidecar.istio.io/inject=true` in namespaces with neither label (how Istio
documents gateway Deployments: `inject.istio.io/templates: gateway`). Without
it, nothing injects those in a mesh of revisions only.

One deliberate difference, so a canary pod gets its own revision: Istio lets a
namespace's `istio.io/rev` win over a pod's (istio/istio #37088, #48316), so a
canary pod labelled `istio.io/rev: <new>` in a namespace labelled `stable`
would be injected by the old revision. meshlift's canary pods therefore also
carry `meshlift.io/inject-revision: <rev>`; the namespace-level tag webhook skips
pods with that label, and one `pod-revision.sidecar-injector.istio.io` webhook
per installed revision injects exactly those, in tag-enrolled namespaces. The
label is one no injector ever sets, so the two selectors stay disjoint before
and after injection (selecting on `istio.io/rev` would not: the injection
template adds it, and a later webhook would inject the pod a second time). The
pod-revision webhooks depend only on the set of tags, so moving a tag still
changes the tag's webhook alone. In a namespace labelled with a revision name
the istiod chart's own webhook decides and no pod label can override it; the
validator therefore requires canary workloads to live in tag-enrolled
namespaces.

Where a pod-revision webhook lives is forced by two Istio rules that a
configuration of its own cannot satisfy at once:

- istiod patches `caBundle` only into configurations labelled `istio.io/rev=<its
  revision>` (exactly), in webhooks whose names end in
  `sidecar-injector.istio.io` (`pkg/webhooks/webhookpatch.go`); without the
  label the webhook keeps no CA and every pod it matches fails to be created;
- `istioctl tag` takes the configurations labelled `istio.io/rev=<rev>` *without*
  `istio.io/tag` as the revision's one canonical injector and refuses to work
  when it finds two (`istioctl/pkg/tag`: "found multiple canonical webhooks");
  and every configuration labelled `istio.io/tag` is listed by `istioctl tag
  list` and counted by istiod as a tag of its revision (`pkg/revisions`).

So the webhook is not a configuration of its own: it is one more entry in the
revision's canonical injector, `istio-sidecar-injector-<rev>`, which the istiod
chart renders with `istio.io/rev=<rev>`. meshlift adds it by server-side apply
under its own field manager (`MutatingWebhookConfigurationPatch`): `webhooks`
is a list keyed by name, so meshlift owns that entry alone, Helm's three-way
merge on upgrades keeps an entry it never rendered, istiod patches its CA like
the chart's own entries, and `istioctl` still sees one injector per revision.
Deleting the patch (the revision is removed) drops the entry before the release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.admissionregistration.v1 import (
    MutatingWebhookArgs,
    MutatingWebhookConfiguration,
    MutatingWebhookConfigurationPatch,
    MutatingWebhookPatchArgs,
    RuleWithOperationsArgs,
    RuleWithOperationsPatchArgs,
    ServiceReferencePatchArgs,
    ServiceReferenceArgs,
    WebhookClientConfigArgs,
    WebhookClientConfigPatchArgs,
)
from pulumi_kubernetes.meta.v1 import (
    LabelSelectorArgs,
    LabelSelectorPatchArgs,
    LabelSelectorRequirementArgs,
    LabelSelectorRequirementPatchArgs,
    ObjectMetaArgs,
    ObjectMetaPatchArgs,
)

from components._helm import MANAGED_BY
from meshmodel.plan import INJECT_REVISION_LABEL, REVISION_LABEL

TAG_LABEL = "istio.io/tag"
INJECTION_LABEL = "istio-injection"
# A namespace labelled istio.io/rev=<tag> is served by the tag unless `istio-injection` says
# otherwise (enabled: the default injector's; disabled: nobody's). Istio's own tag webhooks
# require the label absent; meshlift's also serve it empty, the value enrolment leaves for a
# moment (components.namespace_enrollment), so no pod created then goes uninjected.
LEGACY_VALUES = ("enabled", "disabled")
POD_OPT_OUT = "sidecar.istio.io/inject"


def _suffix(istio_namespace: str) -> str:
    return "" if istio_namespace == "istio-system" else f"-{istio_namespace}"


def tag_webhook_name(tag: str, istio_namespace: str) -> str:
    """The object name Istio itself uses for a tag webhook."""
    return f"istio-revision-tag-{tag}{_suffix(istio_namespace)}"


DEFAULT_TAG = "default"
POD_REVISION_MANAGER = "meshlift-pod-revision"
PATCH_FIELD_MANAGER = "pulumi.com/patchFieldManager"


def injector_configuration_name(revision: str, istio_namespace: str) -> str:
    """The istiod chart's own injector configuration of a revision (its canonical injector)."""
    return f"istio-sidecar-injector-{revision}{_suffix(istio_namespace)}"


@dataclass(frozen=True, kw_only=True)
class RevisionTagsArgs:
    tags: Mapping[str, str]  # tag -> revision at this stage
    revisions: Sequence[str]  # every installed revision at this stage
    istio_namespace: str
    control_planes: Mapping[str, pulumi.Resource]  # revision -> its ControlPlaneRevision
    promotion_hooks: pulumi.ResourceHookBinding | None = None


class RevisionTags(pulumi.ComponentResource):
    """Tag webhooks; `webhooks[tag]` is what namespaces and gateways labelled with a tag depend on."""

    def __init__(self, name: str, args: RevisionTagsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("meshlift:index:RevisionTags", name, None, opts)
        self.webhooks: dict[str, MutatingWebhookConfiguration] = {}
        for tag, revision in sorted(args.tags.items()):
            self.webhooks[tag] = MutatingWebhookConfiguration(
                f"{name}-{tag}",
                metadata=ObjectMetaArgs(
                    name=tag_webhook_name(tag, args.istio_namespace),
                    labels={
                        TAG_LABEL: tag,
                        REVISION_LABEL: revision,  # istiod of this revision patches the caBundle
                        "app": "sidecar-injector",
                        **MANAGED_BY,
                    },
                ),
                webhooks=_tag_webhooks(tag, revision, args.istio_namespace),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # Never point a tag at an istiod that is not running yet.
                    depends_on=[args.control_planes[revision]],
                    hooks=args.promotion_hooks,
                ),
            )
        # Pods asking for a revision by meshlift's label (canaries), in tag-enrolled namespaces: one
        # more webhook in the revision's canonical injector (why there: the module docstring).
        self.pod_revisions: dict[str, MutatingWebhookConfigurationPatch] = {}
        tags = sorted(args.tags)
        for revision in sorted(args.revisions) if tags else []:
            self.pod_revisions[revision] = MutatingWebhookConfigurationPatch(
                f"{name}-pod-revision-{revision}",
                metadata=ObjectMetaPatchArgs(
                    name=injector_configuration_name(revision, args.istio_namespace),
                    annotations={PATCH_FIELD_MANAGER: POD_REVISION_MANAGER},
                ),
                webhooks=[_pod_revision_webhook(revision, args.istio_namespace, tags)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.control_planes[revision]]),
            )
        self.register_outputs({"tags": dict(args.tags)})


def _requirement(key: str, operator: str, *values: str) -> LabelSelectorRequirementArgs:
    return LabelSelectorRequirementArgs(key=key, operator=operator, values=list(values) or None)


def _webhook(prefix: str, revision: str, istio_namespace: str, namespace_selector: list,
             object_selector: list) -> MutatingWebhookArgs:
    """One injection webhook sending matching pods to `istiod-<revision>` (as Istio renders them)."""
    return MutatingWebhookArgs(
        # istiod patches its caBundle only into webhooks whose name ends like this.
        name=f"{prefix}sidecar-injector.istio.io",
        admission_review_versions=["v1"],
        side_effects="None",
        failure_policy="Fail",
        reinvocation_policy="Never",
        client_config=WebhookClientConfigArgs(
            service=ServiceReferenceArgs(
                name=f"istiod-{revision}", namespace=istio_namespace, path="/inject", port=443,
            ),
        ),
        rules=[RuleWithOperationsArgs(
            operations=["CREATE"], api_groups=[""], api_versions=["v1"], resources=["pods"],
        )],
        namespace_selector=LabelSelectorArgs(match_expressions=namespace_selector),
        object_selector=LabelSelectorArgs(match_expressions=object_selector),
    )


def _pod_revision_webhook(revision: str, istio_namespace: str, tags: list[str]) -> MutatingWebhookPatchArgs:
    """`_webhook`'s pod-revision entry, in the patch types its configuration's patch takes."""
    def requirement(key: str, operator: str, *values: str) -> LabelSelectorRequirementPatchArgs:
        return LabelSelectorRequirementPatchArgs(key=key, operator=operator, values=list(values) or None)

    return MutatingWebhookPatchArgs(
        name="pod-revision.sidecar-injector.istio.io",
        admission_review_versions=["v1"],
        side_effects="None",
        failure_policy="Fail",
        reinvocation_policy="Never",
        client_config=WebhookClientConfigPatchArgs(service=ServiceReferencePatchArgs(
            name=f"istiod-{revision}", namespace=istio_namespace, path="/inject", port=443)),
        rules=[RuleWithOperationsPatchArgs(
            operations=["CREATE"], api_groups=[""], api_versions=["v1"], resources=["pods"])],
        namespace_selector=LabelSelectorPatchArgs(match_expressions=[
            requirement(REVISION_LABEL, "In", *tags), requirement(INJECTION_LABEL, "NotIn", *LEGACY_VALUES)]),
        object_selector=LabelSelectorPatchArgs(match_expressions=[
            requirement(POD_OPT_OUT, "NotIn", "false"), requirement(INJECT_REVISION_LABEL, "In", revision)]),
    )


def _tag_webhooks(tag: str, revision: str, istio_namespace: str) -> list[MutatingWebhookArgs]:
    not_opted_out = _requirement(POD_OPT_OUT, "NotIn", "false")
    legacy = [] if tag != DEFAULT_TAG else [
        # As Istio's chart renders them for the tag `default` (revision-tags-mwc.yaml): what an
        # unrevisioned istiod served. Namespaces labelled istio-injection=enabled...
        _webhook("namespace.", revision, istio_namespace,
                 [_requirement(INJECTION_LABEL, "In", "enabled")], [not_opted_out]),
        # ...and pods labelled sidecar.istio.io/inject=true where no namespace label decides.
        _webhook("object.", revision, istio_namespace,
                 [_requirement(INJECTION_LABEL, "DoesNotExist"), _requirement(REVISION_LABEL, "DoesNotExist")],
                 [_requirement(POD_OPT_OUT, "In", "true"), _requirement(REVISION_LABEL, "DoesNotExist")]),
    ]
    return [
        # Namespaces labelled istio.io/rev=<tag> (and not overridden by istio-injection),
        # except pods asking for a revision: the pod-revision webhook takes those.
        _webhook(
            "rev.namespace.", revision, istio_namespace,
            [_requirement(REVISION_LABEL, "In", tag), _requirement(INJECTION_LABEL, "NotIn", *LEGACY_VALUES)],
            [not_opted_out, _requirement(INJECT_REVISION_LABEL, "DoesNotExist")],
        ),
        # Pods labelled istio.io/rev=<tag> in namespaces without any injection label.
        _webhook(
            "rev.object.", revision, istio_namespace,
            [_requirement(REVISION_LABEL, "DoesNotExist"), _requirement(INJECTION_LABEL, "DoesNotExist")],
            [not_opted_out, _requirement(REVISION_LABEL, "In", tag)],
        ),
        *legacy,
    ]
