"""Where a fleet's stacks come from, per platform: config, journal and platform of each.

    kubernetes  stacks/Pulumi.<stack>.yaml of this project, `pulumi up` through the
                Automation API; each stack's gates discover pods through the stack's
                own `kubernetes:context` (one cluster per stack), not the current one
    rehearsal   one small local mesh of real Envoys per stack (Envoy 1.39.3 stands in
                for the old Istio version, 1.40.0 for the new one), optionally with a
                real fault injected into one stack's canaries

The driver sees only `StackSource`: the same rings, soaks and gates run on both.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol

from meshmodel.spec_check import load_spec
from meshmodel.stackfile import read_stack_file
from rollout.errors import UsageError
from rollout.journal import STATE_DIR, Journal
from rollout.platforms.base import Platform
from rollout.stages import UpgradeTarget



class StackSource(Protocol):
    kind: str  # kubernetes | rehearsal
    root: Path  # the fleet journal's directory

    def describe(self, stack: str) -> str:
        """Where the stack's config comes from, for error messages."""
        ...

    def config(self, stack: str) -> dict[str, Any]:
        """The stack's config before the upgrade (`meshlift:*` keys); UsageError/SpecError if unusable."""
        ...

    def journal(self, stack: str) -> Journal: ...

    def platform(self, stack: str, config: dict[str, Any]) -> Platform: ...

    def preflight(self, stack: str, config: dict[str, Any], target: UpgradeTarget) -> None:
        """What `meshlift upgrade -s <stack>` checks before it records anything; raises the same errors."""
        ...

    def reset(self) -> None:
        """A new fleet run starts (after a finished one): forget what only the last one needed."""
        ...


class KubernetesStacks:
    """The project's Pulumi stacks; each stack's run is the one `meshlift upgrade -s` would drive."""

    kind = "kubernetes"

    def __init__(self, project_dir: Path, fleet_name: str) -> None:
        self.project_dir = project_dir
        self.root = project_dir / STATE_DIR / "fleet" / fleet_name

    def _path(self, stack: str) -> Path:
        return self.project_dir / "stacks" / f"Pulumi.{stack}.yaml"

    def describe(self, stack: str) -> str:
        return str(self._path(stack).relative_to(self.project_dir))

    def config(self, stack: str) -> dict[str, Any]:
        path = self._path(stack)
        if not path.exists():
            raise UsageError(f"no stack file {self.describe(stack)}")
        return read_stack_file(str(path)).config

    def journal(self, stack: str) -> Journal:
        return Journal.for_stack(self.project_dir, stack)

    def platform(self, stack: str, config: dict[str, Any]) -> Platform:
        from rollout.platforms import make_platform
        from rollout.platforms.kubernetes import KubeDiscovery, stack_cluster

        # The stack's own cluster (kubernetes:kubeconfig / kubernetes:context), as `meshlift upgrade -s` uses.
        return make_platform("kubernetes", project_dir=self.project_dir, stack=stack,
                             discover=KubeDiscovery(**stack_cluster(config)))

    def preflight(self, stack: str, config: dict[str, Any], target: UpgradeTarget) -> None:
        from rollout.preflight import check_before_upgrade
        from rollout.prerequisites import check_cluster_prerequisites

        # The very calls `meshlift upgrade` makes, in its order.
        check_cluster_prerequisites(self.project_dir, config)
        check_before_upgrade(target.spec, config, self._path(stack))

    def reset(self) -> None:
        return None  # each stack's own journal and history decide what is already done


# One namespace, one workload of one replica with a canary: each stack runs one or two
# Envoys, so a fleet of four rehearses on two cores.
REHEARSAL_FROM, REHEARSAL_TO = "1.39.3", "1.40.0"
REHEARSAL_GATES = {"window": "6s", "interval": "250ms", "consecutivePasses": 4, "failureLimit": 1,
                   "minRequests": 5}
REHEARSAL_TRAFFIC_PER_S = 15.0


def rehearsal_stack_config(*, gates: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "meshlift:revisions": [{"version": REHEARSAL_FROM}],
        "meshlift:tags": {"stable": REHEARSAL_FROM.replace(".", "-")},
        "meshlift:namespaces": [
            {"name": "shop", "revision": "stable", "wave": 1, "workloads": [{"name": "web", "canary": True}]},
        ],
        "meshlift:gates": {**REHEARSAL_GATES, **(gates or {})},
    }
    load_spec(config)  # fail loudly here if the rehearsal mesh itself is wrong
    return config


class RehearsalStacks:
    """One local mesh of real Envoys per stack name of the fleet file (no stack files needed)."""

    kind = "rehearsal"

    def __init__(self, project_dir: Path, fleet_name: str, *, fault: str = "none", fault_stack: str | None = None,
                 gates: dict[str, Any] | None = None) -> None:
        self.root = project_dir / STATE_DIR / "fleet-rehearsal" / fleet_name
        self.fault, self.fault_stack, self.gates = fault, fault_stack, gates

    def describe(self, stack: str) -> str:
        return f"rehearsal mesh {stack!r}"

    def config(self, stack: str) -> dict[str, Any]:
        return rehearsal_stack_config(gates=self.gates)

    def journal(self, stack: str) -> Journal:
        return Journal(self.root / "stacks" / stack)

    def platform(self, stack: str, config: dict[str, Any]) -> Platform:
        from rollout.platforms.local import LocalPlatform

        from rollout.platforms.local_fleet import FleetWorkload

        fault = self.fault if stack == self.fault_stack else "none"
        # What already runs in each rehearsal mesh: one team's Deployment of one pod.
        fleet = [FleetWorkload(namespace="shop", name="web", replicas=1, image="local/web:1", labels={"team": "shop"})]
        return LocalPlatform(state_dir=self.journal(stack).root, base_config=config, fleet=fleet, fault=fault,
                             traffic_rate_per_s=REHEARSAL_TRAFFIC_PER_S)

    def preflight(self, stack: str, config: dict[str, Any], target: UpgradeTarget) -> None:
        return None  # a fresh local mesh: no cluster, no Pulumi CLI, nothing anyone else runs there

    def reset(self) -> None:
        """Fresh meshes: every stack's journal and local history go (the fleet journal stays)."""
        shutil.rmtree(self.root / "stacks", ignore_errors=True)
