"""Before anything changes anywhere: `--to` validated against every stack of the fleet.

Each stack's config must accept the upgrade (version skew, chart source, the whole
spec, as `meshlift upgrade` would check it), its journal must not hold another
unfinished run, and the ring's re-gate settings must fit its gates' timing. Before
an upgrade (not a plan), each stack also passes the checks `meshlift upgrade -s
<stack>` runs before it records anything (`StackSource.preflight`: the Pulumi CLI,
the state backend and the kube context; what the stack's cluster already holds:
namespaces, `istio-injection` labels others apply, Istio config pinned to the old
revision, adopted values). One UsageError lists every problem, each prefixed with
the stack file it is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshmodel.spec import GateSettings, MeshSpec, SpecError, Stage
from rollout.errors import UsageError
from rollout.fleet.model import FleetSpec, RingSpec, gate_timing_problem, ring_gates
from rollout.fleet.stacks import StackSource
from rollout.journal import Journal, RunState
from rollout.platforms.base import Platform
from rollout.stages import UpgradeTarget, upgrade_target


@dataclass
class FleetStack:
    """One stack as the fleet drives it: validated target, its journal, its re-gate settings."""

    name: str
    ring: RingSpec
    config: dict[str, Any]
    target: UpgradeTarget
    journal: Journal
    gates: GateSettings
    platform: Platform | None = None

    @property
    def to_version(self) -> str:
        rollout = self.target.spec.rollout
        assert rollout is not None
        return rollout.to_version

    @property
    def upgraded_spec(self) -> MeshSpec:
        return self.target.change(Stage.CLEANUP).spec


def prepare(fleet: FleetSpec, source: StackSource, to: str, *, preflight: bool = True) -> list[FleetStack]:
    """Every stack of `fleet`, ready to upgrade to `to`; UsageError listing every problem otherwise.
    `preflight`: also each stack's cluster checks (a plan reads no cluster)."""
    problems: list[str] = []
    stacks: list[FleetStack] = []
    for index, ring in enumerate(fleet.rings):
        for stack in ring.stacks:
            where = source.describe(stack)
            try:
                config = source.config(stack)
                target = upgrade_target(config, to)
            except SpecError as error:
                problems += [f"{where}: {problem}" for problem in error.problems]
                continue
            except UsageError as error:
                problems += [f"{where}: {detail}" for detail in error.details] or [f"{where}: {error}"]
                continue
            if preflight:
                try:
                    source.preflight(stack, config, target)
                except SpecError as error:  # the cluster contradicts the config (ClusterConflict)
                    problems += [f"{where}: {problem}" for problem in error.problems]
                except UsageError as error:  # a prerequisite is missing, the cluster cannot be read
                    problems += [f"{where}: {error}", *(f"{where}: {detail}" for detail in error.details)]
            gates = ring_gates(target.spec.gates, ring)
            timing = gate_timing_problem(gates)
            if timing:
                problems.append(f"fleet rings[{index}].gate with {where}'s gates: {timing}")
            journal = source.journal(stack)
            running = load_run(journal)
            if running is not None and not running.phase.terminal and not running.matches("upgrade", {"to": to_version(target)}):
                problems.append(f"{where}: its {running.command} run ({_params(running.params)}) is in phase "
                                f"{running.phase.value}; finish it or `meshlift rollback -s {stack}` first")
            stacks.append(FleetStack(stack, ring, config, target, journal, gates))
    if problems:
        raise UsageError(f"--to {to} cannot run on every stack of the fleet; nothing changed anywhere "
                         f"({len(problems)} problem(s))", details=problems)
    return stacks


def to_version(target: UpgradeTarget) -> str:
    assert target.spec.rollout is not None
    return target.spec.rollout.to_version


def load_run(journal: Journal) -> RunState | None:
    try:
        return journal.load()
    except RuntimeError as error:
        raise UsageError(str(error)) from None


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(params.items()))
