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
per installed revision (in `meshlift-pod-revision-<rev>`) injects exactly those, in tag-enrolled namespaces. The
label is one no injector ever sets, so the two selectors stay disjoint before
and after injection (selecting on `istio.io/rev` would not: the injection
template adds it, and a later webhook would inject the pod a second time). The
pod-revision webhooks depend only on the set of tags, so moving a tag still
changes the tag's webhook alone. In a namespace labelled with a revision name
the istiod chart's own webhook decides and no pod label can override it; the
validator therefore requires canary workloads to live in tag-enrolled
namespaces.

Where a pod-revision webhook lives: a configuration of its own,
`meshlift-pod-revision-<rev>`, labelled `istio.io/rev=<rev>` so that istiod patches
its `caBundle` (`pkg/webhooks/webhookpatch.go`), and never `istio.io/tag`:
`istioctl tag list` and istiod's tag watcher (`pkg/revisions/tag_watcher.go`) take
every configuration carrying that label for a tag of its revision, so a label
`istio.io/tag: meshlift-pod-revision-<rev>` listed one fake tag per revision.
Labelled with the revision alone, it reads as the revision itself: `tag list`
folds it into the revision's own row. The cost: `istioctl tag set|generate
--revision <rev>` wants exactly one configuration labelled
`istio.io/rev=<rev>,!istio.io/tag` and refuses with two; meshlift owns the tags,
so they are moved in the stack, not by istioctl. Adding the entry to the chart's
own `istio-sidecar-injector-<rev>` by server-side apply instead was tried on the
real engine: the provider stores the whole patched list and diffs it by
position, so every later `pulumi preview` proposed a change to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.admissionregistration.v1 import (
    MutatingWebhookArgs,
    MutatingWebhookConfiguration,
    RuleWithOperationsArgs,
    ServiceReferenceArgs,
    WebhookClientConfigArgs,
)
from pulumi_kubernetes.meta.v1 import (
    LabelSelectorArgs,
    LabelSelectorRequirementArgs,
    ObjectMetaArgs,
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


def pod_revision_webhook_name(revision: str, istio_namespace: str) -> str:
    return f"meshlift-pod-revision-{revision}{_suffix(istio_namespace)}"


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
        # Pods asking for a revision by meshlift's label (canaries), in tag-enrolled namespaces.
        self.pod_revisions: dict[str, MutatingWebhookConfiguration] = {}
        tags = sorted(args.tags)
        for revision in sorted(args.revisions) if tags else []:
            self.pod_revisions[revision] = MutatingWebhookConfiguration(
                f"{name}-pod-revision-{revision}",
                metadata=ObjectMetaArgs(
                    name=pod_revision_webhook_name(revision, args.istio_namespace),
                    # istio.io/rev: istiod of the revision patches the caBundle of webhooks so labelled.
                    # Never istio.io/tag: istioctl and istiod take every configuration carrying it for a tag.
                    labels={REVISION_LABEL: revision, "app": "sidecar-injector", **MANAGED_BY},
                ),
                webhooks=[_webhook(
                    "pod-revision.", revision, args.istio_namespace,
                    [_requirement(REVISION_LABEL, "In", *tags), _requirement(INJECTION_LABEL, "NotIn", *LEGACY_VALUES)],
                    [_requirement(POD_OPT_OUT, "NotIn", "false"), _requirement(INJECT_REVISION_LABEL, "In", revision)],
                )],
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
