"""The one interface the stage machine drives; one module per implementation.

A platform realizes a stage (`apply`), says which proxies a gate looks at
(`targets`), keeps a history of what it applied (`history`, newest first, like
`pulumi stack history`) and re-applies an earlier entry (`reapply`, a rollback).
It also says what already runs: the workloads of the enrolled namespaces
(`live_workloads`, recorded as the run's inventory) and every pod (`pods`, for
the cleanup guard), both as the API server's JSON objects.
The stage machine and the gates never know which platform they drive.

    kubernetes  rollout.platforms.kubernetes   Pulumi Automation API on this project
    local       rollout.platforms.local        real Envoy processes on 127.0.0.1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from meshmodel.plan import MeshPlan
from meshmodel.spec import MeshSpec
from rollout.history import HistoryEntry

ScopeKind = Literal["canary", "wave", "verify"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class StageChange:
    """One stage to realize: the whole spec at that stage, and the config keys that express it."""

    spec: MeshSpec
    config: dict[str, Any]  # e.g. {"meshlift:rollout": {...}}: what `set_config` writes
    message: str  # recorded with the update ("meshlift: canary 1.39.3 -> 1.40.0")


@dataclass(frozen=True)
class Applied:
    """What an apply (or re-apply) recorded in the platform's history."""

    update: int | None  # the history entry it created
    changes: dict[str, int] = field(default_factory=dict)
    note: str = ""
    warnings: tuple[str, ...] = ()  # e.g. a canaried workload that changed during the canary stage


@dataclass(frozen=True)
class StrayRevision:
    """After a rollback: a workload no wave restarted, whose pods created while the tag pointed at
    the new revision (a scale-up, an eviction, a replaced node) run that revision's proxy."""

    namespace: str
    kind: str
    name: str
    revision: str  # the revision the moved tag injected; still installed after the rollback
    version: str


@dataclass(frozen=True)
class GateScope:
    """Which proxies a gate judges: the canaries, the waves promoted so far, or all."""

    kind: ScopeKind
    waves: tuple[int, ...] = ()
    # The rollback gate: pods of these workloads are judged for the revision that injected them.
    strays: tuple[StrayRevision, ...] = ()
    baseline_pods: int | None = None  # pods read per baseline workload (None: all); gates' baselinePodsPerWorkload
    # Baseline workloads a wave gate reads (None: all); gates' baselineWorkloads
    baseline_workloads: int | None = None

    def sampling(self, settings: Any) -> GateScope:
        """This scope, reading the baseline sample `settings` (GateSettings) declares."""
        return replace(self, baseline_pods=settings.baseline_pods_per_workload,
                       baseline_workloads=settings.baseline_workloads)

    @property
    def label(self) -> str:
        if self.kind == "wave":
            return f"wave {self.waves[-1]}" if self.waves else "wave"
        return self.kind


@dataclass(frozen=True)
class GateTargets:
    """checks.Target lists: the proxies under test and the stable ones to compare with."""

    canary: list[Any]
    baseline: list[Any] = field(default_factory=list)
    # Finds them again (pods come and go during a window); None where they cannot change.
    refresh: Callable[[], GateTargets] | None = field(default=None, compare=False)
    # Per workload: the pods read, of how many were found (checks.sampling.Sampled).
    sampled: list[Any] = field(default_factory=list, compare=False)


class Platform(Protocol):
    name: str

    def open(self, current: MeshSpec) -> None:
        """Acquire what the platform needs; make sure the mesh runs `current`
        (a resumed local rehearsal restarts its proxies here; a cluster is already there)."""
        ...

    def close(self) -> None:
        """Release everything `open` and `apply` started. Idempotent."""
        ...

    def apply(self, change: StageChange, *, log: Log) -> Applied:
        """Realize one stage; raise PlatformError if it cannot."""
        ...

    def targets(self, plan: MeshPlan, scope: GateScope) -> GateTargets: ...

    def history(self) -> list[HistoryEntry]: ...

    def reapply(self, entry: HistoryEntry, *, log: Log) -> Applied:
        """Re-apply the config of an earlier update (rollback)."""
        ...

    def live_workloads(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The Deployments/StatefulSets/DaemonSets running in each namespace; PlatformError if unknowable."""
        ...

    def pods(self) -> list[dict[str, Any]]:
        """Every pod, finished ones included; PlatformError if unknowable (cleanup then waits)."""
        ...

    def autoscalers(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The autoscalers (HPA objects) of each namespace, recorded with the workloads they target."""
        ...

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        """What can still ask for a revision: `namespaces`, `templates` (every kind with a pod template)
        and Gateway API `gateways`; PlatformError if unknowable."""
        ...

    def pinned_config(self, revision: str) -> list[dict[str, str]]:
        """The Istio config objects labelled `istio.io/rev=<revision>`, as `meshlift:pinnedObjects` records
        them (apiVersion, kind, namespace, name); PlatformError if unknowable."""
        ...

    def namespaces(self) -> list[dict[str, Any]]:
        """Every namespace with its labels and managedFields; PlatformError if unknowable."""
        ...

    def workload_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods of one namespace that a label selector matches."""
        ...

    def evict(self, namespace: str, pod: str) -> bool:
        """Evict one pod through the eviction API; False when a disruption budget does not allow it now."""
        ...

    def delete_pod(self, namespace: str, pod: str) -> None:
        """Delete one pod; PlatformError if the stack may not."""
        ...
