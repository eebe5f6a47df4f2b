"""Whether the unrevisioned istiod a takeover left can be uninstalled: what still depends on it.

After a takeover (docs/takeover.md) the istiod installed without a revision (Helm
release `istiod`, revision `default` to Istio) runs beside meshlift's revisions
until someone uninstalls it. Its webhooks serve what no revisioned istiod serves
(a revisioned chart renders neither of the two legacy webhooks; ISTIO_K8S_FACTS.md),
so uninstalling it silently un-meshes:

- pods it injected (their `sidecar.istio.io/status` says `"revision":"default"`):
  they lose their control plane and their certificates' renewal;
- namespaces labelled `istio-injection=enabled`, listed or not: every new pod
  there starts without a sidecar (a listed namespace carries it only when it came
  back after meshlift removed it);
- pod templates of every kind (Deployment, StatefulSet, DaemonSet, ReplicaSet,
  Job, CronJob) labelled `sidecar.istio.io/inject: "true"` in a namespace with no
  injection label (how Istio documents gateway Deployments): only the
  unrevisioned injector's object webhook selects their pods;
- what asks for revision `default` by name (`istio.io/rev=default` on a
  namespace, a pod template, a Gateway), exactly as the cleanup guard judges an
  old revision (`rollout.leftovers`).

The stack's tag `default` serves all but the first (components.revision_tags
renders the same two legacy webhooks for it, and `istio.io/rev=default` is its
name): with it declared, only pods still running the unrevisioned istiod's proxy
hold the retirement back. Pure rules on the API server's JSON, as the cleanup
guard's; `meshlift retire-check` lists and prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshmodel.spec import MeshSpec
from rollout.leftovers import (
    Leftover,
    Sources,
    _meta,
    injected_revision,
    old_revision_pods,
    own_templates,
    revision_source_leftovers,
)

UNREVISIONED = "default"  # the revision Istio gives an istiod installed without one
UNREVISIONED_RELEASE = "istiod"
INJECTION_LABEL = "istio-injection"
INJECT_LABEL = "sidecar.istio.io/inject"
REVISION_LABEL = "istio.io/rev"
DEFAULT_TAG = "default"
# Pods that lost their status annotation are not judged by their image: the stack does not say which
# version the unrevisioned istiod runs, and every pod it injected carries the annotation.
NO_VERSION = "-"


@dataclass(frozen=True)
class RetirementCheck:
    """What depends on the unrevisioned istiod; `message` says what to do."""

    istio_namespace: str
    leftovers: list[Leftover]  # pods first, then namespaces, templates, gateways
    default_tag: bool  # the stack declares the tag `default`, which serves the legacy labels

    @property
    def blocking(self) -> list[Leftover]:
        return [leftover for leftover in self.leftovers if leftover.blocking]

    @property
    def refused(self) -> bool:
        return bool(self.blocking)

    @property
    def message(self) -> str:
        release = f"{self.istio_namespace}/{UNREVISIONED_RELEASE}"
        if not self.refused:
            lines = [f"Nothing depends on the unrevisioned istiod ({release}) any more: uninstall it "
                     f"(helm uninstall {UNREVISIONED_RELEASE} -n {self.istio_namespace})."]
        else:
            lines = [f"Retirement refused: the unrevisioned istiod ({release}) still serves these; uninstalled, "
                     "they would lose their sidecar or its control plane."]
            lines += [f"  - {leftover}" for leftover in self.blocking]
            if not self.default_tag and any(leftover.kind != "Pod" for leftover in self.blocking):
                lines.append(f"Or keep them in the mesh without it: declare the tag `default` (meshlift:tags: "
                             f"{{default: <revision>}}, which serves {INJECTION_LABEL}=enabled namespaces and "
                             f"{INJECT_LABEL}=true pods as Istio's own chart does), uninstall the unrevisioned "
                             "istiod, then `pulumi up` right away.")
        finished = [leftover for leftover in self.leftovers if not leftover.blocking]
        if finished:
            lines.append("Not in the way (finished pods and Jobs run nothing), listed to tidy up:")
            lines += [f"  - {leftover}" for leftover in finished]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"refused": self.refused, "defaultTag": self.default_tag,
                "leftovers": [{"kind": p.kind, "namespace": p.namespace, "name": p.name, "owner": p.owner,
                               "phase": p.phase, "reason": p.reason, "hint": p.hint, "blocking": p.blocking}
                              for p in self.leftovers]}


def retirement_check(spec: MeshSpec, pods: Iterable[Mapping[str, Any]], sources: Sources) -> RetirementCheck:
    """Everything that would lose its injector or its control plane with the unrevisioned istiod."""
    default_tag = DEFAULT_TAG in spec.tags
    pods = list(pods)
    found = old_revision_pods(pods, old_revision=UNREVISIONED, old_version=NO_VERSION,
                              enrolled_namespaces=[namespace.name for namespace in spec.namespaces],
                              istio_namespace=spec.istio_namespace, sources=sources)
    if default_tag:  # the tag serves whatever asks for `default` by a label; pods it injected still run its proxy
        running = {(_meta(pod).get("namespace"), _meta(pod).get("name")) for pod in pods
                   if injected_revision(pod) == UNREVISIONED}
        found = [leftover for leftover in found if (leftover.namespace, leftover.name) in running]
    else:
        found += revision_source_leftovers(sources, old_revision=UNREVISIONED, istio_namespace=spec.istio_namespace)
        found += legacy_injection_leftovers(spec, sources)
    return RetirementCheck(spec.istio_namespace, found, default_tag)


def legacy_injection_leftovers(spec: MeshSpec, sources: Sources) -> list[Leftover]:
    """Namespaces labelled `istio-injection=enabled`, and pod templates labelled `sidecar.istio.io/inject:
    "true"` where no namespace label decides: only a default injector serves them."""
    listed = {namespace.name for namespace in spec.namespaces}
    found, labelled = [], set()
    for namespace in sources.get("namespaces") or []:
        name = _meta(namespace).get("name", "")
        labels = _meta(namespace).get("labels") or {}
        if {REVISION_LABEL, INJECTION_LABEL} & set(labels):
            labelled.add(name)
        if labels.get(INJECTION_LABEL) != "enabled":
            continue  # it overrides istio.io/rev: with it, only a default injector serves the namespace
        found.append(Leftover(
            "", name, "-", "-", f"labelled {INJECTION_LABEL}=enabled: only a default injector injects its new pods",
            f"meshlift lists it, and the label came back after meshlift removed it: remove it where it is declared, "
            f"then `kubectl label namespace {name} {INJECTION_LABEL}-`" if name in listed else
            f"list it under meshlift:namespaces (create: false) to enrol it in a revision or tag, or label it "
            f"yourself (kubectl label namespace {name} {INJECTION_LABEL}- {REVISION_LABEL}=<tag>) and restart its "
            "workloads", blocking=True, kind="Namespace"))
    for template in own_templates(sources, spec.istio_namespace):
        labels = template.labels
        if labels.get(INJECT_LABEL) != "true" or REVISION_LABEL in labels or template.namespace in labelled:
            continue  # not asking; asking a revision by name; or its namespace's label decides
        found.append(template.leftover(
            f"its pod template is labelled {INJECT_LABEL}=true in a namespace without an injection label: only a "
            "default injector injects its pods",
            f"label its pod template {REVISION_LABEL}=<tag> (a tag meshlift moves), or enrol namespace "
            f"{template.namespace}, then restart it"))
    return found

