"""A fleet of stacks on the Kubernetes platform over recording engines (no cluster, no Pulumi CLI)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rollout.fleet.model import parse_fleet
from rollout.journal import Journal
from rollout.platforms.kubernetes import KubernetesPlatform
from tests.rollout.doubles import FakeCluster, RecordingEngine, fake_discovery, mesh_config


def stack_config(stack: str, **overrides: Any) -> dict[str, Any]:
    """mesh_config with the stack's name in its namespaces, so a gate can tell stacks apart."""
    config = mesh_config(**overrides)
    config["meshlift:namespaces"] = [{**ns, "name": f"{stack}-{ns['name']}"} for ns in config["meshlift:namespaces"]]
    return config


class RecordedStacks:
    """A StackSource: each stack a RecordingEngine behind the real KubernetesPlatform."""

    kind = "kubernetes"

    def __init__(self, root: Path, stacks: list[str], configs: dict[str, dict[str, Any]] | None = None, *,
                 name: str = "test") -> None:
        self.root = root / ".meshlift" / "fleet" / name
        self.project = root
        self.configs = {stack: stack_config(stack) for stack in stacks} | (configs or {})
        self.clusters: dict[str, FakeCluster] = {}  # what preflight reads, per stack (none: nothing to judge)
        self.preflighted: list[str] = []
        self.engines = {}
        for stack, config in self.configs.items():
            engine = RecordingEngine(stack, config=config)
            engine.up(message="initial deployment")
            engine.calls.clear()
            self.engines[stack] = engine

    def describe(self, stack: str) -> str:
        return f"stacks/Pulumi.{stack}.yaml"

    def config(self, stack: str) -> dict[str, Any]:
        return dict(self.configs[stack])

    def journal(self, stack: str) -> Journal:
        return Journal.for_stack(self.project, stack)

    def platform(self, stack: str, config: dict[str, Any]) -> KubernetesPlatform:
        from tests.components.cluster import live_workload

        # What each stack's teams run: the workloads its namespaces select.
        live = FakeCluster(*[live_workload(ns["name"], w["name"], replicas=2)
                             for ns in config["meshlift:namespaces"] for w in ns.get("workloads", [])])
        return KubernetesPlatform(self.engines[stack], discover=fake_discovery, live=live)

    def preflight(self, stack: str, config: dict[str, Any], target: Any) -> None:
        """What `meshlift upgrade` judges in a stack's cluster, on `clusters[stack]` when a test sets one."""
        from rollout.errors import ClusterConflict
        from rollout.preflight import findings

        self.preflighted.append(stack)
        if stack in self.clusters:
            problems = findings(target.spec, self.clusters[stack]).problems
            if problems:
                raise ClusterConflict(problems)

    def reset(self) -> None:
        return None


class StackGate:
    """A gate scripted per stack (by namespace prefix) and gate name; records concurrency."""

    def __init__(self, failing: set[tuple[str, str]] | None = None, *, delay_s: float = 0.0,
                 interrupt_on: tuple[str, str] | None = None) -> None:
        self.failing = set(failing or ())
        self.delay_s = delay_s
        self.interrupt_on = interrupt_on
        self.calls: list[tuple[str, str]] = []
        self.active = 0
        self.max_active = 0

    def __call__(self, gate: str, targets: Any, settings: Any, *, on_sample: Any = None) -> Any:
        from rollout.gates import GateVerdict

        stack = targets.canary[0].name.split("-", 1)[0] if targets.canary else "?"
        self.calls.append((stack, gate))
        if self.interrupt_on == (stack, gate):
            self.interrupt_on = None
            raise KeyboardInterrupt
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
        finally:
            self.active -= 1
        if (stack, gate) in self.failing:
            return GateVerdict(gate, "failed", f"Halt {gate} advancement: success rate 50.00% < 99%",
                               failing_checks=["upstream-success-rate"])
        return GateVerdict(gate, "passed", f"Promote {gate}")


def fleet_of(*rings: dict[str, Any]):
    return parse_fleet({"rings": list(rings)}, label="fleet.yaml")


@pytest.fixture
def three_rings():
    return fleet_of({"name": "dev", "stacks": ["dev"]},
                    {"name": "staging", "stacks": ["staging"]},
                    {"name": "prod", "stacks": ["prodeu", "produs"], "maxParallel": 2})
