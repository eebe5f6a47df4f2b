"""Running a rollout command with live progress or a JSON document, and its exit code."""

from __future__ import annotations

import time
from typing import Any

import typer

from dataclasses import dataclass

from meshmodel.spec import parse_duration
from rollout import console
from rollout.errors import PrerequisiteMissing, UsageError
from rollout.journal import Journal
from rollout.phases import Phase
from rollout.schemas import document

APPROVE_FROM = ("stdin", "promote")


@dataclass(frozen=True)
class ApprovalOptions:
    """Where an approval may come from, and how long a run waits for one."""

    source_name: str = "stdin"  # stdin: y/n typed or piped; promote: only `meshlift promote`
    timeout_s: float | None = None

    @classmethod
    def parse(cls, approve_from: str, timeout: str | None, *, required: bool, stdin: Any = None) -> ApprovalOptions:
        """Check the flags; refuse to wait for an answer that cannot come (before any run is recorded)."""
        if approve_from not in APPROVE_FROM:
            raise UsageError(f"--approve-from {approve_from}: choose one of: {', '.join(APPROVE_FROM)}")
        try:
            seconds = parse_duration(timeout) if timeout is not None else None
        except ValueError as error:
            raise UsageError(f"--approval-timeout: {error}") from None
        if required and approve_from == "stdin" and seconds is None and not console.stdin_can_answer(stdin):
            raise PrerequisiteMissing(
                "approval is required but stdin is neither a terminal nor a pipe, so nobody can answer the "
                "prompt: pass --approve-from promote (then approve with `meshlift promote` from another shell) "
                "and/or --approval-timeout DURATION (roll back if nobody approves in time). Nothing was recorded.")
        return cls(approve_from, seconds)

    def source(self, stdin: Any = None) -> Any:
        if self.source_name == "stdin" and console.stdin_can_answer(stdin):
            return console.StdinApproval(stdin)
        return None  # only `meshlift promote` (the journal's approval file) can approve


def drive(stack: str, command: str, params: dict[str, Any], target: Any, config: dict[str, Any], *,
          platform: Any, journal: Journal, as_json: bool, approval: ApprovalOptions = ApprovalOptions()) -> None:
    """Run (or resume) an orchestrated rollout on `platform`; exit with its phase's code."""
    from rollout.gates import ChecksGate
    from rollout.orchestrator import Orchestrator, RunRequest

    started = time.monotonic()
    rollout_spec = target.spec.rollout

    def go(reporter: Any) -> Any:
        orchestrator = Orchestrator(platform=platform, journal=journal, gate=ChecksGate(), reporter=reporter, stack=stack,
                                    approval=approval.source(), approval_timeout_s=approval.timeout_s)
        return orchestrator.run(RunRequest(command=command, params=params, target=target, base_config=config))

    title = f"{command} {stack}: {rollout_spec.from_version} -> {rollout_spec.to_version}"
    state = report_run(go, title=title, waves=len(target.spec.waves), approval=rollout_spec.require_approval,
                       as_json=as_json, header={"command": command, "stack": stack, "params": params})
    finish(state, started, as_json=as_json)


def report_run(go: Any, *, title: str, waves: int, approval: bool, as_json: bool, header: dict[str, Any]) -> Any:
    if as_json:
        reporter = console.JsonReporter()
        state = go(reporter)
        console.print_json(document(header["command"], **header, run=state.run_id, phase=state.phase.value,
                                    exit_code=state.phase.exit_code, waves_done=state.waves_done,
                                    failure=state.failure, rollback=state.rollback,
                                    gate_samples=reporter.samples, events=reporter.events))
        return state
    live = console.LiveReporter(title=title, steps=console.steps_for(waves, approval=approval))
    with live:
        state = go(live)
        if state.phase is not Phase.SUCCEEDED:
            live.mark_rolled_back()
    return state


def finish(state: Any, started: float, *, as_json: bool) -> None:
    if not as_json:
        console.print_result(state, seconds=time.monotonic() - started)
    code = state.phase.exit_code
    if code:
        raise typer.Exit(code)
