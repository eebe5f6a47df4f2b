"""What the mesh looks like at a stage: the spec resolved into concrete desired state.

`plan_for(spec)` is pure. The Pulumi program declares exactly this plan, the
orchestrator shows it (`meshlift plan`) and reads the checks' expectations from it
(which pods are canaries, which proxy version each must report).

Stage semantics (a rollout from revision A to revision B):
- no rollout / install: every listed revision runs; tags, namespaces and
  gateways point where the config says.
- canary: plus a canary clone (pods asking for B) of each `canary: true`
  workload that runs on A, and a canary Deployment of each gateway on A
  behind the same Service.
- promote: tags on A (or `promoteTags`) move to B, the default revision
  follows, gateways on A are upgraded in place, canaries are removed, and the
  workloads of waves 1..promotedWaves restart onto B (meshlift's pod-template
  annotation is patched). Later waves keep running A until their wave comes.
  With `restartedInWave: k` only the first k workloads of the last promoted
  wave restart (`wave_restart_order`): a wave applied in parts.
- cleanup: everything is promoted; revision A is removed.

With `meshlift:pinnedConfig: relabel`, each recorded Istio config object pinned to
A (`meshlift:pinnedObjects`) gets a label patch: `istio.io/rev: A` until
promotion, B from promotion on (the moment the tags move), so a rollback to an
earlier stage puts A back instead of dropping the label.

Workloads are selected, never declared: a namespace's workloads are the ones
`meshlift:inventory` records as running there (narrowed by the namespace's
`select`), or, with no inventory, the ones its `workloads` list names. A
workload that never carried meshlift's annotation gets no patch until its
wave is promoted, so nothing restarts before promotion; a rollback drops the
patch (or restores the recorded value) and the workload restarts back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from meshmodel.spec import IstioVersion, MeshSpec, NamespaceSpec, Stage, WorkloadSpec

REVISION_LABEL = "istio.io/rev"
TRACK_LABEL = "meshlift.io/track"  # stable | canary: tells canary pods from stable ones
PROXY_REVISION_ANNOTATION = "meshlift.io/proxy-revision"  # changing it restarts the pods
# A pod asking meshlift's webhooks for a revision (canaries); the injector never sets it.
INJECT_REVISION_LABEL = "meshlift.io/inject-revision"
# On a canary clone's pods (and its selector): the workload it was cloned from. The live
# workload's pods never carry it, so the two selectors never claim each other's pods.
CANARY_OF_LABEL = "meshlift.io/canary-of"
CANARY_SUFFIX = "-canary"
BASE_RELEASE_NAME = "istio-base"  # the name Istio's install docs give istio/base, too


def istiod_release_name(revision: str) -> str:
    return f"istiod-{revision}"


def release_ref(namespace: str, name: str) -> str:
    """How `meshlift:adopt` names a Helm release."""
    return f"{namespace}/{name}"


def declared_releases(spec: MeshSpec) -> dict[str, str]:
    """Every primary Helm release the spec declares, by `<namespace>/<release>`, with what it is."""
    releases = {release_ref(spec.istio_namespace, BASE_RELEASE_NAME): "istio/base"}
    for revision in spec.revisions:
        releases[release_ref(spec.istio_namespace, istiod_release_name(revision.revision))] = (
            f"istio/istiod of revision {revision.revision}")
    for gateway in spec.gateways:
        releases[release_ref(gateway.namespace, gateway.name)] = f"istio/gateway '{gateway.name}'"
    return releases


@dataclass(frozen=True)
class ControlPlanePlan:
    revision: str
    version: str
    values: dict[str, Any]


@dataclass(frozen=True)
class GatewayPlan:
    name: str
    namespace: str
    revision_label: str  # what the gateway's pods carry in istio.io/rev (tag or revision)
    revision: str  # the revision that label resolves to at this stage
    version: str  # istio/gateway chart version = that revision's version
    replicas: int
    service_type: str
    ports: list[dict[str, Any]]
    service_annotations: dict[str, str]
    values: dict[str, Any]
    canary_revision: str | None = None  # set during the canary stage
    canary_version: str | None = None


@dataclass(frozen=True)
class WorkloadPlan:
    """A workload that already runs: which revision its pods run after this stage, and
    the value of meshlift's pod-template annotation (None: meshlift does not patch it)."""

    namespace: str
    name: str
    kind: str  # Deployment | StatefulSet | DaemonSet
    selector: dict[str, str]  # the live workload's matchLabels ({} when no inventory recorded it)
    proxy_revision: str  # the revision its pods should run after this stage
    proxy_version: str
    wave: int
    restart_revision: str | None  # meshlift's annotation value; changing it restarts the pods
    template_hash: str = ""  # of the live pod template when the rollout started
    movement: str = "rolls"  # how its controller answers the restart (meshmodel.workload_class)
    evicted: bool = False  # an OnDelete workload whose pods meshlift evicts one by one
    selector_expressions: tuple[dict[str, Any], ...] = ()  # spec.selector.matchExpressions

    @property
    def moves(self) -> bool:
        """Whether its pods follow its wave; the others keep their proxy, out of the wave gates."""
        return self.movement == "rolls" or self.evicted


@dataclass(frozen=True)
class CanaryPlan:
    namespace: str
    name: str  # <workload>-canary
    workload: str  # the live workload it clones
    kind: str  # the clone's kind: the workload's own
    replicas: int
    selector: dict[str, str]  # its own: canary-of and track labels
    revision: str  # the revision its pods ask meshlift's webhooks for
    expected_proxy_version: str  # what /server_info must report


@dataclass(frozen=True)
class NamespacePlan:
    name: str
    create: bool
    revision_label: str
    revision: str
    wave: int
    labels: dict[str, str]


@dataclass(frozen=True)
class RelabelPlan:
    """An Istio config object pinned to the rollout's `from` revision, and the revision its label says now."""

    api_version: str
    kind: str
    namespace: str
    name: str
    revision: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class MeshPlan:
    stage: Stage | None
    istio_namespace: str
    chart_repository: str
    control_planes: list[ControlPlanePlan]
    default_revision: str
    tags: dict[str, str]
    gateways: list[GatewayPlan]
    namespaces: list[NamespacePlan]
    workloads: list[WorkloadPlan]
    canaries: list[CanaryPlan]
    removed_revisions: list[str] = field(default_factory=list)
    base_values: dict[str, Any] = field(default_factory=dict)
    adopted: frozenset[str] = frozenset()  # `<namespace>/<release>` of releases installed before meshlift
    from_revision: str | None = None  # the rollout's A and B (None without a rollout)
    to_revision: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    relabels: list[RelabelPlan] = field(default_factory=list)  # pinned config moved with the tags

    @property
    def base_version(self) -> str:
        """istio/base chart version: the newest installed revision's.

        CRDs are shared by every revision and only ever gain fields, so they must be
        as new as the newest control plane; the older istiod ignores what it does not know.
        """
        newest = max(self.control_planes, key=lambda plane: IstioVersion.parse(plane.version))
        return newest.version

    def adopts(self, namespace: str, release_name: str) -> bool:
        """Whether this release exists before meshlift and is imported instead of installed."""
        return release_ref(namespace, release_name) in self.adopted

    def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace holds an adopted release (so it exists and is imported too)."""
        return any(ref.split("/", 1)[0] == namespace for ref in self.adopted)

    def version_of(self, revision: str) -> str:
        for plane in self.control_planes:
            if plane.revision == revision:
                return plane.version
        raise KeyError(revision)


class _InNamespace(Protocol):
    @property
    def namespace(self) -> str: ...


_Item = TypeVar("_Item", bound=_InNamespace)


def by_namespace(items: Iterable[_Item]) -> dict[str, list[_Item]]:
    """Workloads or canaries grouped by namespace, each group in plan order."""
    grouped: dict[str, list[_Item]] = {}
    for item in items:
        grouped.setdefault(item.namespace, []).append(item)
    return grouped


def promoted_tags(spec: MeshSpec) -> set[str]:
    """The tags that move from the old revision to the new one at promotion."""
    rollout = spec.rollout
    if rollout is None:
        return set()
    if rollout.promote_tags is not None:
        return set(rollout.promote_tags)
    return {tag for tag, target in spec.tags.items() if target == rollout.from_revision}


@dataclass(frozen=True)
class SelectedWorkload:
    kind: str
    name: str
    selector: dict[str, str]
    template_hash: str
    proxy_revision: str | None  # meshlift's annotation as recorded in the inventory
    settings: WorkloadSpec | None  # the namespace's `workloads` entry for it, if any
    movement: str = "rolls"
    selector_expressions: tuple[dict[str, Any], ...] = ()


def selected_workloads(spec: MeshSpec, namespace: NamespaceSpec) -> list[SelectedWorkload]:
    """The namespace's workloads meshlift restarts, in inventory (or `workloads`) order; workloads
    Istio never injects are not among them (restarting them changes nothing)."""
    named = {(w.kind, w.name): w for w in namespace.workloads}
    if spec.inventory is None:
        return [SelectedWorkload(w.kind, w.name, {}, "", None, w) for w in namespace.workloads]
    return [
        SelectedWorkload(live.kind, live.name, dict(live.selector), live.template_hash, live.proxy_revision,
                         named.get((live.kind, live.name)), live.movement,
                         tuple(dict(e) for e in live.selector_expressions))
        for live in spec.inventory.get(namespace.name, [])
        if namespace.select.matches(live) and live.movement != "outsideMesh"
    ]


def _moves(spec: MeshSpec, live: SelectedWorkload) -> bool:
    """Whether its wave patches it: a workload that will not move (OnDelete left alone, paused, owned) is never
    patched, its pods keep their proxy."""
    return live.movement == "rolls" or (live.movement == "onDelete" and spec.restarts.on_delete == "evict")


def wave_restart_order(spec: MeshSpec, wave: int) -> list[tuple[str, str, str]]:
    """(namespace, kind, name) of the workloads promoting wave number `wave` restarts, in the order a wave
    applied in parts restarts them; `rollout.restartedInWave: k` restarts the first k."""
    return sorted((namespace.name, live.kind, live.name)
                  for namespace in spec.namespaces for live in selected_workloads(spec, namespace)
                  if namespace.wave_of(live.name, live.kind) == wave and _moves(spec, live))


def _held_back(spec: MeshSpec, waves_done: int) -> set[tuple[str, str, str]]:
    """Workloads of the last promoted wave that its parts have not restarted yet."""
    rollout = spec.rollout
    if rollout is None or rollout.stage is not Stage.PROMOTE or rollout.restarted_in_wave is None or not waves_done:
        return set()
    return set(wave_restart_order(spec, spec.waves[waves_done - 1])[rollout.restarted_in_wave:])


def plan_for(spec: MeshSpec) -> MeshPlan:
    rollout = spec.rollout
    stage = rollout.stage if rollout else None
    promoting = stage in (Stage.PROMOTE, Stage.CLEANUP)
    old = rollout.from_revision if rollout else None
    new = rollout.to_revision if rollout else None
    waves_done = len(spec.waves) if stage is Stage.CLEANUP else (rollout.promoted_waves if rollout else 0)
    promoted_wave_numbers = set(spec.waves[:waves_done]) if promoting else set()
    held_back = _held_back(spec, waves_done)

    tags = dict(spec.tags)
    if promoting:
        for tag in promoted_tags(spec):
            tags[tag] = new  # type: ignore[assignment]

    def resolve(ref: str) -> str:
        return tags.get(ref, ref)

    default = spec.default_revision or (old if rollout else spec.revisions[0].revision)
    if promoting and default == old:
        default = new  # the validating webhook must follow the live revision

    removed = [old] if stage is Stage.CLEANUP and old else []
    control_planes = [
        ControlPlanePlan(r.revision, r.version, dict(r.values))
        for r in spec.revisions
        if r.revision not in removed
    ]
    versions = {r.revision: r.version for r in spec.revisions}

    gateways = []
    for gateway in spec.gateways:
        label = gateway.revision
        if promoting and label == old:
            label = new  # type: ignore[assignment]
        revision = resolve(label)
        on_old = rollout is not None and revision == old
        canary = stage is Stage.CANARY and gateway.canary and on_old
        gateways.append(GatewayPlan(
            name=gateway.name,
            namespace=gateway.namespace,
            revision_label=label,
            revision=revision,
            version=versions[revision],
            replicas=gateway.replicas,
            service_type=gateway.service.type,
            ports=[p.model_dump(by_alias=True, exclude_none=True) for p in gateway.service.ports],
            service_annotations=dict(gateway.service.annotations),
            values=dict(gateway.values),
            canary_revision=new if canary else None,
            canary_version=versions[new] if canary and new else None,
        ))

    namespaces, workloads, canaries = [], [], []
    for namespace in spec.namespaces:
        label = namespace.revision
        if namespace.wave in promoted_wave_numbers and label == old:
            label = new  # type: ignore[assignment]
        label_revision = resolve(label)
        namespaces.append(NamespacePlan(
            name=namespace.name,
            create=namespace.create,
            revision_label=label,
            revision=label_revision,
            wave=namespace.wave,
            labels={**namespace.labels, REVISION_LABEL: label},
        ))
        for live in selected_workloads(spec, namespace):
            wave = namespace.wave_of(live.name, live.kind)
            evicted = live.movement == "onDelete" and spec.restarts.on_delete == "evict"
            promoted = (wave in promoted_wave_numbers and _moves(spec, live)
                        and (namespace.name, live.kind, live.name) not in held_back)
            # Until its wave restarts, a workload's pods keep the proxy they started with,
            # even when a moved tag already injects the new one into fresh pods.
            running = label_revision if promoted else spec.resolve(namespace.revision)
            workloads.append(WorkloadPlan(
                namespace=namespace.name,
                name=live.name,
                kind=live.kind,
                selector=dict(live.selector),
                proxy_revision=running,
                proxy_version=versions[running],
                wave=wave,
                restart_revision=new if promoted else live.proxy_revision,
                template_hash=live.template_hash,
                movement=live.movement,
                evicted=evicted,
                selector_expressions=live.selector_expressions,
            ))
            settings = live.settings
            if stage is Stage.CANARY and settings is not None and settings.canary and running == old:
                canaries.append(CanaryPlan(
                    namespace=namespace.name,
                    name=f"{live.name}{CANARY_SUFFIX}",
                    workload=live.name,
                    kind=live.kind,
                    replicas=settings.canary_replicas,
                    selector={CANARY_OF_LABEL: live.name, TRACK_LABEL: "canary"},
                    revision=new,  # type: ignore[arg-type]
                    expected_proxy_version=versions[new],  # type: ignore[index]
                ))

    relabels = []
    if rollout is not None and spec.pinned_config == "relabel":
        # Old until the tags move, so a rollback to an earlier stage puts the old label back.
        label = new if promoting else old
        relabels = [RelabelPlan(o.api_version, o.kind, o.namespace, o.name, label)  # type: ignore[arg-type]
                    for o in spec.pinned_objects or []]

    return MeshPlan(
        stage=stage,
        istio_namespace=spec.istio_namespace,
        chart_repository=spec.chart_repository,
        control_planes=control_planes,
        default_revision=default,
        tags=tags,
        gateways=gateways,
        namespaces=namespaces,
        workloads=workloads,
        canaries=canaries,
        removed_revisions=removed,
        base_values=dict(spec.base_values),
        adopted=frozenset(spec.adopt),
        from_revision=old,
        to_revision=new,
        from_version=rollout.from_version if rollout else None,
        to_version=rollout.to_version if rollout else None,
        relabels=relabels,
    )
