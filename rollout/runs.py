"""Running a rollout command with live progress or a JSON document, and its exit code."""

from __future__ import annotations

import time
from typing import Any

import typer

from rollout import console
from rollout.journal import Journal
from rollout.phases import Phase


def drive(stack: str, command: str, params: dict[str, Any], target: Any, config: dict[str, Any], *,
          platform: Any, journal: Journal, as_json: bool) -> None:
    """Run (or resume) an orchestrated rollout on `platform`; exit with its phase's code."""
    from rollout.gates import ChecksGate
    from rollout.orchestrator import Orchestrator, RunRequest

    started = time.monotonic()
    rollout_spec = target.spec.rollout

    def go(reporter: Any) -> Any:
        orchestrator = Orchestrator(platform=platform, journal=journal, gate=ChecksGate(), reporter=reporter, stack=stack,
                                    approval=console.TtyApproval())
        return orchestrator.run(RunRequest(command=command, params=params, target=target, base_config=config))

    title = f"{command} {stack}: {rollout_spec.from_version} -> {rollout_spec.to_version}"
    state = report_run(go, title=title, waves=len(target.spec.waves), approval=rollout_spec.require_approval,
                       as_json=as_json, header={"command": command, "stack": stack, **params})
    finish(state, started, as_json=as_json)


def report_run(go: Any, *, title: str, waves: int, approval: bool, as_json: bool, header: dict[str, Any]) -> Any:
    if as_json:
        reporter = console.JsonReporter()
        state = go(reporter)
        console.print_json({**header, "run": state.run_id, "phase": state.phase.value,
                            "exit_code": state.phase.exit_code, "waves_done": state.waves_done,
                            "failure": state.failure, "rollback": state.rollback,
                            "gate_samples": reporter.samples, "events": reporter.events})
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
