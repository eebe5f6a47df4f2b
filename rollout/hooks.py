"""Keep a plain `pulumi up` safe: gate the promotion resources before they change.

The Pulumi program attaches `gate_hooks(spec, plan)` to the resources that
promote (revision tags, the default revision, gateways upgraded in place,
workloads restarted onto the new revision). Before any of them is created or
updated, the hook runs the same gate the orchestrator runs:

- promote wave 1 (or promote with no waves): the canary gate, canaries against
  their stable baseline (the canaries still run until promotion removes them);
- promote wave N > 1: the gate of the waves already promoted (1..N-1);
- a part of wave N (`restartedInWave`, see `restarts.maxRolling`): the gate of
  the wave's first part, whichever part it is;
- cleanup: the gate over everything (the data plane must be healthy on the
  new revision before the old one goes).

It fails closed: no targets, an unreachable API server, an inconclusive gate or
any error raises, and Pulumi does not touch the resource. It stands down when
the orchestrator runs the `up` (it sets MESHLIFT_GATED: it has gated already)
and during previews (hooks do not run on dry runs, and the hook checks again).
The verdict is computed once per program run and shared by every hooked resource.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from components._restarts import RESTARTS
from meshmodel.plan import MeshPlan, plan_for
from meshmodel.spec import MeshSpec, Stage
from rollout.gates import ChecksGate, GateRunner, GateVerdict
from rollout.orchestrator import GATED_ENV
from rollout.platforms.base import GateScope, GateTargets
from rollout.platforms.scope import PodSelector, selectors_for
from rollout.stages import spec_at

Discover = Callable[[list[PodSelector]], list[Any]]


class GateBlocked(RuntimeError):
    """Raised inside the hook: Pulumi fails the resource operation and changes nothing."""


def hook_scope(spec: MeshSpec) -> tuple[MeshSpec, GateScope] | None:
    """The spec whose plan names the proxies to judge, and the scope; None: nothing to gate."""
    rollout = spec.rollout
    if rollout is None or rollout.stage in (Stage.INSTALL, Stage.CANARY):
        return None
    if rollout.stage is Stage.CLEANUP:
        return spec_at(spec, Stage.PROMOTE, len(spec.waves)), GateScope("verify")
    done = rollout.promoted_waves - 1
    if done <= 0:
        return spec_at(spec, Stage.CANARY), GateScope("canary")
    return spec_at(spec, Stage.PROMOTE, done), GateScope("wave", tuple(spec.waves[:done]))


def gate_hooks(spec: MeshSpec, plan: MeshPlan | None = None, *, gate: GateRunner | None = None,
               discover: Discover | None = None) -> Any:
    """A `pulumi.ResourceHookBinding` for the promotion resources, or None when no gate applies."""
    scoped = hook_scope(spec)
    if scoped is None:
        return None
    import pulumi

    hook = PromotionGate(*scoped, gate=gate, discover=discover)
    return pulumi.ResourceHookBinding(before_create=[hook], before_update=[hook])


class PromotionGate:
    """The hook function (callable with `ResourceHookArgs`); remembers its verdict."""

    def __init__(self, spec: MeshSpec, scope: GateScope, *, gate: GateRunner | None = None,
                 discover: Discover | None = None) -> None:
        self.spec = spec
        self.scope = scope
        self.gate = gate or ChecksGate()
        self.discover = discover
        self.__name__ = "meshlift_promotion_gate"  # Pulumi names anonymous hooks after the function
        self._lock = threading.Lock()
        self._verdict: GateVerdict | None = None
        self._error: Exception | None = None

    def __call__(self, args: Any = None) -> Awaitable[None] | None:
        if os.environ.get(GATED_ENV) or _dry_run() or only_takes_restarts_back(args):
            return None
        return self._check(args)

    async def _check(self, args: Any) -> None:
        # Pulumi awaits hooks on its event loop; the gate runs its own loop in a worker thread.
        verdict = await asyncio.to_thread(self.verdict)
        if not verdict.passed:
            where = getattr(args, "urn", None) or "the promotion"
            raise GateBlocked(f"{verdict.message} (meshlift gate '{verdict.gate}' blocks {where}; "
                              f"failing checks: {', '.join(verdict.failing_checks) or 'none named'})")
        return None

    def verdict(self) -> GateVerdict:
        with self._lock:
            if self._verdict is None:
                self._verdict = self._judge()
            return self._verdict

    def _judge(self) -> GateVerdict:
        name = self.scope.label
        try:
            found = self._discovery()(selectors_for(plan_for(self.spec), self.scope.sampling(self.spec.gates)))
            targets = GateTargets(canary=[t for t in found if t.role == "canary"],
                                  baseline=[t for t in found if t.role == "baseline"])
            if not targets.canary:
                return GateVerdict(name, "failed", f"Halt {name} advancement: no proxies found to judge",
                                   failing_checks=["targets"])
            return self.gate(name, targets, self.spec.gates)
        except Exception as error:  # fail closed: an error is never a pass
            return GateVerdict(name, "failed", f"Halt {name} advancement: the gate could not run ({error})",
                               failing_checks=["gate-error"])
        finally:
            closer = getattr(self.discover, "close", None)
            if callable(closer):
                closer()

    def _discovery(self) -> Discover:
        if self.discover is None:
            from rollout.platforms.kubernetes import KubeDiscovery

            self.discover = KubeDiscovery()
        return self.discover


def only_takes_restarts_back(args: Any) -> bool:
    """An update of a namespace's restarts that adds or changes none of them: a rollback moving pods back.

    Taking restarts back is how a rollback through the stack history returns
    workloads to the revision they ran before; gating it on the health of the
    promotion it undoes would block the way out.
    """
    old = (getattr(args, "old_outputs", None) or getattr(args, "old_inputs", None) or {}).get(RESTARTS)
    new = (getattr(args, "new_inputs", None) or {}).get(RESTARTS)
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return False
    return all(old.get(key) == revision for key, revision in new.items())


def _dry_run() -> bool:
    try:
        import pulumi

        return bool(pulumi.runtime.is_dry_run())
    except Exception:  # outside a Pulumi program (tests, tools): not a preview
        return False
