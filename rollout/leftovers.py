"""Nothing left on the old revision: what stops cleanup from removing it.

Pure decisions on pods shaped exactly as the API server returns them (the JSON
of `GET /api/v1/pods`, camelCase keys); the listing itself is
`rollout.platforms.kube_live` (or the rehearsal's fleet). A pod runs the
revision it was injected by, whatever its namespace says now, so the revision
is read from what the pod itself carries:

- the `sidecar.istio.io/status` annotation the injector writes (its `revision`);
- the tag of the `istio-proxy` container's image (a classic or a native sidecar).

The injector has not set the pod label `istio.io/rev` since Istio 1.10, so that
label says nothing about what runs; when a pod carries it in a namespace without
an injection label, it *pins* the pod's next incarnation to that revision.

Which leftovers stop cleanup:

- a pod that runs (or will run: Pending, Unknown) the old revision's proxy:
  once istiod-<old> is gone it gets no configuration and no new certificates;
  Job and CronJob pods included, since they run until they end;
- a pod pinned to the old revision by its own label, when something will make
  it again (it has an owner, or it is still running): its next pod would ask
  for an injector that no longer exists;
- a tag that would point at a removed revision, or no default revision for the
  validating webhook (istio/istio #55980, #55897: tags left pointing at dead
  revisions).

Pods that finished (Succeeded or Failed) run nothing: they are named, with how to
tidy them up, but they never hold cleanup back (sail-operator #839, #2100: Job
and failed pods keeping an old revision "in use" forever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.kube import PROXY_CONTAINER, revision_in_status
from meshmodel.plan import REVISION_LABEL, MeshPlan

FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Leftover:
    namespace: str
    name: str
    owner: str  # "ReplicaSet/web-7d8f9c6b5", "Job/backup-29100", or "no owner"
    phase: str
    reason: str
    hint: str
    blocking: bool

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} ({self.owner}, {self.phase}): {self.reason}; {self.hint}"


@dataclass(frozen=True)
class CleanupRefusal:
    """Why cleanup may not remove the old revision yet; `message` says what to do."""

    old_revision: str
    pods: list[Leftover]  # every leftover, blocking or not
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
            lines.append("Not in the way (finished pods run nothing), listed to tidy up:")
            lines += [f"  - {pod}" for pod in finished]
        lines.append("When these are resolved, run the same command again: the run resumes at cleanup.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"oldRevision": self.old_revision, "problems": list(self.problems),
                "pods": [{"namespace": p.namespace, "name": p.name, "owner": p.owner, "phase": p.phase,
                          "reason": p.reason, "hint": p.hint, "blocking": p.blocking} for p in self.pods]}


def injected_revision(pod: Mapping[str, Any]) -> str | None:
    """The revision named in the injector's status annotation of a pod in the API's JSON form
    (None: not injected, or unreadable)."""
    return revision_in_status((pod.get("metadata") or {}).get("annotations") or {})


def proxy_image_tag(pod: Mapping[str, Any]) -> str | None:
    """The tag of the pod's istio-proxy image (`docker.io/istio/proxyv2:1.30.3` -> `1.30.3`)."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if container.get("name") == PROXY_CONTAINER:
            image = str(container.get("image") or "").split("@", 1)[0]
            last = image.rsplit("/", 1)[-1]
            return last.rsplit(":", 1)[1] if ":" in last else None
    return None


def old_revision_pods(pods: Iterable[Mapping[str, Any]], *, old_revision: str, old_version: str,
                      enrolled_namespaces: Iterable[str], istio_namespace: str = "istio-system") -> list[Leftover]:
    """Every pod still tied to the old revision, by what it carries, sorted by namespace/name.

    The old revision's own istiod pods carry its `istio.io/rev` label too: cleanup
    removes them with their release, so they are never in its way.
    """
    enrolled = set(enrolled_namespaces)
    found = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        if namespace == istio_namespace and (metadata.get("labels") or {}).get("app") == "istiod":
            continue
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        finished = phase in FINISHED_PHASES
        owner = _owner(metadata)
        runs_old = injected_revision(pod) == old_revision or proxy_image_tag(pod) == old_version
        # A namespace's own istio.io/rev wins over the pod's (istio/istio #37088): only
        # pods outside meshlift's enrolled namespaces are pinned by their label.
        pinned = (metadata.get("labels") or {}).get(REVISION_LABEL) == old_revision and namespace not in enrolled
        if runs_old:
            found.append(Leftover(namespace, name, owner, phase, f"runs revision {old_revision}'s proxy",
                                  _finished_hint(owner) if finished else _restart_hint(owner),
                                  blocking=not finished))
        elif pinned:
            will_come_back = not finished or owner != "no owner"
            found.append(Leftover(
                namespace, name, owner, phase, f"its own {REVISION_LABEL} label pins it to {old_revision}",
                f"set {REVISION_LABEL} in its owner's pod template to a tag or the new revision, then restart it"
                if will_come_back else _finished_hint(owner),
                blocking=will_come_back,
            ))
    return sorted(found, key=lambda leftover: (leftover.namespace, leftover.name))


def cleanup_refusal(plan: MeshPlan, pods: Iterable[Mapping[str, Any]]) -> CleanupRefusal | None:
    """None when cleanup may remove the old revision; else everything in its way.

    `plan` is the cleanup stage's plan (its `removed_revisions` say what goes).
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
                                  istio_namespace=plan.istio_namespace)
    refusal = CleanupRefusal(plan.from_revision, leftovers, problems)
    return refusal if refusal.refused or leftovers else None


def _owner(metadata: Mapping[str, Any]) -> str:
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller", True):
            return f"{reference.get('kind')}/{reference.get('name')}"
    return "no owner"


def _restart_hint(owner: str) -> str:
    kind, _, name = owner.partition("/")
    if kind == "ReplicaSet":
        # A Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`.
        return f"restart its Deployment (kubectl rollout restart deployment/{name.rsplit('-', 1)[0]})"
    if kind in ("StatefulSet", "DaemonSet"):
        return f"restart it (kubectl rollout restart {kind.lower()}/{name})"
    if kind == "Job":
        return "a Job's pod keeps its proxy until it ends: let it finish, or delete it (the Job retries on the new revision)"
    if owner == "no owner":
        return "delete it and create it again: it is injected with the new revision"
    return f"restart it through its owner {owner}"


def _finished_hint(owner: str) -> str:
    if owner.startswith("Job/"):
        return "finished; its Job (or CronJob history limit) keeps it: delete it to tidy up"
    return "finished; delete it to tidy up"
