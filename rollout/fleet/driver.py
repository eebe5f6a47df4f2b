"""The fleet driver: ring after ring, each stack by its own orchestrator, soak, re-gate, stop the line.

    validate --to on every stack ──► ring 1: upgrade its stacks (maxParallel at once)
                                        │  every stack Succeeded?  no ─► Halted (later rings untouched)
                                        ▼
                                     soak: re-gate every finished ring until `soak` has passed,
                                        │  then once more: the gate before the next ring starts
                                        ▼
                                     ring 2 ... ─► Succeeded

Each stack's upgrade is the orchestrator's, with the stack's own journal: a stack
that fails its gates is rolled back by it. The fleet journal records the rings'
progress (a soak's end time is absolute), so a new process resumes where the last
one stopped, even after `kill -9`: an unfinished stack run resumes in its own
journal, a soak continues until its recorded end.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Protocol

from meshmodel.plan import MeshPlan, plan_for
from meshmodel.spec import IstioVersion, MeshSpec
from meshmodel.spec_check import load_spec
from rollout.errors import MeshliftError, PlatformError, UsageError
from rollout.fleet.journal import (COULD_NOT_START, HALTED, NOT_STARTED, PASSED, PENDING, SOAKING, STOPPED,
                                   SUCCEEDED, UPGRADING, FleetJournal, FleetState, RingRecord)
from rollout.fleet.model import FleetSpec, RingSpec
from rollout.fleet.prepare import FleetStack, load_run, prepare
from rollout.fleet.stacks import StackSource
from rollout.gates import ChecksGate, GateRunner, GateVerdict
from rollout.orchestrator import Orchestrator, RunRequest
from rollout.phases import Phase
from rollout.platforms.base import Applied, GateScope, GateTargets, Log, Platform, StageChange


class FleetInterrupted(BaseException):
    """Raised inside a stack's thread when the fleet is interrupted: its journal keeps its place."""


class FleetView(Protocol):
    """Where the fleet's progress goes (the live view, the JSON document, a test list). Thread-safe."""

    def fleet_event(self, kind: str, data: dict[str, Any]) -> None: ...

    def stack_event(self, stack: str, kind: str, data: dict[str, Any]) -> None: ...

    def stack_sample(self, stack: str, gate: str, sample: Any) -> None: ...


class FleetDriver:
    def __init__(
        self,
        *,
        fleet: FleetSpec,
        fleet_name: str,
        source: StackSource,
        view: FleetView,
        gate: GateRunner | None = None,
        soak_poll_s: float = 1.0,
        retry_wait_s: float = 1.0,
        on_settled: Callable[[dict[str, Platform]], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.fleet_name = fleet_name
        self.source = source
        self.view = view
        self.gate = gate or ChecksGate()
        self.soak_poll_s = soak_poll_s
        self.retry_wait_s = retry_wait_s
        self.on_settled = on_settled  # sees every platform still open once the rings are done (tests)
        self.journal = FleetJournal(source.root)
        self.stop = threading.Event()  # set on an interrupt: stack threads stop at their next step
        self._lock = threading.Lock()  # fleet.json and the event log are written from stack threads

    # ------------------------------------------------------------------ entry point

    def run(self, to: str, *, extra_params: dict[str, Any] | None = None) -> FleetState:
        """Start, resume, or (if already done) report the fleet upgrade to `to`."""
        self._refuse_other_unfinished_run(to)
        stacks = prepare(self.fleet, self.source, to)
        params = {"to": stacks[0].to_version, "platform": self.source.kind, "fleet": self.fleet.digest(),
                  **(extra_params or {})}
        with self.journal.locked():
            state = self._start_or_resume(params)
            if state.terminal:
                return state
            try:
                self._open(stacks)
                with _interrupts_stop(self.stop):
                    by_ring = {ring.name: [s for s in stacks if s.ring is ring] for ring in self.fleet.rings}
                    finished: list[FleetStack] = []
                    for index, ring in enumerate(self.fleet.rings):
                        finished += by_ring[ring.name]
                        if not self._ring(state, index, ring, by_ring[ring.name], finished):
                            break
                    else:
                        state.phase = SUCCEEDED
                        self._save(state)
                        self._emit(state, "done", phase=state.phase, seconds=round(time.time() - state.started_at, 1))
                if self.on_settled is not None:
                    self.on_settled({s.name: s.platform for s in stacks if s.platform is not None})
            finally:
                self._close(stacks)
            return state

    # ------------------------------------------------------------------ bookkeeping

    def _refuse_other_unfinished_run(self, to: str, params: dict[str, Any] | None = None) -> None:
        state = self.journal.load()
        if state is None or state.terminal:
            return
        if params is not None and state.params.get("fleet") != params["fleet"]:
            raise UsageError(
                f"fleet {self.fleet_name}: the fleet file changed since its unfinished run ({_params(state.params)}) "
                f"started at ring {_current_ring(state)}; restore the rings it started with to resume it; "
                "nothing changed")
        same = state.params == params if params is not None else state.params.get("to") == _normalized(to)
        if not same:
            raise UsageError(
                f"fleet {self.fleet_name}: an unfinished run ({_params(state.params)}) is at ring "
                f"{_current_ring(state)}; resume it with `meshlift fleet resume` (same fleet file), or let it "
                "finish first; nothing changed")

    def _start_or_resume(self, params: dict[str, Any]) -> FleetState:
        self._refuse_other_unfinished_run(params["to"], params)
        state = self.journal.load()
        if state is not None and not state.terminal:
            self._emit(state, "run", resumed=True, ring=_current_ring(state))
            return state
        if state is not None and state.phase == SUCCEEDED and state.params == params:
            self.view.fleet_event("run", {"already_done": True, "run": state.run_id, "state": state.to_json()})
            return state
        self.source.reset()
        rings = [RingRecord(r.name, list(r.stacks), r.soak, r.max_parallel) for r in self.fleet.rings]
        state = FleetState.new(fleet=self.fleet_name, params=params, rings=rings)
        self.journal.save(state)
        self._emit(state, "run", resumed=False, params=params)
        return state

    def _emit(self, state: FleetState, kind: str, **data: Any) -> None:
        with self._lock:
            record = self.journal.append(state, kind, **data)
        self.view.fleet_event(kind, {**data, "run": state.run_id, "ts": record["ts"], "state": state.to_json()})

    def _save(self, state: FleetState) -> None:
        with self._lock:
            self.journal.save(state)

    def _open(self, stacks: list[FleetStack]) -> None:
        """Open every stack's platform here (the main thread) at the state its journal records:
        finished rings stay up to be re-gated, later rings keep running the old version."""
        for stack in stacks:
            platform = self.source.platform(stack.name, stack.config)
            run = load_run(stack.journal)
            applied = run.applied if run is not None else None
            platform.open(load_spec({**stack.config, **applied}) if applied else load_spec(stack.config))
            stack.platform = platform

    @staticmethod
    def _close(stacks: list[FleetStack]) -> None:
        for stack in stacks:
            if stack.platform is not None:
                stack.platform.close()

    # ------------------------------------------------------------------ rings

    def _ring(self, state: FleetState, index: int, ring: RingSpec, stacks: list[FleetStack],
              finished: list[FleetStack]) -> bool:
        record = state.rings[index]
        if record.status == PASSED:
            return True
        if record.status == PENDING:
            record.status = UPGRADING
            self._save(state)
            self._emit(state, "ring", ring=ring.name, status=UPGRADING, stacks=list(ring.stacks))
        if record.status == UPGRADING:
            if not self._upgrade_ring(state, ring, stacks):
                return False
            record.status, record.soak_started_at = SOAKING, time.time()
            record.soak_until = record.soak_started_at + ring.soak
            self._save(state)
            self._emit(state, "soak", ring=ring.name, status="started", seconds=ring.soak, until=record.soak_until)
        if record.status == SOAKING:
            if not self._soak(state, ring, finished):
                return False
            record.status = PASSED
            self._save(state)
            self._emit(state, "ring", ring=ring.name, status=PASSED)
            return True
        return False  # halted earlier: a terminal run is not driven again

    def _upgrade_ring(self, state: FleetState, ring: RingSpec, stacks: list[FleetStack]) -> bool:
        line_stopped = threading.Event()

        def one(stack: FleetStack) -> None:
            if line_stopped.is_set():
                return  # the line stopped: this stack stays untouched
            if not self._upgrade_stack(state, stack):
                line_stopped.set()

        with ThreadPoolExecutor(max_workers=ring.max_parallel, thread_name_prefix=f"fleet-{ring.name}") as pool:
            futures: list[Future[None]] = [pool.submit(one, stack) for stack in stacks]
            try:
                wait(futures)
            except BaseException:
                self.stop.set()  # Ctrl-C: each stack stops at its next step, its journal keeps its place
                line_stopped.set()
                wait(futures)
                raise
        errors = [future.exception() for future in futures if future.exception() is not None]
        if any(isinstance(error, FleetInterrupted) for error in errors):
            raise KeyboardInterrupt  # a stack thread saw the interrupt first
        if errors:
            raise errors[0]  # a bug, not a verdict: surface it
        if line_stopped.is_set():
            failed = [name for name, record in state.stacks.items()
                      if record.ring == ring.name and record.phase not in (NOT_STARTED, Phase.SUCCEEDED.value)]
            self._halt(state, ring.name, failed[0] if failed else None,
                       "; ".join(f"{name}: {state.stacks[name].failure}" for name in failed))
            return False
        return True

    def _upgrade_stack(self, state: FleetState, stack: FleetStack) -> bool:
        """Run (or resume) one stack's upgrade with its own orchestrator; True if it Succeeded."""
        assert stack.platform is not None
        record = state.stacks[stack.name]
        self._emit(state, "stack", ring=stack.ring.name, stack=stack.name, status="started")
        orchestrator = Orchestrator(
            platform=_Guarded(stack.platform, self.stop), journal=stack.journal, gate=self.gate,
            reporter=_StackReporter(self, state, stack.name), stack=stack.name, retry_wait_s=self.retry_wait_s)
        request = RunRequest(command="upgrade", params={"to": stack.to_version}, target=stack.target,
                             base_config=stack.config)
        try:
            result = orchestrator.run(request)
        except MeshliftError as error:  # could not start (busy, platform unavailable): nothing of it changed
            record.phase, record.failure = COULD_NOT_START, str(error)
        else:
            record.phase, record.run = result.phase.value, result.run_id
            failure = result.failure or {}
            record.failure = failure.get("message") if result.phase is not Phase.SUCCEEDED else None
            if result.phase is Phase.FAILED:
                record.failure = f"{record.failure}; the rollback failed too: {(result.rollback or {}).get('error')}"
        self._save(state)
        self._emit(state, "stack", ring=stack.ring.name, stack=stack.name, status="finished", phase=record.phase,
                   stack_run=record.run, failure=record.failure)
        return record.phase == Phase.SUCCEEDED.value

    # ------------------------------------------------------------------ soak

    def _soak(self, state: FleetState, ring: RingSpec, finished: list[FleetStack]) -> bool:
        """Re-gate every finished ring until the soak has passed; the last pass starts after it ends."""
        record = state.ring(ring.name)
        assert record.soak_until is not None
        while True:
            started = time.time()
            for stack in finished:
                verdict = self._regate(stack)
                self._emit(state, "gate", ring=stack.ring.name, stack=stack.name, soaking=ring.name,
                           outcome=verdict.outcome, message=verdict.message, checks=verdict.failing_checks,
                           final=started >= record.soak_until)
                if not verdict.passed:
                    state.stacks[stack.name].failure = verdict.message
                    self._halt(state, ring.name, stack.name,
                               f"{stack.name} (ring {stack.ring.name}) failed its re-gate while ring {ring.name} "
                               f"soaked: {verdict.message}; it stays upgraded: `meshlift rollback -s {stack.name}` "
                               "to take it back")
                    return False
            if started >= record.soak_until:
                break
            time.sleep(max(0.0, min(self.soak_poll_s, record.soak_until - time.time())))
        self._emit(state, "soak", ring=ring.name, status="ended", seconds=round(time.time() - (record.soak_started_at or 0), 1))
        return True

    def _regate(self, stack: FleetStack) -> GateVerdict:
        assert stack.platform is not None
        name = f"soak {stack.name}"
        try:
            targets = stack.platform.targets(plan_for(self._judged_spec(stack)), GateScope("verify"))
        except PlatformError as error:  # cannot see the proxies: the gate fails closed
            return GateVerdict(name, "failed", f"Halt {name} advancement: {error}", failing_checks=["targets"])
        return self.gate(name, targets, stack.gates,
                         on_sample=lambda sample: self.view.stack_sample(stack.name, name, sample))

    @staticmethod
    def _judged_spec(stack: FleetStack) -> MeshSpec:
        """The stack as upgraded, with the workloads its run recorded (what the re-gate must judge)."""
        from meshmodel.spec import Stage
        from rollout.inventory import INVENTORY_KEY, with_inventory

        run = load_run(stack.journal)
        inventory = (run.applied or {}).get(INVENTORY_KEY) if run is not None else None
        if inventory is None:
            return stack.upgraded_spec
        return with_inventory(stack.target, stack.config, inventory).change(Stage.CLEANUP).spec

    def _halt(self, state: FleetState, ring: str, stack: str | None, reason: str) -> None:
        state.phase, state.halt = HALTED, {"ring": ring, "stack": stack, "reason": reason}
        state.ring(ring).status = STOPPED
        self._save(state)
        self._emit(state, "halt", ring=ring, stack=stack, reason=reason)


class _StackReporter:
    """The orchestrator's reporter for one stack: to the fleet view, and the stack's phase to fleet.json."""

    def __init__(self, driver: FleetDriver, state: FleetState, stack: str) -> None:
        self.driver, self.state, self.stack = driver, state, stack

    def event(self, kind: str, data: dict[str, Any]) -> None:
        record = self.state.stacks[self.stack]
        if kind == "run" and data.get("run"):
            record.run = data["run"]
        if kind == "phase":
            record.phase = data["to"]
            self.driver._save(self.state)
        self.driver.view.stack_event(self.stack, kind, data)
        if kind != "log" and self.driver.stop.is_set():
            raise FleetInterrupted

    def sample(self, gate: str, sample: Any) -> None:
        self.driver.view.stack_sample(self.stack, gate, sample)


class _Guarded:
    """A stack's platform as its orchestrator sees it inside a fleet: the fleet opened it and
    closes it; once the fleet is interrupted no further step reaches the platform."""

    def __init__(self, platform: Platform, stop: threading.Event) -> None:
        self._platform, self._stop = platform, stop
        self.name = platform.name

    def _check(self) -> None:
        if self._stop.is_set():
            raise FleetInterrupted

    def open(self, current: MeshSpec) -> None:
        self._check()

    def close(self) -> None:
        return None

    def apply(self, change: StageChange, *, log: Log) -> Applied:
        self._check()
        return self._platform.apply(change, log=log)

    def targets(self, plan: MeshPlan, scope: GateScope) -> GateTargets:
        self._check()
        return self._platform.targets(plan, scope)

    def history(self) -> list[Any]:
        self._check()
        return self._platform.history()

    def reapply(self, entry: Any, *, log: Log) -> Applied:
        self._check()
        return self._platform.reapply(entry, log=log)

    def live_workloads(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        self._check()
        return self._platform.live_workloads(namespaces)

    def pods(self) -> list[dict[str, Any]]:
        self._check()
        return self._platform.pods()

    def autoscalers(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        self._check()
        return self._platform.autoscalers(namespaces)

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        self._check()
        return self._platform.revision_sources()

    def pinned_config(self, revision: str) -> list[dict[str, str]]:
        self._check()
        return self._platform.pinned_config(revision)

    def namespaces(self) -> list[dict[str, Any]]:
        self._check()
        return self._platform.namespaces()

    def workload_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._check()
        return self._platform.workload_pods(namespace, selector)

    def evict(self, namespace: str, pod: str) -> bool:
        self._check()
        return self._platform.evict(namespace, pod)

    def delete_pod(self, namespace: str, pod: str) -> None:
        self._check()
        self._platform.delete_pod(namespace, pod)


@contextmanager
def _interrupts_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP set `stop` before anything else reacts (the local platform's handler stops
    its Envoys): a stack thread must not mistake its proxies' shutdown for a failed gate."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        elif signum == signal.SIGINT and before != signal.SIG_IGN:
            raise KeyboardInterrupt
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def _current_ring(state: FleetState) -> str:
    return next((ring.name for ring in state.rings if ring.status not in (PASSED,)), "-")


def _normalized(to: str) -> str:
    try:
        return str(IstioVersion.parse(to))
    except ValueError:
        return to  # prepare() reports it


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(params.items()))


def exit_code(state: FleetState) -> int:
    """0 every ring passed; 1 the line stopped and every failed stack is back on its last good state;
    2 a stack's run could not start (nothing of it changed); 3 a stack's rollback failed (a human must look)."""
    if state.phase == SUCCEEDED:
        return 0
    phases = {record.phase for record in state.stacks.values()}
    if Phase.FAILED.value in phases:
        return 3
    return 2 if COULD_NOT_START in phases else 1
