"""The mesh spec: one typed, validated model of a stack's `meshlift:*` config.

Everything reads this model: the Pulumi program, the orchestrator, and the
checks' expectations. It is built once, by `load_spec`, before anything is
registered or touched; a bad config raises `SpecError` naming every offending
key path (`meshlift:gateways[1].namespace`) and the reason.

This module imports no Pulumi and no Kubernetes code on purpose: the checks and
the CLI use it on machines and in processes where neither is wanted.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

CONFIG_NAMESPACE = "meshlift"
DEFAULT_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

# Labels meshlift owns on enrolled namespaces and pods; users may not set them by hand.
INJECTION_LABELS = ("istio.io/rev", "istio-injection")


class Stage(str, Enum):
    """One `pulumi up` realizes one stage; going back a stage is a rollback."""

    INSTALL = "install"  # new revision installed beside the old one
    CANARY = "canary"  # canary workloads and gateways on the new revision
    PROMOTE = "promote"  # tags moved, workloads restarted wave by wave
    CLEANUP = "cleanup"  # old revision removed


STAGE_ORDER: tuple[Stage, ...] = (Stage.INSTALL, Stage.CANARY, Stage.PROMOTE, Stage.CLEANUP)


@dataclass(frozen=True, order=True)
class IstioVersion:
    """A released Istio version such as 1.31.0 (pre-release suffixes allowed)."""

    major: int
    minor: int
    patch: int
    suffix: str = ""

    @classmethod
    def parse(cls, text: str) -> IstioVersion:
        match = _VERSION_RE.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a version like 1.31.0")
        major, minor, patch, suffix = match.groups()
        return cls(int(major), int(minor), int(patch), suffix or "")

    @property
    def revision(self) -> str:
        """Istio's revision name: the version with dots as dashes (1.31.0 -> 1-31-0)."""
        return str(self).replace(".", "-").lower()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.suffix}" if self.suffix else base


def revision_name(version: str) -> str:
    return IstioVersion.parse(version).revision


def _check_version(value: Any) -> str:
    return str(IstioVersion.parse(str(value)))


def check_dns_label(value: Any) -> str:
    text = str(value)
    if len(text) > 63 or not _DNS_LABEL_RE.match(text):
        raise ValueError(
            f"{text!r} is not a valid Kubernetes name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    return text


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as '500ms', '5s', '2m'."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration like 500ms, 5s or 2m")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


Version = Annotated[str, BeforeValidator(_check_version)]
Name = Annotated[str, BeforeValidator(check_dns_label)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=False,
    )


class RevisionSpec(_Model):
    """A control plane revision: one `istiod-<rev>` Helm release of chart version `version`."""

    version: Version
    values: dict[str, Any] = Field(default_factory=dict)

    @property
    def revision(self) -> str:
        return revision_name(self.version)


class ServicePort(_Model):
    name: Name
    port: Annotated[int, Field(ge=1, le=65535)]
    target_port: Annotated[int, Field(ge=1, le=65535)] | None = None


def _default_gateway_ports() -> list[ServicePort]:
    return [
        ServicePort(name="status-port", port=15021, target_port=15021),
        ServicePort(name="http2", port=80, target_port=80),
        ServicePort(name="https", port=443, target_port=443),
    ]


class GatewayServiceSpec(_Model):
    type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = "LoadBalancer"
    ports: list[ServicePort] = Field(default_factory=_default_gateway_ports, min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)


class GatewaySpec(_Model):
    """An istio/gateway release in its own namespace, with its own revision or tag."""

    name: Name
    namespace: Name
    revision: str  # a revision name (1-31-0) or a tag (stable)
    replicas: PositiveInt = 2
    service: GatewayServiceSpec = Field(default_factory=GatewayServiceSpec)
    canary: bool = True  # run a canary Deployment behind the same Service during the canary stage
    values: dict[str, Any] = Field(default_factory=dict)


WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet")


class WorkloadSelection(_Model):
    """Which of a namespace's running workloads meshlift restarts (default: all of them)."""

    match_labels: dict[str, str] = Field(default_factory=dict)  # on the workload object's own labels
    names: list[Name] | None = None

    def matches(self, workload: LiveWorkload) -> bool:
        if self.names is not None and workload.name not in self.names:
            return False
        return all(workload.labels.get(key) == value for key, value in self.match_labels.items())


class WorkloadSpec(_Model):
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


class LiveWorkload(_Model):
    """One workload as it ran when the rollout started: what `meshlift:inventory` records.

    Written by meshlift from the cluster (or the rehearsal's fleet), never by hand:
    the program restarts exactly these, and a rollback re-applies the same record.
    """

    kind: WorkloadKind
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)  # the workload object's labels
    selector: dict[str, str] = Field(default_factory=dict)  # spec.selector.matchLabels
    template_hash: str = ""  # of its pod template, to tell whether it changed during the rollout
    proxy_revision: str | None = None  # meshlift's pod-template annotation, if a past upgrade set it


class NamespaceSpec(_Model):
    """An application namespace enrolled in a revision (or tag) by `istio.io/rev`."""

    name: Name
    revision: str
    create: bool = True  # False: the namespace exists and is patched, never taken over
    wave: PositiveInt = 1  # promotion order: wave 1 restarts first
    labels: dict[str, str] = Field(default_factory=dict)
    select: WorkloadSelection = Field(default_factory=WorkloadSelection)
    workloads: list[WorkloadSpec] = Field(default_factory=list)

    def wave_of(self, workload: str, kind: str) -> int:
        for settings in self.workloads:
            if (settings.name, settings.kind) == (workload, kind) and settings.wave is not None:
                return settings.wave
        return self.wave


class GateSettings(_Model):
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
    max_memory_bytes: PositiveInt | None = None  # an absolute cap, off by default: gateways exceed any one figure
    max_memory_ratio: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0  # canary vs the largest baseline
    checks: list[str] | None = None
    skip_checks: list[str] = Field(default_factory=list)
    # Differences config-parity accepts: "<kind>:<glob>" over normalised names (see checks/README.md).
    parity_allow: list[str] = Field(default_factory=list)
    _proxy_profile: Any = PrivateAttr(default=None)  # meshlift:proxyProfile, set by MeshSpec

    @field_validator("parity_allow")
    @classmethod
    def _parity_allow_entries(cls, entries: list[str]) -> list[str]:
        from checks.parity_allow import validate_allow_entry  # the one parser of the entries

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


class RolloutSpec(_Model):
    """The upgrade in progress: from one installed revision to another, stage by stage."""

    from_version: Version = Field(alias="from")
    to_version: Version = Field(alias="to")
    stage: Stage = Stage.INSTALL
    promoted_waves: NonNegativeInt = 0  # promote stage: waves restarted so far
    promote_tags: list[str] | None = None  # tags moved at promotion (default: all on `from`)
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


class MeshSpec(_Model):
    istio_namespace: Name = "istio-system"
    chart_repository: str = DEFAULT_CHART_REPOSITORY
    base_values: dict[str, Any] = Field(default_factory=dict)  # istio/base Helm values passthrough
    revisions: list[RevisionSpec] = Field(min_length=1)
    default_revision: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    gateways: list[GatewaySpec] = Field(default_factory=list)
    namespaces: list[NamespaceSpec] = Field(default_factory=list)
    rollout: RolloutSpec | None = None
    gates: GateSettings = Field(default_factory=GateSettings)
    # namespace -> the workloads that ran there when the rollout started (written by meshlift)
    inventory: dict[str, list[LiveWorkload]] | None = None
    proxy_profile: ProxyProfile = Field(default_factory=lambda: ProxyProfile())
    # Helm releases ("<namespace>/<release>") installed before meshlift that it takes
    # over: each is imported into the stack on the first `pulumi up`, with its
    # namespace, and then upgraded to what the config says (docs/takeover.md).
    adopt: list[str] = Field(default_factory=list)

    @field_validator("inventory", mode="before")
    @classmethod
    def _unpack_inventory(cls, value: Any) -> Any:
        from components.packed import unpack

        return unpack(value)  # meshlift writes it packed (components/packed.py)

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


if TYPE_CHECKING:
    from components.proxy_profile import ProxyProfile


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


def _known_keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every config key spelling anywhere in the model tree (for 'did you mean')."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        for arg in _model_args(field.annotation):
            keys |= _known_keys(arg, seen)
    return keys


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _model_args(arg)
    return found


def _suggest(word: str, candidates: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def error_reason(item: Mapping[str, Any], known: set[str]) -> str:
    """One pydantic error item in words; an unknown key gets a 'did you mean' from `known`."""
    if item["type"] == "extra_forbidden":
        return "unknown key" + _suggest(str(item["loc"][-1]), known)
    if item["type"] == "missing":
        return "required key is missing"
    reason = str(item["msg"]).removeprefix("Value error, ")
    if "input" in item and not isinstance(item["input"], (dict, list)):
        reason += f" (got {item['input']!r})"
    return reason


def known_keys(model: type[BaseModel]) -> set[str]:
    """Every key spelling in `model`'s tree, for error_reason's suggestions."""
    return _known_keys(model)


# --------------------------------------------------------------------------- loading


def config_from_pulumi() -> dict[str, Any]:
    """Every config value of the running Pulumi program, keyed `ns:key`."""
    from pulumi.runtime import config as runtime_config  # only inside a Pulumi program

    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def load_stack_file(path: str) -> dict[str, Any]:
    """The `config:` mapping of a `stacks/Pulumi.<env>.yaml` file, read strictly
    (`components.stackfile`: duplicate keys, unknown tags and hostile input refused)."""
    from components.stackfile import read_stack_file

    return read_stack_file(path).config


def _decode(value: Any) -> Any:
    # Pulumi hands structured config to the program as JSON text.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# Keys of the workload model meshlift used to declare (and own) itself.
DECLARED_WORKLOAD_KEYS = ("image", "port", "replicas", "labels")


def declared_workload_problems(raw: dict[str, Any]) -> list[Problem]:
    """A migration error per key of a declared workload; the keys are dropped so the
    rest of the config is still checked in the same run."""
    problems = []
    namespaces = raw.get("namespaces")
    if isinstance(namespaces, list):
        namespaces = raw["namespaces"] = copy.deepcopy(namespaces)  # never change the caller's config
    for n_index, namespace in enumerate(namespaces if isinstance(namespaces, list) else []):
        workloads = namespace.get("workloads") if isinstance(namespace, dict) else None
        for w_index, workload in enumerate(workloads if isinstance(workloads, list) else []):
            if not isinstance(workload, dict):
                continue
            for key in DECLARED_WORKLOAD_KEYS:
                if key in workload:
                    workload.pop(key)
                    problems.append(Problem(
                        key_path("namespaces", n_index, "workloads", w_index, key),
                        "workloads are no longer declared: meshlift restarts the Deployments, StatefulSets "
                        "and DaemonSets that already run in the namespace and never sets their image, port, "
                        "replicas or labels; remove this key and keep only name, kind, canary, "
                        "canaryReplicas and wave (see docs/workloads.md, \"Migrating\")",
                    ))
    return problems


def load_spec(config: Mapping[str, Any]) -> MeshSpec:
    """Validate a stack's config (keys `meshlift:<key>`; other namespaces ignored).

    Every problem is reported at once: unknown keys (and what is wrong under a
    misspelled key), type errors, and the cross-field rules as far as they can be
    judged around the type errors (`components.spec_check`).
    """
    from components.spec_check import check_config

    raw = {str(key).partition(":")[2]: _decode(value) for key, value in config.items()
           if str(key).partition(":")[0] == CONFIG_NAMESPACE}
    return check_config(raw)


# The profile's model builds on the field types above; importing it completes MeshSpec.
import components.proxy_profile  # noqa: E402,F401
