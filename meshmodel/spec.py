"""The mesh spec: one typed, validated model of a stack's `meshlift:*` config.

Everything reads this model: the Pulumi program, the orchestrator, and the
checks' expectations. It is built once, by `meshmodel.spec_check.load_spec`, before anything is
registered or touched; a bad config raises `SpecError` naming every offending
key path (`meshlift:gateways[1].namespace`) and the reason.

This module imports no Pulumi and no Kubernetes code on purpose: the checks and
the CLI use it on machines and in processes where neither is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from meshmodel.fields import (
    MAX_INVENTORY_ITEMS,
    MAX_ITEMS,
    Annotations,
    ByteCount,
    ConfigModel,
    Duration,
    Fraction,
    IstioVersion,
    Labels,
    Name,
    NonNegativeInt,
    PositiveInt,
    Version,
    check_dns_label,
    parse_duration,
    revision_name,
)
from meshmodel.packed import unpack
from meshmodel.parity_allow import validate_allow_entry
from meshmodel.proxy_profile import ProxyProfile
from meshmodel.workload_class import Movement

__all__ = [  # the field types are re-exported: most readers of the config need them with the models
    "CONFIG_NAMESPACE", "DEFAULT_CHART_REPOSITORY", "INJECTION_LABELS", "STAGE_ORDER", "WORKLOAD_KINDS",
    "Stage", "IstioVersion", "revision_name", "check_dns_label", "parse_duration",
    "Version", "Name", "Duration", "PositiveInt", "NonNegativeInt", "Fraction",
    "RevisionSpec", "ServicePort", "GatewayServiceSpec", "GatewaySpec", "WorkloadKind", "WorkloadSelection",
    "WorkloadSpec", "LiveWorkload", "PinnedConfigObject", "NamespaceSpec", "RestartPolicy", "GateSettings", "RolloutSpec", "MeshSpec",
    "Problem", "SpecError", "key_path",
]

CONFIG_NAMESPACE = "meshlift"
DEFAULT_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"

# Labels meshlift owns on enrolled namespaces and pods; users may not set them by hand.
INJECTION_LABELS = ("istio.io/rev", "istio-injection")


class Stage(str, Enum):
    """One `pulumi up` realizes one stage; going back a stage is a rollback."""

    INSTALL = "install"  # new revision installed beside the old one
    CANARY = "canary"  # canary workloads and gateways on the new revision
    PROMOTE = "promote"  # tags moved, workloads restarted wave by wave
    CLEANUP = "cleanup"  # old revision removed


STAGE_ORDER: tuple[Stage, ...] = (Stage.INSTALL, Stage.CANARY, Stage.PROMOTE, Stage.CLEANUP)


class RevisionSpec(ConfigModel):
    """A control plane revision: one `istiod-<rev>` Helm release of chart version `version`."""

    version: Version
    values: dict[str, Any] = Field(default_factory=dict)

    @property
    def revision(self) -> str:
        return revision_name(self.version)


class ServicePort(ConfigModel):
    name: Name
    port: Annotated[int, Field(ge=1, le=65535)]
    target_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"  # UDP for HTTP/3 (QUIC) on a gateway


def _default_gateway_ports() -> list[ServicePort]:
    return [
        ServicePort(name="status-port", port=15021, target_port=15021),
        ServicePort(name="http2", port=80, target_port=80),
        ServicePort(name="https", port=443, target_port=443),
    ]


class GatewayServiceSpec(ConfigModel):
    type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = "LoadBalancer"
    ports: list[ServicePort] = Field(default_factory=_default_gateway_ports, min_length=1, max_length=100)
    annotations: Annotations = Field(default_factory=dict)


class GatewaySpec(ConfigModel):
    """An istio/gateway release in its own namespace, with its own revision or tag."""

    name: Name
    namespace: Name
    revision: Name  # a revision name (1-31-0) or a tag (stable)
    replicas: PositiveInt = 2
    service: GatewayServiceSpec = Field(default_factory=GatewayServiceSpec)
    canary: bool = True  # run a canary Deployment behind the same Service during the canary stage
    values: dict[str, Any] = Field(default_factory=dict)


WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet")


class WorkloadSelection(ConfigModel):
    """Which of a namespace's running workloads meshlift restarts (default: all of them)."""

    match_labels: Labels = Field(default_factory=dict)  # on the workload object's own labels
    names: Annotated[list[Name], Field(max_length=MAX_ITEMS)] | None = None

    def matches(self, workload: LiveWorkload) -> bool:
        if self.names is not None and workload.name not in self.names:
            return False
        return all(workload.labels.get(key) == value for key, value in self.match_labels.items())


class WorkloadSpec(ConfigModel):
    """Settings for one workload that already runs in an enrolled namespace.

    meshlift never declares a workload: its image, ports and replicas are its
    team's. This says only whether it gets a canary (a clone of the live object on
    the target revision) and in which promotion wave it restarts.
    """

    name: Name
    kind: WorkloadKind = "Deployment"
    canary: bool = False  # a `<name>-canary` clone on the target revision during the canary stage
    canary_replicas: PositiveInt = 1
    wave: PositiveInt | None = None  # default: the namespace's wave


class LiveWorkload(ConfigModel):
    """One workload as it ran when the rollout started: what `meshlift:inventory` records.

    Written by meshlift from the cluster (or the rehearsal's fleet), never by hand:
    the program restarts exactly these, and a rollback re-applies the same record.
    """

    kind: WorkloadKind
    name: Name
    labels: Labels = Field(default_factory=dict)  # the workload object's labels
    selector: Labels = Field(default_factory=dict)  # spec.selector.matchLabels
    # spec.selector.matchExpressions ({key, operator, values}), as the API server has them
    selector_expressions: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    template_hash: str = ""  # of its pod template, to tell whether it changed during the rollout
    proxy_revision: str | None = None  # meshlift's pod-template annotation, if a past upgrade set it
    # How its controller answers the restart (meshmodel.workload_class), and why.
    movement: Movement = "rolls"
    note: str = ""
    recreate: bool = False  # a Recreate Deployment: an outage during its wave
    claims: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)  # PVCs its template mounts directly
    autoscalers: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)  # "HorizontalPodAutoscaler/web"


class PinnedConfigObject(ConfigModel):
    """One Istio config object labelled with the rollout's `from` revision: what `meshlift:pinnedObjects`
    records (written by meshlift from the cluster when `pinnedConfig: relabel`, never by hand)."""

    api_version: Annotated[str, Field(min_length=1, max_length=253)]  # e.g. security.istio.io/v1beta1
    kind: Annotated[str, Field(min_length=1, max_length=63)]
    namespace: Name
    name: Annotated[str, Field(min_length=1, max_length=253)]


class RestartPolicy(ConfigModel):
    """`meshlift:restarts`: what a wave does with workloads that do not simply roll, and how long it waits."""

    on_delete: Literal["leave", "evict"] = "leave"  # OnDelete workloads: left on the old proxy, or evicted
    paused: Literal["refuse", "skip"] = "refuse"  # paused Deployments: the run refuses to start, or skips them
    # A restarted workload's time to roll out: budget + perReplica x its replicas (a Deployment at
    # least its progressDeadlineSeconds, the controller's own verdict on being stuck).
    budget: Duration = 120.0
    per_replica: Duration = 30.0
    # Workloads one promotion wave restarts at once: the wave is applied in parts of at most this many,
    # each rolled out before the next (capacity, disruption budgets, image pulls). None: the whole wave.
    max_rolling: PositiveInt | None = None


class NamespaceSpec(ConfigModel):
    """An application namespace enrolled in a revision (or tag) by `istio.io/rev`."""

    name: Name
    revision: Name  # a revision name or a tag
    create: bool = True  # False: the namespace exists and is patched, never taken over
    wave: PositiveInt = 1  # promotion order: wave 1 restarts first
    labels: Labels = Field(default_factory=dict)
    select: WorkloadSelection = Field(default_factory=WorkloadSelection)
    workloads: list[WorkloadSpec] = Field(default_factory=list, max_length=MAX_ITEMS)

    def wave_of(self, workload: str, kind: str) -> int:
        for settings in self.workloads:
            if (settings.name, settings.kind) == (workload, kind) and settings.wave is not None:
                return settings.wave
        return self.wave


class GateSettings(ConfigModel):
    """Thresholds and timing of the health gates (see README, "Checks")."""

    window: Duration = 30.0
    interval: Duration = 1.0
    consecutive_passes: PositiveInt = 3
    failure_limit: PositiveInt = 1
    min_success_rate: Fraction = 0.99
    max_error_rate_delta: Fraction = 0.01
    min_requests: NonNegativeInt = 10
    min_cert_validity_days: Annotated[float, Field(ge=0.0, le=3650.0)] = 7.0
    max_connect_failures: NonNegativeInt = 0
    max_memory_bytes: ByteCount | None = None  # an absolute cap, off by default: gateways exceed any one figure
    max_memory_ratio: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0  # canary vs the largest baseline
    # Pods of each baseline workload a gate reads (chosen deterministically, reported): a wave gate's
    # baseline is every workload not yet promoted, and reading all their pods every sample does not scale.
    baseline_pods_per_workload: Annotated[int, Field(ge=1, le=100)] = 2
    # Workloads not yet promoted a wave gate reads (chosen deterministically, reported): they are only
    # the canaries' error-rate reference, and a mesh of a thousand workloads cannot be read every second.
    baseline_workloads: Annotated[int, Field(ge=1, le=100_000)] = 50
    checks: Annotated[list[str], Field(max_length=100)] | None = None
    skip_checks: list[str] = Field(default_factory=list, max_length=100)
    # Differences config-parity accepts: "<kind>:<glob>" over normalised names (see docs/checks.md).
    parity_allow: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    _proxy_profile: Any = PrivateAttr(default=None)  # meshlift:proxyProfile, set by MeshSpec

    @field_validator("parity_allow")
    @classmethod
    def _parity_allow_entries(cls, entries: list[str]) -> list[str]:
        problems = []
        for entry in entries:
            try:
                validate_allow_entry(entry)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))
        return entries

    @property
    def proxy_profile(self) -> Any:
        """The stack's proxy profile the proxy-profile check expects (None: not checked)."""
        return self._proxy_profile


class RolloutSpec(ConfigModel):
    """The upgrade in progress: from one installed revision to another, stage by stage."""

    from_version: Version = Field(alias="from")
    to_version: Version = Field(alias="to")
    stage: Stage = Stage.INSTALL
    promoted_waves: NonNegativeInt = 0  # promote stage: waves restarted so far
    # Of the last promoted wave, how many workloads are restarted so far (in `wave_restart_order`);
    # None: all of them. Set only while a wave is applied in parts (`restarts.maxRolling`).
    restarted_in_wave: PositiveInt | None = None
    promote_tags: Annotated[list[Name], Field(max_length=MAX_ITEMS)] | None = None  # default: all tags on `from`
    require_approval: bool = False

    @property
    def from_revision(self) -> str:
        return revision_name(self.from_version)

    @property
    def to_revision(self) -> str:
        return revision_name(self.to_version)

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class MeshSpec(ConfigModel):
    istio_namespace: Name = "istio-system"
    chart_repository: str = DEFAULT_CHART_REPOSITORY
    base_values: dict[str, Any] = Field(default_factory=dict)  # istio/base Helm values passthrough
    # Istio runs two revisions side by side during an upgrade; a handful is already unusual.
    revisions: list[RevisionSpec] = Field(min_length=1, max_length=16)
    default_revision: Name | None = None
    tags: dict[str, Name] = Field(default_factory=dict, max_length=100)
    gateways: list[GatewaySpec] = Field(default_factory=list, max_length=1000)
    namespaces: list[NamespaceSpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    rollout: RolloutSpec | None = None
    gates: GateSettings = Field(default_factory=GateSettings)
    restarts: RestartPolicy = Field(default_factory=RestartPolicy)
    # namespace -> the workloads that ran there when the rollout started (written by meshlift)
    inventory: Annotated[dict[str, Annotated[list[LiveWorkload], Field(max_length=MAX_INVENTORY_ITEMS)]],
                         Field(max_length=MAX_ITEMS)] | None = None
    proxy_profile: ProxyProfile = Field(default_factory=lambda: ProxyProfile())
    # Helm releases ("<namespace>/<release>") installed before meshlift that it takes
    # over: each is imported into the stack on the first `pulumi up`, with its
    # namespace, and then upgraded to what the config says (docs/takeover.md).
    adopt: list[str] = Field(default_factory=list, max_length=1000)
    # Istio config labelled istio.io/rev=<the rollout's from revision>: the new istiod ignores it.
    # `leave`: upgrade anyway; `relabel`: promotion moves the label to the new revision (docs/config.md);
    # unset, `meshlift upgrade` refuses while such config exists.
    pinned_config: Literal["leave", "relabel"] | None = None
    # The objects `relabel` moves, recorded when the run starts (written by meshlift)
    pinned_objects: Annotated[list[PinnedConfigObject], Field(max_length=MAX_ITEMS)] | None = None

    @field_validator("inventory", mode="before")
    @classmethod
    def _unpack_inventory(cls, value: Any) -> Any:
        return unpack(value)  # meshlift writes it packed (meshmodel/packed.py)

    @model_validator(mode="after")
    def _gates_expect_the_profile(self) -> MeshSpec:
        self.gates._proxy_profile = self.proxy_profile
        return self

    @property
    def revision_names(self) -> list[str]:
        return [r.revision for r in self.revisions]

    def revision(self, name: str) -> RevisionSpec:
        for spec in self.revisions:
            if spec.revision == name:
                return spec
        raise KeyError(name)

    def resolve(self, ref: str) -> str:
        """The revision a revision-or-tag reference points at in the config as written."""
        return self.tags.get(ref, ref)

    @property
    def waves(self) -> list[int]:
        waves = {ns.wave for ns in self.namespaces}
        waves |= {w.wave for ns in self.namespaces for w in ns.workloads if w.wave is not None}
        return sorted(waves)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    key: str  # full key path, e.g. meshlift:gateways[1].namespace
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


class SpecError(ValueError):
    """The stack config is invalid; nothing was registered or changed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid meshlift stack config ({len(problems)} problem(s)):\n{lines}")


def key_path(*parts: str | int) -> str:
    path = CONFIG_NAMESPACE + ":"
    for index, part in enumerate(parts):
        if isinstance(part, int):
            path += f"[{part}]"
        elif index == 0:
            path += part
        else:
            path += f".{part}"
    return path
