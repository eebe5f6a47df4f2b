"""The fleet file: ordered rings of stacks, each gating the next.

    # stacks/fleet.yaml
    rings:
      - name: dev
        stacks: [dev]
        soak: 10m            # after the ring succeeds, wait this long (re-gating) before the next
      - name: staging
        stacks: [staging]
        soak: 30m
        gate:                # how this ring is re-judged while later rings wait (over each stack's gates)
          window: 2m
          minSuccessRate: 0.995
      - name: prod
        stacks: [prod-eu, prod-us]
        maxParallel: 1       # stacks of this ring upgrading at once

Validation happens once, before anything is touched; every problem is reported
with its key path (`rings[2].maxParallel: ...`) in one `FleetFileError` (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from meshmodel.spec import GateSettings, check_dns_label, parse_duration
from meshmodel.spec_check import error_reason, known_keys
from rollout.errors import UsageError

FLEET_FILE = "stacks/fleet.yaml"
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class FleetFileError(UsageError):
    """The fleet file is invalid; nothing was changed anywhere."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(f"{path}: invalid fleet file ({len(problems)} problem(s)); nothing changed: "
                         + "; ".join(problems))


def _soak(value: Any) -> float:
    """A soak may be zero (`0s`: go straight to the gate before the next ring)."""
    if value in (0, "0", "0s"):
        return 0.0
    return parse_duration(value)


def _stack_name(value: Any) -> str:
    text = str(value)
    if not _STACK_NAME.match(text):
        raise ValueError(f"{text!r} is not a stack name (letters, digits, '.', '_', '-')")
    return text


Soak = Annotated[float, BeforeValidator(_soak)]
StackName = Annotated[str, BeforeValidator(_stack_name)]
RingName = Annotated[str, BeforeValidator(check_dns_label)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class RingSpec(_Model):
    name: RingName
    stacks: Annotated[list[StackName], Field(min_length=1)]
    soak: Soak = 0.0
    max_parallel: Annotated[int, Field(gt=0, le=1000)] = 1
    # Keys set here override each stack's own `meshlift:gates` when this ring is re-gated.
    gate: GateSettings | None = None

    def gate_overrides(self) -> dict[str, Any]:
        if self.gate is None:
            return {}
        return self.gate.model_dump(by_alias=True, exclude_unset=True, mode="json")


class FleetSpec(_Model):
    rings: Annotated[list[RingSpec], Field(min_length=1)]

    @property
    def stacks(self) -> list[str]:
        return [stack for ring in self.rings for stack in ring.stacks]

    def ring_of(self, stack: str) -> RingSpec:
        return next(ring for ring in self.rings if stack in ring.stacks)

    def digest(self) -> str:
        """Identifies the fleet a run was started with: a resumed run must find the same rings."""
        text = json.dumps(self.model_dump(by_alias=True, mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def ring_gates(stack_gates: GateSettings, ring: RingSpec) -> GateSettings:
    """The settings a finished ring's stack is re-gated with: its own gates, the ring's keys on top."""
    merged = {**stack_gates.model_dump(by_alias=True, exclude_unset=True, mode="json"), **ring.gate_overrides()}
    return GateSettings.model_validate(merged)


def load_fleet(path: Path, *, label: str | None = None) -> FleetSpec:
    """Read and validate a fleet file; FleetFileError lists every problem with its key path."""
    import yaml

    shown = label or str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no fleet file {shown} (write one: see docs/fleet.md, or pass --fleet PATH)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        raise FleetFileError(where, [f"not valid YAML ({getattr(error, 'problem', error)})"]) from None
    return parse_fleet(document, label=shown)


def parse_fleet(document: Any, *, label: str) -> FleetSpec:
    if not isinstance(document, dict):
        raise FleetFileError(label, ["the file must be a mapping with a 'rings' list"])
    try:
        fleet = FleetSpec.model_validate(document)
    except ValidationError as error:
        raise FleetFileError(label, [_problem(item) for item in error.errors(include_url=False)]) from None
    problems = _cross_checks(fleet)
    if problems:
        raise FleetFileError(label, problems)
    return fleet


def _problem(item: dict[str, Any]) -> str:
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]).lstrip(".")
    return f"{key or '(top)'}: {error_reason(item, known_keys(FleetSpec))}"


def _cross_checks(fleet: FleetSpec) -> list[str]:
    problems = []
    seen_rings: dict[str, int] = {}
    seen_stacks: dict[str, str] = {}
    for index, ring in enumerate(fleet.rings):
        if ring.name in seen_rings:
            problems.append(f"rings[{index}].name: ring {ring.name!r} is already defined at rings[{seen_rings[ring.name]}]")
        seen_rings.setdefault(ring.name, index)
        for position, stack in enumerate(ring.stacks):
            if stack in seen_stacks:
                problems.append(f"rings[{index}].stacks[{position}]: stack {stack!r} is already in ring "
                                f"{seen_stacks[stack]!r} (a stack upgrades in one ring only)")
            seen_stacks.setdefault(stack, ring.name)
    return problems


def gate_timing_problem(settings: GateSettings) -> str | None:
    """The timing rule of `meshlift:gates`, for a ring's merged gate settings."""
    if settings.interval > settings.window:
        return f"interval {settings.interval:g}s is longer than the window {settings.window:g}s"
    if settings.consecutive_passes * settings.interval > settings.window:
        return (f"{settings.consecutive_passes} passes at {settings.interval:g}s intervals cannot fit in a "
                f"{settings.window:g}s window")
    return None
