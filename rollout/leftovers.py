"""Nothing left on the old revision: what stops cleanup from removing it.

Pure decisions on objects shaped exactly as the API server returns them (the
JSON of `GET /api/v1/pods` and friends, camelCase keys); the listing itself is
`rollout.platforms.kube_live` (or the rehearsal's fleet). A pod runs the
revision it was injected by, whatever its namespace says now, so the revision
is read from what the pod itself carries: the `sidecar.istio.io/status`
annotation the injector writes (its `revision`, read by `checks.kube`'s one
parser). Only a pod that lost that annotation is judged by the tag of its
`istio-proxy` image, and only when that image is Istio's proxy (`proxyv2`,
`-distroless` or not): ambient's ztunnel runs a container of the same name on
another image, and pods injected by an unrevisioned istiod of the same version
say `revision: default`.

The injector has not set the pod label `istio.io/rev` since Istio 1.10, so that
label says nothing about what runs; when a pod (or a pod template) carries it in
a namespace without an injection label, it *pins* the pod's next incarnation to
that revision (the revision's `rev.object` webhook; a namespace's own label wins).

Which leftovers stop cleanup:

- a pod that runs (or will run: Pending, Unknown) the old revision's proxy:
  once istiod-<old> is gone it gets no configuration and no new certificates;
  Job and CronJob pods included, since they run until they end;
- a namespace labelled `istio.io/rev=<old>`: every pod created there would ask
  for an injector that no longer exists, and start without a sidecar;
- a pod template of any kind (Deployment, StatefulSet, DaemonSet, ReplicaSet,
  Job, CronJob) pinned to the old revision by its label, even with no pod now (a
  CronJob between runs, a Deployment scaled to zero): its next pods would start
  without a sidecar. A Deployment's own ReplicaSets and a CronJob's Jobs are
  judged through their owner; a finished Job makes no more pods;
- a Gateway API `Gateway` (a gateway or a waypoint) labelled with the old
  revision: that revision's istiod deploys and programs it;
- a pod pinned by its own label when nothing above tells (no owner, or owners
  not listed): its next pod would ask for the removed revision;
- a tag that would point at a removed revision, or no default revision for the
  validating webhook (istio/istio #55980, #55897: tags left pointing at dead
  revisions).

Components that are not sidecars never stop it: the old revision's own istiod
(removed with its release), an unrevisioned istiod, ztunnel.

Pods that finished (Succeeded or Failed) run nothing: they are named, with how to
tidy them up, but they never hold cleanup back (sail-operator #839, #2100: Job
and failed pods keeping an old revision "in use" forever). Each hint follows the
owner chain (pod -> ReplicaSet -> Deployment or Argo Rollout, pod -> Job ->
CronJob) when the owners are listed, so it names what really exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.kube import PROXY_CONTAINER, STATUS_ANNOTATION, revision_in_status
from meshmodel.plan import REVISION_LABEL, MeshPlan

FINISHED_PHASES = ("Succeeded", "Failed")
INJECTION_LABEL = "istio-injection"
PROXY_IMAGE = "proxyv2"
# Components that are no sidecars: never in cleanup's way, whatever they carry.
NOT_SIDECARS = ("istiod", "ztunnel")
Sources = Mapping[str, list[dict[str, Any]]]  # namespaces, templates, gateways (KubeLive.revision_sources)


@dataclass(frozen=True)
class Leftover:
    namespace: str
    name: str
    owner: str  # "ReplicaSet/web-7d8f9c6b5", "Job/backup-29100", or "no owner"
    phase: str
    reason: str
    hint: str
    blocking: bool
    kind: str = "Pod"  # or Namespace, a workload kind, Gateway: what asks for the old revision

    def __str__(self) -> str:
        if self.kind == "Pod":
            return f"{self.namespace}/{self.name} ({self.owner}, {self.phase}): {self.reason}; {self.hint}"
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {self.reason}; {self.hint}"


@dataclass(frozen=True)
class CleanupRefusal:
    """Why cleanup may not remove the old revision yet; `message` says what to do."""

    old_revision: str
    pods: list[Leftover]  # every leftover, blocking or not (pods, then namespaces, templates, gateways)
    problems: list[str]  # tags and the default revision

    @property
    def blocking(self) -> list[Leftover]:
        return [pod for pod in self.pods if pod.blocking]

    @property
    def refused(self) -> bool:
        return bool(self.blocking or self.problems)

    @property
    def message(self) -> str:
        lines = [f"Cleanup refused: revision {self.old_revision} is still in use, and cleanup removes it."]
        lines += [f"  - {problem}" for problem in self.problems]
        lines += [f"  - {pod}" for pod in self.blocking]
        finished = [pod for pod in self.pods if not pod.blocking]
        if finished:
            lines.append("Not in the way (finished pods and Jobs run nothing), listed to tidy up:")
            lines += [f"  - {pod}" for pod in finished]
        lines.append("When these are resolved, run the same command again: the run resumes at cleanup.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"oldRevision": self.old_revision, "problems": list(self.problems),
                "pods": [{"kind": p.kind, "namespace": p.namespace, "name": p.name, "owner": p.owner,
                          "phase": p.phase, "reason": p.reason, "hint": p.hint, "blocking": p.blocking}
                         for p in self.pods]}


def injected_revision(pod: Mapping[str, Any]) -> str | None:
    """The revision named in the injector's status annotation of a pod in the API's JSON form
    (None: not injected, or unreadable)."""
    return revision_in_status((pod.get("metadata") or {}).get("annotations") or {})


def proxy_image_tag(pod: Mapping[str, Any]) -> str | None:
    """The tag of the pod's istio-proxy image (`docker.io/istio/proxyv2:1.30.3` -> `1.30.3`)."""
    image = _proxy_image(pod)
    if image is None:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def _proxy_image(pod: Mapping[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if container.get("name") == PROXY_CONTAINER:
            return str(container.get("image") or "").split("@", 1)[0]
    return None


def _runs(pod: Mapping[str, Any], revision: str, version: str) -> bool:
    """Whether the pod runs `revision`'s proxy: its injector's status says so, or (status lost) Istio's
    proxy image of that version."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(STATUS_ANNOTATION):
        return injected_revision(pod) == revision
    image = _proxy_image(pod)
    if image is None or not image.rsplit("/", 1)[-1].startswith(PROXY_IMAGE + ":"):
        return False
    return (proxy_image_tag(pod) or "").removesuffix("-distroless") == version


class Owners:
    """The owner chain of pods, from the listed templates (ReplicaSets, Jobs, and what owns them)."""

    def __init__(self, templates: list[dict[str, Any]] | None) -> None:
        self.known = templates is not None
        self._objects = {(_meta(t).get("namespace"), t.get("kind"), _meta(t).get("name")): t
                         for t in templates or []}

    def find(self, namespace: str, owner: str) -> dict[str, Any] | None:
        kind, _, name = owner.partition("/")
        return self._objects.get((namespace, kind, name))

    def hint(self, namespace: str, pod: str, owner: str) -> str:
        kind, _, name = owner.partition("/")
        obj = self.find(namespace, owner)
        above = _owner(_meta(obj)) if obj is not None else None
        if kind == "ReplicaSet" and obj is not None:
            if above is not None and above.startswith("Deployment/"):
                return self._deployment_hint(namespace, above.partition("/")[2])
            if above is not None and above.startswith("Rollout/"):
                return (f"restart its Argo Rollout (kubectl argo rollouts restart {above.partition('/')[2]} "
                        f"-n {namespace})")
            if above not in (None, "no owner"):
                return f"restart it through {above}, which owns its ReplicaSet/{name}"
            return (f"ReplicaSet/{name} has no Deployment and never replaces a running pod: delete the pod "
                    f"(kubectl delete pod {pod} -n {namespace}) and it makes it again on the new revision")
        strategy = ((obj or {}).get("spec") or {}).get("updateStrategy") or {}
        if kind in ("StatefulSet", "DaemonSet") and strategy.get("type") == "OnDelete":
            return (f"its {kind} is OnDelete, so a restart moves nothing: delete its pods one by one "
                    f"(kubectl delete pod {pod} -n {namespace})")
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        if kind == "StatefulSet" and partition > 0:
            return (f"its StatefulSet's partition {partition} keeps a restart from the ordinals below it: delete "
                    f"the pod (kubectl delete pod {pod} -n {namespace}); it comes back from the same template, on "
                    "the new revision")
        if obj is not None and above not in (None, "no owner"):
            return f"restart it through {above}, which owns {owner}"
        if kind == "Job" and above is not None and above.startswith("CronJob/"):
            return (f"a Job of {above} keeps its proxy until it ends: let it finish, or delete it (the next "
                    "run starts on the new revision)")
        return _restart_hint(owner, namespace)

    def _deployment_hint(self, namespace: str, name: str) -> str:
        deployment = self.find(namespace, f"Deployment/{name}")
        above = _owner(_meta(deployment)) if deployment is not None else None
        if above is not None:
            return f"restart it through {above}, which owns Deployment/{name} (and may revert a restart)"
        if deployment is not None and (deployment.get("spec") or {}).get("paused"):
            return (f"its Deployment is paused and rolls nothing: resume it (kubectl rollout resume "
                    f"deployment/{name} -n {namespace}) and restart it, or delete the pod")
        return f"restart its Deployment (kubectl rollout restart deployment/{name} -n {namespace})"


def old_revision_pods(pods: Iterable[Mapping[str, Any]], *, old_revision: str, old_version: str,
                      enrolled_namespaces: Iterable[str], istio_namespace: str = "istio-system",
                      sources: Sources | None = None) -> list[Leftover]:
    """Every pod still tied to the old revision, by what it carries, sorted by namespace/name.

    The old revision's own istiod pods carry its `istio.io/rev` label too: cleanup
    removes them with their release, so they are never in its way. With `sources`
    the owner chains are walked, and a pinned pod with an owner is judged by that
    owner's template (`revision_source_leftovers`).
    """
    unlabelled = _unlabelled(enrolled_namespaces, sources)
    owners = Owners((sources or {}).get("templates") if sources is not None else None)
    found = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        if _not_a_sidecar(metadata, istio_namespace):
            continue
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        finished = phase in FINISHED_PHASES
        owner = _owner(metadata) or "no owner"
        # A namespace's own istio.io/rev wins over the pod's (istio/istio #37088): only
        # pods in namespaces without an injection label are pinned by their label.
        pinned = (metadata.get("labels") or {}).get(REVISION_LABEL) == old_revision and unlabelled(namespace)
        if _runs(pod, old_revision, old_version):
            found.append(Leftover(namespace, name, owner, phase, f"runs revision {old_revision}'s proxy",
                                  _finished_hint(owner) if finished else owners.hint(namespace, name, owner),
                                  blocking=not finished))
        elif pinned and not (owners.known and owner != "no owner"):
            will_come_back = not finished or owner != "no owner"
            found.append(Leftover(
                namespace, name, owner, phase, f"its own {REVISION_LABEL} label pins it to {old_revision}",
                f"set {REVISION_LABEL} in its owner's pod template to a tag or the new revision, then restart it"
                if will_come_back else _finished_hint(owner),
                blocking=will_come_back,
            ))
    return sorted(found, key=lambda leftover: (leftover.namespace, leftover.name))


def revision_source_leftovers(sources: Sources, *, old_revision: str, istio_namespace: str = "istio-system"
                              ) -> list[Leftover]:
    """Namespaces, pod templates of every kind and Gateway API Gateways that would ask for the old revision."""
    unlabelled = _unlabelled((), sources)
    found = []
    for namespace in sources.get("namespaces") or []:
        name = _meta(namespace).get("name", "")
        if (_meta(namespace).get("labels") or {}).get(REVISION_LABEL) == old_revision:
            found.append(Leftover(
                "", name, "-", "-", f"labelled {REVISION_LABEL}={old_revision}: every new pod there asks for "
                "the removed revision and would start without a sidecar",
                f"label it with a tag or the new revision (kubectl label namespace {name} "
                f"{REVISION_LABEL}=<tag> --overwrite), then restart its workloads", blocking=True, kind="Namespace"))
    for template in own_templates(sources, istio_namespace):
        if template.labels.get(REVISION_LABEL) != old_revision or not unlabelled(template.namespace):
            continue
        found.append(template.leftover(
            f"its pod template pins {REVISION_LABEL}={old_revision}: its next pods would ask for the removed "
            "revision and start without a sidecar",
            f"set {REVISION_LABEL} in its pod template to a tag or the new revision"))
    for gateway in sources.get("gateways") or []:
        metadata = _meta(gateway)
        if (metadata.get("labels") or {}).get(REVISION_LABEL) == old_revision:
            found.append(Leftover(
                metadata.get("namespace", ""), metadata.get("name", ""), "-", "-",
                f"labelled {REVISION_LABEL}={old_revision}: that revision's istiod deploys and programs it",
                f"label it with a tag or the new revision (kubectl label gateway.gateway.networking.k8s.io "
                f"{metadata.get('name')} -n {metadata.get('namespace')} {REVISION_LABEL}=<tag> --overwrite)",
                blocking=True, kind="Gateway"))
    return found


@dataclass(frozen=True)
class PodTemplate:
    """A workload's pod template judged for itself: what its next pods will carry."""

    kind: str
    namespace: str
    name: str
    owner: str
    labels: Mapping[str, str]  # its pod template's labels
    finished: bool  # a Job that ran to its end makes no more pods

    def leftover(self, reason: str, hint: str) -> Leftover:
        """A Leftover for it: blocking unless finished (then only listed, to tidy up)."""
        return Leftover(self.namespace, self.name, self.owner, "finished" if self.finished else "-", reason,
                        "finished; delete it to tidy up" if self.finished else hint, blocking=not self.finished,
                        kind=self.kind)


def own_templates(sources: Sources, istio_namespace: str) -> list[PodTemplate]:
    """The listed pod templates of every kind, but a Deployment's ReplicaSets and a CronJob's Jobs (judged
    through their owner) and istiod's or ztunnel's own."""
    found = []
    for template in sources.get("templates") or []:
        metadata, kind = _meta(template), str(template.get("kind"))
        namespace = metadata.get("namespace", "")
        owner = _owner(metadata) or "no owner"
        if (kind, owner.partition("/")[0]) in (("ReplicaSet", "Deployment"), ("Job", "CronJob")) \
                or namespace == istio_namespace and (metadata.get("labels") or {}).get("app") in NOT_SIDECARS:
            continue
        found.append(PodTemplate(kind, namespace, metadata.get("name", ""), owner,
                                 (_pod_template(template).get("metadata") or {}).get("labels") or {},
                                 kind == "Job" and _job_finished(template)))
    return found


def cleanup_refusal(plan: MeshPlan, pods: Iterable[Mapping[str, Any]],
                    sources: Sources | None = None) -> CleanupRefusal | None:
    """None when cleanup may remove the old revision; else everything in its way.

    `plan` is the cleanup stage's plan (its `removed_revisions` say what goes);
    `sources` what else may ask for a revision (None: pods only).
    """
    if not plan.removed_revisions or plan.from_revision is None or plan.from_version is None:
        return None
    removed = set(plan.removed_revisions)
    installed = {plane.revision for plane in plan.control_planes}
    problems = [f"tag {tag} would point at the removed revision {revision}; move it first"
                for tag, revision in sorted(plan.tags.items()) if revision in removed or revision not in installed]
    if plan.default_revision not in installed:
        problems.append(f"the default revision (the validating webhook) would be {plan.default_revision}, which "
                        "is not installed after cleanup: set meshlift:defaultRevision to an installed revision")
    leftovers = old_revision_pods(pods, old_revision=plan.from_revision, old_version=plan.from_version,
                                  enrolled_namespaces=[namespace.name for namespace in plan.namespaces],
                                  istio_namespace=plan.istio_namespace, sources=sources)
    if sources is not None:
        leftovers += revision_source_leftovers(sources, old_revision=plan.from_revision,
                                               istio_namespace=plan.istio_namespace)
    refusal = CleanupRefusal(plan.from_revision, leftovers, problems)
    return refusal if refusal.refused or leftovers else None


def _unlabelled(enrolled_namespaces: Iterable[str], sources: Sources | None):
    """Whether a namespace carries no injection label (so a pod's own label picks its revision): from the
    listed namespaces when there are, else: not one of meshlift's enrolled namespaces."""
    if sources is not None and sources.get("namespaces"):
        labelled = {_meta(ns).get("name") for ns in sources["namespaces"]
                    if {REVISION_LABEL, INJECTION_LABEL} & set((_meta(ns).get("labels") or {}))}
        return lambda namespace: namespace not in labelled
    enrolled = set(enrolled_namespaces)
    return lambda namespace: namespace not in enrolled


def _not_a_sidecar(metadata: Mapping[str, Any], istio_namespace: str) -> bool:
    app = (metadata.get("labels") or {}).get("app")
    return (metadata.get("namespace") == istio_namespace and app == "istiod") or app == "ztunnel"


def _pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return spec.get("template") or {}


def _job_finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    return bool(status.get("completionTime")) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def _owner(metadata: Mapping[str, Any]) -> str | None:
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller", True):
            return f"{reference.get('kind')}/{reference.get('name')}"
    return None


def _restart_hint(owner: str, namespace: str = "") -> str:
    kind, _, name = owner.partition("/")
    where = f" -n {namespace}" if namespace else ""
    if kind == "ReplicaSet":
        # Owners not listed: a Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`.
        return f"restart its Deployment (kubectl rollout restart deployment/{name.rsplit('-', 1)[0]}{where})"
    if kind in ("StatefulSet", "DaemonSet"):
        return f"restart it (kubectl rollout restart {kind.lower()}/{name}{where})"
    if kind == "Job":
        return "a Job's pod keeps its proxy until it ends: let it finish, or delete it (the Job retries on the new revision)"
    if owner == "no owner":
        return "delete it and create it again: it is injected with the new revision"
    return f"restart it through its owner {owner}"


def _finished_hint(owner: str) -> str:
    if owner.startswith("Job/"):
        return "finished; its Job (or CronJob history limit) keeps it: delete it to tidy up"
    return "finished; delete it to tidy up"
