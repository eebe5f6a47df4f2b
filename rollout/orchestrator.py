"""The stage machine: advance a stage, verify it, decide, and undo safely.

`Orchestrator.run` drives one rollout through the phases of `rollout.phases`,
persisting every transition and decision in the journal before acting on it, so
a new process (after Ctrl-C or a crash) resumes at the phase and wave where the
last one stopped; a stage is re-applied on resume, which is harmless because
every apply is declarative. The orchestrator owns time: the gates' windows,
the bounded retries (tenacity), the waves and the approval wait (`rollout.approval`
decides it; the orchestrator promotes or rolls back on its decision).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from meshmodel.plan import plan_for, wave_restart_order
from meshmodel.spec import MeshSpec, Stage
from meshmodel.spec_check import load_spec
from rollout.approval import Approval, ApprovalWait, Approved
from rollout.errors import (
    CleanupRefused,
    ConfigTooLarge,
    MeshliftError,
    PlatformError,
    PlatformUnavailable,
    RolloutFailed,
    UsageError,
)
from rollout.inventory import INVENTORY_KEY, inventory_of, with_inventory, with_recorded, without_workloads
from rollout.pinned_config import PINNED_OBJECTS_KEY
from rollout.prerequisites import config_size_problem
from rollout.leftovers import cleanup_refusal, injected_revision
from rollout.rollouts import RolloutBudget, moved_workloads, stray_revisions, wait_for_rollouts
from rollout.gates import GateRunner, GateVerdict
from rollout.history import rollback_target
from rollout.journal import Journal, RunState
from rollout.namespace_checks import returned_injection_label_warnings
from rollout.phases import Phase, next_forward
from rollout.platforms.base import Applied, GateScope, Platform, StageChange
from rollout.platforms.scope import selectors_for
from rollout.schemas import rfc3339
from rollout.text import plain
from rollout.stages import ROLLOUT_KEY, UpgradeTarget, wave_parts
from rollout.workload_report import workload_rows

GATED_ENV = "MESHLIFT_GATED"  # set for `up`s the orchestrator gates itself: the resource hook stands down
APPLY_ATTEMPTS = 2
ROLLBACK_ATTEMPTS = 3
ROLLOUT_POLL_S = 2.0
ROLLOUT_PROGRESS_S = 30.0  # how often a rollout wait says what is still pending


class Reporter(Protocol):
    """Where progress goes (the rich console, a JSON collector, a test list)."""

    def event(self, kind: str, data: dict[str, Any]) -> None: ...

    def sample(self, gate: str, sample: Any) -> None: ...


@dataclass
class RunRequest:
    command: str  # upgrade | rehearse
    params: dict[str, Any]  # what makes a repeated command the same run
    target: UpgradeTarget
    base_config: dict[str, Any]  # the stack config before the upgrade (meshlift:* keys)
    # Rehearsals: an unfinished run with other parameters is abandoned (its processes died
    # with it) instead of refused, and `on_new_run` prepares a fresh platform.
    replace_unfinished: bool = False
    on_new_run: Callable[[], None] | None = None


class Orchestrator:
    def __init__(
        self,
        *,
        platform: Platform,
        journal: Journal,
        gate: GateRunner,
        reporter: Reporter,
        stack: str,
        approval: Approval | None = None,
        approval_poll_s: float = 1.0,
        approval_timeout_s: float | None = None,
        approval_summary_s: float = 60.0,
        retry_wait_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rollout_timeout_s: float | None = None,  # one deadline for every workload (default: meshlift:restarts)
        rollout_poll_s: float = ROLLOUT_POLL_S,
        rollout_progress_s: float = ROLLOUT_PROGRESS_S,
    ) -> None:
        self.platform = platform
        self.journal = journal
        self.gate = gate
        self.reporter = reporter
        self.stack = stack
        self.approval = approval
        self.approval_poll_s = approval_poll_s
        self.approval_timeout_s = approval_timeout_s
        self.approval_summary_s = approval_summary_s
        self.clock = clock
        self.sleep = sleep
        self.retry_wait_s = retry_wait_s
        self.rollout_timeout_s = rollout_timeout_s
        self.rollout_poll_s = rollout_poll_s
        self.rollout_progress_s = rollout_progress_s
        self._warned: set[str] = set()  # warnings already given in this process

    # ------------------------------------------------------------------ entry points

    def run(self, request: RunRequest) -> RunState:
        """Start, resume or (if already done) report the run `request` describes."""
        with self.journal.locked():
            state = self._start_or_resume(request)
            if state.phase.terminal:
                return state
            self.platform.open(self._current_spec(state, request))
            try:
                if state.phase is not Phase.PLANNED:
                    self._record_inventory(state, request)  # resumed: the inventory its first apply recorded
                while not state.phase.terminal:
                    self._step(state, request)
            finally:
                self.platform.close()
            self._emit(state, "done", phase=state.phase.value, failure=state.failure, rollback=state.rollback,
                       waves_done=state.waves_done, seconds=round(time.time() - state.started_at, 1))
            return state

    def rollback_by_hand(self, *, to: str | None, base_config: dict[str, Any]) -> Applied:
        """`meshlift rollback [--to]`: re-apply an earlier good update; ends any run in progress."""
        with self.journal.locked():
            entries = self.platform.history()
            entry = rollback_target(entries, to=to)
            state = self.journal.load()
            self.platform.open(self._spec_of(base_config))
            try:
                applied = self._reapply(entry)
            finally:
                self.platform.close()
            if state is not None and not state.phase.terminal:
                state.failure = {"gate": "operator", "message": "rolled back by hand", "checks": []}
                self.journal.transition(state, Phase.ROLLING_BACK)
                state.rollback = {"to_update": entry.version, "describe": entry.describe(), "update": applied.update}
                self.journal.transition(state, Phase.ROLLED_BACK)
            elif state is not None:
                self.journal.append(state, "rollback", to_update=entry.version, describe=entry.describe(),
                                    update=applied.update, by="operator")
            self.reporter.event("rollback", {"to_update": entry.version, "describe": entry.describe(),
                                             "update": applied.update})
            return applied

    # ------------------------------------------------------------------ run bookkeeping

    def _start_or_resume(self, request: RunRequest) -> RunState:
        state = self.journal.load()
        replaced = None
        if (state is not None and not state.phase.terminal and request.replace_unfinished
                and not state.matches(request.command, request.params)):
            self.journal.append(state, "abandoned", reason=f"new {request.command} with {_params(request.params)}")
            replaced, state = state, None
        if state is not None and not state.phase.terminal:
            if not state.matches(request.command, request.params):
                raise UsageError(
                    f"a {state.command} run ({_params(state.params)}) is in phase {state.phase.value}; "
                    f"resume it with the same command, give it up with `meshlift abandon -s {self.stack}` if it "
                    f"never applied anything, or `meshlift rollback -s {self.stack}` first")
            self._emit(state, "run", resumed=True, phase=state.phase.value, waves_done=state.waves_done)
            return state
        # Idempotent: the same upgrade again, or one the stack config records as cleaned up, changes nothing.
        done_before = (state is not None and state.phase is Phase.SUCCEEDED and request.command == "upgrade"
                       and state.matches(request.command, request.params))
        if done_before or request.target.already_done:
            if not done_before:
                state = RunState.new(stack=self.stack, command=request.command, params=request.params,
                                     waves_total=len(request.target.spec.waves))
                state.phase = Phase.SUCCEEDED
            assert state is not None
            self.reporter.event("run", {"already_done": True, "phase": state.phase.value, "run": state.run_id})
            return state
        state = RunState.new(stack=self.stack, command=request.command, params=request.params,
                             waves_total=len(request.target.spec.waves))
        if request.on_new_run is not None:
            request.on_new_run()
        self.journal.save(state)
        # Say that the interrupted run was given up: its flags differ, so the user may have meant to resume it.
        self._emit(state, "run", resumed=False, params=request.params, waves_total=state.waves_total,
                   **({"replaced": {"run": replaced.run_id, "params": replaced.params, "phase": replaced.phase.value}}
                      if replaced is not None else {}))
        return state

    def _record_inventory(self, state: RunState, request: RunRequest) -> None:
        """Fix what the run restarts: the inventory its first apply recorded (a resumed run), or
        what the platform says runs now. Every stage's config then carries it."""
        recorded = (state.applied or {}).get(INVENTORY_KEY)
        if recorded is None:
            namespaces = [ns.name for ns in request.target.spec.namespaces]
            try:
                recorded = inventory_of(namespaces, self.platform.live_workloads(namespaces),
                                        self.platform.autoscalers(namespaces))
            except PlatformError as error:
                raise PlatformUnavailable(f"{error}; nothing was changed") from error
            rows = workload_rows(request.target.spec, recorded)
            self._emit(state, "inventory", workloads={ns: [f"{w['kind']}/{w['name']}" for w in items]
                                                      for ns, items in recorded.items()},
                       classes=[row.to_json() for row in rows])
            for row in rows:
                for warning in row.warnings:
                    self._emit(state, "warning", message=f"{row.workload} in {row.namespace}: {warning}")
        request.target = with_inventory(request.target, request.base_config, recorded)
        self._record_pinned_config(state, request)
        problem = config_size_problem({**request.base_config, **request.target.extra})
        if problem:
            raise ConfigTooLarge(f"cannot start: {problem}. Nothing was changed.")

    def _record_pinned_config(self, state: RunState, request: RunRequest) -> None:
        """With `pinnedConfig: relabel`: fix which Istio config objects the run relabels, as the inventory
        is fixed (recorded by the first apply, or listed now)."""
        spec = request.target.spec
        if spec.pinned_config != "relabel" or spec.rollout is None:
            return
        recorded = (state.applied or {}).get(PINNED_OBJECTS_KEY)
        if recorded is None:
            try:
                recorded = self.platform.pinned_config(spec.rollout.from_revision)
            except PlatformError as error:
                raise PlatformUnavailable(f"{error}; nothing was changed") from error
            self._emit(state, "pinned", relabel=[f"{o['kind']} {o['namespace']}/{o['name']}" for o in recorded],
                       revision=spec.rollout.to_revision)
        request.target = with_recorded(request.target, request.base_config, {PINNED_OBJECTS_KEY: recorded})

    def _current_spec(self, state: RunState, request: RunRequest) -> MeshSpec:
        if state.applied is None:
            return self._spec_of(request.base_config)
        return self._spec_of({**request.base_config, **state.applied})

    @staticmethod
    def _spec_of(config: dict[str, Any]) -> MeshSpec:
        return load_spec(config)

    def _emit(self, state: RunState, kind: str, **data: Any) -> None:
        self.journal.append(state, kind, **data)
        self.reporter.event(kind, {"run": state.run_id, **data})

    def _move(self, state: RunState, phase: Phase, **evidence: Any) -> None:
        previous = state.phase
        self.journal.transition(state, phase, **evidence)
        self.reporter.event("phase", {"run": state.run_id, "from": previous.value, "to": phase.value,
                                      "waves_done": state.waves_done, **evidence})

    # ------------------------------------------------------------------ the steps

    def _step(self, state: RunState, request: RunRequest) -> None:
        target = request.target
        rollout = target.spec.rollout
        assert rollout is not None
        require_approval = rollout.require_approval
        phase = state.phase
        try:
            if phase is Phase.PLANNED:
                entries = self.platform.history()
                good = [e.version for e in entries if e.good]
                state.baseline_update = max(good) if good else None
                self._record_inventory(state, request)
                self._move(state, Phase.INSTALLING, baseline_update=state.baseline_update)
            elif phase is Phase.INSTALLING:
                self._apply(state, target.change(Stage.INSTALL))
                self._move(state, Phase.CANARY_VERIFYING)
            elif phase is Phase.CANARY_VERIFYING:
                self._apply(state, target.change(Stage.CANARY))
                if self._gate(state, target.change(Stage.CANARY).spec, GateScope("canary")):
                    self._move(state, next_forward(phase, require_approval=require_approval))
            elif phase is Phase.WAITING_APPROVAL:
                self._wait_for_approval(state, target)
            elif phase is Phase.PROMOTING:
                self._promote_next_wave(state, request)
            elif phase is Phase.VERIFYING:
                spec = target.change(Stage.PROMOTE, len(target.spec.waves)).spec
                if self._gate(state, spec, GateScope("verify")):
                    self._move(state, Phase.CLEANING_UP)
            elif phase is Phase.CLEANING_UP:
                self._guard_cleanup(state, target)
                self._apply(state, target.change(Stage.CLEANUP))
                self._move(state, Phase.SUCCEEDED)
            elif phase is Phase.ROLLING_BACK:
                self._roll_back(state, request)
        except PlatformError as error:
            if phase in (Phase.PLANNED, Phase.ROLLING_BACK):
                raise  # Planned: nothing changed yet, nothing to roll back
            self._fail(state, gate="apply", message=f"Halt advancement: {error}", checks=["apply"])

    def _guard_cleanup(self, state: RunState, target: UpgradeTarget) -> None:
        """Refuse to remove the old revision while anything still needs it; the run stays at
        cleanup, so the same command resumes here once the named pods are gone."""
        try:
            pods = self.platform.pods()
            sources = self.platform.revision_sources()
        except PlatformError as error:
            raise CleanupRefused(f"Cleanup refused: cannot list what may still ask for the old revision "
                                 f"({error}); run the same command again when the cluster answers") from error
        refusal = cleanup_refusal(plan_for(target.change(Stage.CLEANUP).spec), pods, sources)
        if refusal is None:
            return
        self._emit(state, "cleanup", status="refused" if refusal.refused else "allowed", **refusal.to_json())
        if refusal.refused:
            raise CleanupRefused(refusal.message)

    def _promote_next_wave(self, state: RunState, request: RunRequest) -> None:
        """One wave: its parts (`restarts.maxRolling` workloads each, one `up` and its rollouts per part),
        then the wave gate once."""
        total = len(request.target.spec.waves)
        wave = min(state.waves_done + 1, total)
        self._skip_deleted_workloads(state, request, wave)
        target = request.target
        count = len(wave_restart_order(target.spec, target.spec.waves[wave - 1])) if wave else 0
        parts = wave_parts(target.spec, wave, reached=_reached(state, wave, count))
        step = target.spec.restarts.max_rolling or max(count, 1)
        paced = step < count  # the events say which part of how many
        previous = 0  # a resumed part also waits for the earlier parts' workloads (done: one listing each)
        for restarted in parts:
            change = target.change(Stage.PROMOTE, wave, restarted)
            reached = count if restarted is None else restarted
            state.wave_restarted = reached  # before the `up`: killed during it, the run resumes at this part
            self.journal.save(state)
            self._apply(state, change)
            progress = {"part": -(-reached // step), "parts": -(-count // step), "restarted": reached,
                        "workloads": count} if paced else {}
            self._emit(state, "wave", wave=wave, of=total, status="applied", **progress)
            before = (target.change(Stage.PROMOTE, wave, previous) if previous
                      else target.change(Stage.PROMOTE, wave - 1))
            try:
                self._await_rollouts(state, before.spec, change.spec)
            except RolloutFailed as error:
                self._fail(state, gate=f"wave {wave}", message=f"Halt wave {wave} advancement: {error}",
                           checks=["rollout"])
                return
            if paced:
                self._emit(state, "wave", wave=wave, of=total, status="restarted", **progress)
            previous = reached
        spec = target.change(Stage.PROMOTE, wave).spec
        waves = tuple(target.spec.waves[:wave])
        if not self._gate(state, spec, GateScope("wave", waves)):
            return
        state.waves_done = wave
        state.wave_restarted = 0
        self.journal.save(state)
        self._emit(state, "wave", wave=wave, of=total, status="verified")
        self._move(state, Phase.PROMOTING if wave < total else Phase.VERIFYING, wave=wave)

    def _skip_deleted_workloads(self, state: RunState, request: RunRequest, wave: int) -> None:
        """Before a wave's patches: a workload of the wave deleted since the inventory was recorded is
        dropped from it (a patch of a missing object fails the update), and reported."""
        before = plan_for(request.target.change(Stage.PROMOTE, wave - 1).spec)
        after = plan_for(request.target.change(Stage.PROMOTE, wave).spec)
        moving = moved_workloads(before, after)
        if not moving:
            return
        try:
            live = self.platform.live_workloads(sorted({namespace for namespace, _, _ in moving}))
        except PlatformError:
            return  # cannot tell: the update says so if one is gone
        running = {(namespace, obj.get("kind"), (obj.get("metadata") or {}).get("name"))
                   for namespace, objects in live.items() for obj in objects}
        gone = sorted(moving - running)
        if not gone:
            return
        names = [f"{kind} {namespace}/{name}" for namespace, kind, name in gone]
        self._emit(state, "warning", message=f"deleted since the run started, skipped in wave {wave}: "
                                             + ", ".join(names))
        request.target = with_inventory(request.target, request.base_config,
                                        without_workloads(request.target.spec, gone))

    def _await_rollouts(self, state: RunState, before: MeshSpec, after: MeshSpec, *, rollback: bool = False) -> None:
        """Wait until every workload whose restart annotation changed from `before` to `after` has
        rolled out (OnDelete workloads meshlift evicts: their pods replaced one by one); RolloutFailed
        with the controller's reason when one cannot. A rollback also replaces StatefulSet pods stuck
        on the reverted revision."""
        plan_before, plan_after = plan_for(before), plan_for(after)
        moved = moved_workloads(plan_before, plan_after)
        if not moved:
            return
        wanted = {(w.namespace, w.kind, w.name): w.restart_revision for w in plan_after.workloads}
        evicting = {(w.namespace, w.kind, w.name): wanted.get((w.namespace, w.kind, w.name))
                    for w in [*plan_before.workloads, *plan_after.workloads]
                    if w.evicted and (w.namespace, w.kind, w.name) in moved}
        names = sorted(f"{kind} {namespace}/{name}" for namespace, kind, name in moved)
        self._emit(state, "rollout", status="waiting", workloads=names)
        restarts = after.restarts
        budget = RolloutBudget(restarts.budget, restarts.per_replica, fixed_s=self.rollout_timeout_s)
        outcome = wait_for_rollouts(
            self.platform.live_workloads, moved, budget=budget, poll_s=self.rollout_poll_s, evicting=evicting,
            pods=self.platform, forced_rollback=rollback, progress_s=self.rollout_progress_s,
            on_progress=lambda pending: self._emit(state, "rollout", status="progress", pending=pending))
        if outcome.gone:
            self._emit(state, "warning", message="deleted while restarting, skipped: " + ", ".join(outcome.gone))
        if outcome.unstuck:
            self._emit(state, "rollout", status="unstuck", pods=outcome.unstuck,
                       message="StatefulSet pods stuck on the reverted revision were deleted, so their "
                               "controller makes them again (kubernetes/kubernetes#67250)")
        self._emit(state, "rollout", status="done", workloads=names, evicted=outcome.evicted, gone=outcome.gone)

    def _apply(self, state: RunState, change: StageChange) -> Applied:
        self._warn_returned_labels(state, change.spec)
        self._emit(state, "apply", stage=change.spec.rollout.stage.value if change.spec.rollout else None,
                   message=change.message, status="started")
        applied = self._with_retries(lambda: self.platform.apply(change, log=self._log), APPLY_ATTEMPTS)
        state.applied = dict(change.config)
        self.journal.save(state)
        self._emit(state, "apply", stage=change.spec.rollout.stage.value if change.spec.rollout else None,
                   message=change.message, status="done", update=applied.update, changes=applied.changes)
        for warning in applied.warnings:
            self._emit(state, "warning", message=warning)
        return applied

    def _warn_returned_labels(self, state: RunState, spec: MeshSpec) -> None:
        """Before each stage and each gate: an `istio-injection` label put back on an enrolled namespace (a GitOps
        self-heal) sends its new pods to another injector; said once per process and label."""
        try:
            warnings = returned_injection_label_warnings(spec, self.platform.namespaces())
        except PlatformError as error:
            warnings = [f"cannot check the enrolled namespaces' istio-injection labels: {error}"]
        for warning in warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self._emit(state, "warning", message=warning)

    def _gate(self, state: RunState, spec: MeshSpec, scope: GateScope) -> bool:
        """Run one gate; on failure record it and move to RollingBack. True if it passed."""
        verdict = self._judge(state, spec, scope, scope.label)
        if verdict.passed:
            return True
        self._fail(state, gate=verdict.gate, message=verdict.message, checks=verdict.failing_checks,
                   evidence=verdict.evidence)
        return False

    def _judge(self, state: RunState, spec: MeshSpec, scope: GateScope, name: str) -> GateVerdict:
        self._warn_returned_labels(state, spec)  # a label back since the stage's apply: said before its gate
        plan = plan_for(spec)
        scope = scope.sampling(spec.gates)
        if not any(selector.role == "canary" for selector in selectors_for(plan, scope)):
            # The plan puts nothing under test (no canary, no gateway, every workload left where it is:
            # OnDelete, owned, paused). Pods the plan names but discovery cannot find still fail closed.
            message = f"nothing under test in the {name} gate: no canary, gateway or moved workload"
            self._emit(state, "gate", gate=name, status="skipped", message=message)
            return GateVerdict(name, "passed", message)
        targets = self.platform.targets(plan, scope)
        self._emit(state, "gate", gate=name, status="started", canary=[t.name for t in targets.canary],
                   baseline=[t.name for t in targets.baseline], sampled=[s.to_dict() for s in targets.sampled])
        verdict = self.gate(name, targets, spec.gates, on_sample=lambda s: self.reporter.sample(name, s))
        self._emit(state, "gate", status="done", **verdict.to_json())
        return verdict

    def _fail(self, state: RunState, *, gate: str, message: str, checks: list[str], evidence: Any = None) -> None:
        history = self._safe_history_top()
        state.failure = {"gate": gate, "message": message, "checks": list(checks), "phase": state.phase.value,
                         "update": history, "evidence": evidence}
        self._move(state, Phase.ROLLING_BACK, gate=gate, message=message, checks=list(checks))

    def _safe_history_top(self) -> int | None:
        try:
            entries = self.platform.history()
        except MeshliftError:
            return None
        return max((e.version for e in entries), default=None)

    def _wait_for_approval(self, state: RunState, target: UpgradeTarget) -> None:
        """Hold the canary until someone approves it, a gate fails, or the wait times out.

        The approval names what it approves: `state.awaiting` (run, gate, evidence) is
        persisted before the wait, `meshlift promote` shows it and writes it back with
        who and when. While waiting, the gate keeps sampling, but only a summary per
        `approval_summary_s` is journaled: an hour's wait is a few dozen lines.
        """
        spec = target.change(Stage.CANARY).spec
        if state.awaiting is None:
            canary = next((e for e in reversed(self.journal.events(state.run_id))
                           if e.get("event") == "gate" and e.get("status") == "done"), {})
            state.awaiting = {"run": state.run_id, "gate": "canary", "evidence": canary.get("message"),
                              "since": rfc3339(self.clock())}
            self.journal.save(state)
        if self.journal.approval_for(state.run_id) is None:  # approved already (`promote` resuming it): no prompt
            self._emit(state, "approval", status="waiting", gate=state.awaiting["gate"],
                       evidence=state.awaiting["evidence"], hint=f"meshlift promote -s {self.stack}")
        wait = ApprovalWait(journal=self.journal, prompt=self.approval, clock=self.clock, sleep=self.sleep,
                            poll_s=self.approval_poll_s, timeout_s=self.approval_timeout_s,
                            summary_s=self.approval_summary_s)
        decision = wait.run(
            state.run_id, state.awaiting,
            sample_gate=lambda: self.gate("approval", self.platform.targets(plan_for(spec),
                                                                          GateScope("canary").sampling(spec.gates)),
                                          spec.gates, on_sample=lambda s: self.reporter.sample("approval", s)),
            on_summary=lambda samples: self._emit(state, "approval", status="waiting", samples=samples))
        if isinstance(decision, Approved):
            state.awaiting = None
            self._emit(state, "approval", status="approved", samples=decision.samples, **decision.record)
            self._move(state, Phase.PROMOTING)
        elif decision.verdict is None:  # rejected, or nobody answered in time
            self._fail(state, gate="approval", message=decision.message, checks=["approval"])
        else:
            verdict = decision.verdict
            self._emit(state, "gate", status="done", **verdict.to_json())
            self._fail(state, gate="approval", message=verdict.message, checks=verdict.failing_checks,
                       evidence=verdict.evidence)

    def _roll_back(self, state: RunState, request: RunRequest) -> None:
        """Re-apply the last good update, then gate the whole mesh it describes: a rollback
        that leaves the mesh unhealthy is a failed rollback (exit 3), not a rolled-back run."""
        before = (state.failure or {}).get("update")
        try:
            entry = rollback_target(self.platform.history(), before=before)
            failed_spec = self._spec_of({**request.base_config, **(state.applied or {})})
            applied = self._reapply(entry, state=state)
            state.applied = entry.decoded_config()
            self.journal.save(state)
            restored = self._spec_of({**request.base_config, **state.applied})
            self._await_rollouts(state, failed_spec, restored, rollback=True)  # the moved waves, restarting back
            scope = GateScope("verify", strays=stray_revisions(plan_for(failed_spec), plan_for(restored)))
            verdict = self._judge(state, restored, scope, "rollback")
        except MeshliftError as error:  # no target, the platform gone, every attempt failed
            state.rollback = {"error": str(error)}
            self._move(state, Phase.FAILED, error=str(error))
            return
        state.rollback = {"to_update": entry.version, "describe": entry.describe(), "update": applied.update}
        left = self._left_on_revision(state, restored, scope)
        if left:
            state.rollback["left_on_revision"] = left
        if not verdict.passed:
            state.rollback["error"] = f"the mesh is unhealthy after re-applying update {entry.version}: {verdict.message}"
            self._move(state, Phase.FAILED, **state.rollback)
            return
        self._move(state, Phase.ROLLED_BACK, **state.rollback)

    def _left_on_revision(self, state: RunState, restored: MeshSpec, scope: GateScope) -> list[dict[str, str]]:
        """Name the pods the rollback gate judged on the revision the moved tag injected (`scope.strays`):
        the rollback does not restart their workloads, so they keep that proxy until their owners do."""
        if not scope.strays:
            return []
        kinds = {(stray.namespace, stray.name): stray.kind for stray in scope.strays}
        left: list[dict[str, str]] = []
        for selector in (s for s in selectors_for(plan_for(restored), scope) if s.also_runs):
            revisions = dict(selector.also_runs)
            kind = kinds[(selector.namespace, selector.name)]
            try:
                pods = self.platform.workload_pods(selector.namespace, selector.label_selector)
            except PlatformError as error:
                self._emit(state, "warning", message=f"cannot tell which pods of {kind} {selector.namespace}/"
                                                     f"{selector.name} the moved tag injected: {error}")
                continue
            for pod in pods:
                meta, phase = pod.get("metadata") or {}, (pod.get("status") or {}).get("phase")
                revision = injected_revision(pod)
                if revision not in revisions or phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
                    continue
                left.append({"pod": f"{selector.namespace}/{meta.get('name')}",
                             "workload": f"{kind} {selector.namespace}/{selector.name}",
                             "revision": revision, "version": revisions[revision],
                             "restart": f"kubectl rollout restart {kind.lower()}/{selector.name} "
                                        f"-n {selector.namespace}"})
        if left:
            self._emit(state, "warning", pods=[p["pod"] for p in left],
                       message="left on the revision the moved tag injected (no wave restarted their workloads; "
                               "judged for that revision, which stays installed): "
                               + ", ".join(f"{p['pod']} ({p['revision']})" for p in left))
        return left

    def _reapply(self, entry: Any, *, state: RunState | None = None) -> Applied:
        if state is not None:
            self._emit(state, "rollback", to_update=entry.version, describe=entry.describe(), status="started")
        return self._with_retries(lambda: self.platform.reapply(entry, log=self._log), ROLLBACK_ATTEMPTS)

    def _with_retries(self, action: Callable[[], Applied], attempts: int) -> Applied:
        retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_fixed(self.retry_wait_s),
                            retry=retry_if_exception_type(PlatformError), reraise=True)
        return retrying(action)

    def _log(self, line: str) -> None:
        """Platform output (`pulumi up` lines, proxies started): shown, not journaled."""
        self.reporter.event("log", {"line": line.rstrip()})


def _reached(state: RunState, wave: int, count: int) -> int:
    """How many workloads of `wave` the run restarted so far: the part it recorded, or the part its last applied
    config holds (a run recorded before parts existed, or applied whole before `maxRolling` was set)."""
    applied = (state.applied or {}).get(ROLLOUT_KEY) or {}
    if applied.get("stage") != Stage.PROMOTE.value or applied.get("promotedWaves") != wave:
        return state.wave_restarted
    return max(state.wave_restarted, applied.get("restartedInWave") or count)


def gated_env() -> dict[str, str]:
    """The environment an orchestrated `up` runs with (see rollout.hooks)."""
    return {GATED_ENV: str(os.getpid())}


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={plain(value)}" for key, value in sorted(params.items())) or "no parameters"
