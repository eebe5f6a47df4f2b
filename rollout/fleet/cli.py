"""`meshlift fleet plan|upgrade|status|resume`: one upgrade across rings of stacks.

Options are parsed here; the driver decides; `rollout.fleet.view` prints. Errors
reach `rollout.entry.run`, which maps them to exit codes (2: usage or config).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rollout.errors import UsageError

EPILOG = """\
Examples:

\b
  meshlift fleet plan --to 1.31.0                  # rings, stacks, soaks; --to validated on every stack
  meshlift fleet upgrade --to 1.31.0               # ring by ring: upgrade, soak re-gating, next ring
  meshlift fleet status                            # rings x stacks x phase, why the line stopped
  meshlift fleet resume                            # continue an interrupted fleet run where it stopped
  meshlift fleet upgrade --rehearse --fleet stacks/fleet.rehearsal.yaml --fault 5xx@staging
                                                   # the same on local meshes of real Envoys

\b
Exit codes: 0 every ring upgraded, 1 the line stopped (the failed stack rolled back),
            2 usage or config error (nothing changed), 3 a rollback failed, 130 interrupted.
"""

fleet_app = typer.Typer(
    name="fleet",
    help="Upgrade rings of stacks in order (dev -> staging -> prod), each ring soaked and gating the next.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

FleetOpt = Annotated[Path | None, typer.Option(
    "--fleet", help="The fleet file (default: stacks/fleet.yaml of the project).")]
RehearseOpt = Annotated[bool, typer.Option(
    "--rehearse", help="Each stack of the fleet file is a small local mesh of real Envoys (1.39.3 -> 1.40.0).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (schema meshlift.fleet/v1).")]
ToOpt = Annotated[str | None, typer.Option(help="The Istio version to upgrade every stack to, e.g. 1.31.0.")]
FaultOpt = Annotated[str | None, typer.Option(
    help="With --rehearse: FAULT@STACK injects a real fault into that stack's canaries, e.g. 5xx@staging.")]


def _fleet(path: Path | None) -> tuple[str, Any, str]:
    from rollout.project import project_dir
    from rollout.fleet.model import FLEET_FILE, load_fleet

    file = path if path is not None else project_dir() / FLEET_FILE
    name = file.name.removesuffix(".yaml").removesuffix(".yml")
    return name, load_fleet(file, label=str(path) if path is not None else FLEET_FILE), str(file)


def _source(name: str, fleet: Any, *, rehearse: bool, fault: str | None) -> Any:
    from rollout.project import project_dir
    from rollout.fleet.stacks import KubernetesStacks, RehearsalStacks

    if not rehearse:
        if fault:
            raise UsageError("--fault needs --rehearse (faults are injected into local Envoys only)")
        return KubernetesStacks(project_dir(), name)
    from rollout.rehearsal import FAULTS, gates_from_env

    kind, stack = "none", None
    if fault:
        kind, _, stack = fault.partition("@")
        if kind not in FAULTS or not stack:
            raise UsageError(f"--fault {fault!r}: expected FAULT@STACK with FAULT one of {', '.join(FAULTS)}")
        if stack not in fleet.stacks:
            raise UsageError(f"--fault {fault!r}: {stack!r} is not a stack of the fleet ({', '.join(fleet.stacks)})")
    return RehearsalStacks(project_dir(), name, fault=kind, fault_stack=stack, gates=gates_from_env())


def _target(to: str | None, rehearse: bool) -> str:
    from rollout.fleet.stacks import REHEARSAL_TO

    if rehearse:
        if to not in (None, REHEARSAL_TO):
            raise UsageError(f"--to {to}: a rehearsal fleet upgrades Envoy 1.39.3 to {REHEARSAL_TO} only")
        return REHEARSAL_TO
    if to is None:
        raise UsageError("--to VERSION is required (the Istio version every stack moves to)")
    return to


@fleet_app.command(epilog="Example: meshlift fleet plan --to 1.31.0 --json")
def plan(to: ToOpt = None, fleet_file: FleetOpt = None, rehearse: RehearseOpt = False, as_json: JsonOpt = False) -> None:
    """Validate --to on every stack and show the rings: stacks, stages, parallelism, soak, re-gate."""
    from rollout.fleet.driver import prepare
    from rollout.fleet.view import print_json, print_plan
    from rollout.schemas import document
    from rollout.stages import before_rollout, planned_stages

    name, fleet, _ = _fleet(fleet_file)
    version = _target(to, rehearse)
    stacks = prepare(fleet, _source(name, fleet, rehearse=rehearse, fault=None), version, preflight=False)
    rows = []
    for ring in fleet.rings:
        members = [s for s in stacks if s.ring is ring]
        entries = []
        for stack in members:
            rollout = stack.target.spec.rollout
            assert rollout is not None
            stages = planned_stages(stack.target.spec, current=before_rollout(stack.target.spec))
            entries.append({"name": stack.name, "from": rollout.from_version, "to": rollout.to_version,
                            "stages": [s.label for s in stages], "min_gate_s": sum(s.min_s for s in stages),
                            "regate_s": stack.gates.consecutive_passes * stack.gates.interval})
        gate = members[0].gates if members else None
        rows.append({"name": ring.name, "stacks": entries, "max_parallel": ring.max_parallel, "soak_s": ring.soak,
                     "gate": {"window": gate.window, "consecutive_passes": gate.consecutive_passes,
                              "overrides": ring.gate_overrides()} if gate else None})
    if as_json:
        print_json(document("fleet", fleet=name, to=version, platform="rehearsal" if rehearse else "kubernetes",
                            rings=rows))
        return
    print_plan(name, version, rows)


@fleet_app.command(epilog="Examples: meshlift fleet upgrade --to 1.31.0 ; meshlift fleet upgrade --rehearse --fault 5xx@staging")
def upgrade(to: ToOpt = None, fleet_file: FleetOpt = None, rehearse: RehearseOpt = False, fault: FaultOpt = None,
            as_json: JsonOpt = False) -> None:
    """Upgrade ring by ring: each stack by its orchestrator, then soak re-gating every finished ring.

    Any failure stops the line: the failed stack is rolled back by its own orchestrator, later
    rings are not touched. Interrupted (even kill -9)? Run it again, or `meshlift fleet resume`.
    """
    name, fleet, _ = _fleet(fleet_file)
    version = _target(to, rehearse)
    source = _source(name, fleet, rehearse=rehearse, fault=fault)
    extra = {"fault": fault} if rehearse and fault else {}
    _drive(name, fleet, source, version, extra, as_json=as_json)


@fleet_app.command(epilog="Example: meshlift fleet resume --json")
def resume(fleet_file: FleetOpt = None, rehearse: RehearseOpt = False, as_json: JsonOpt = False) -> None:
    """Continue the fleet's unfinished run with the parameters it started with."""
    from rollout.fleet.journal import FleetJournal

    name, fleet, _ = _fleet(fleet_file)
    probe = _source(name, fleet, rehearse=rehearse, fault=None)
    state = FleetJournal(probe.root).load()
    if state is None or state.terminal:
        raise UsageError(f"fleet {name}: no unfinished run to resume"
                         + (f" (the last one is {state.phase})" if state else "")
                         + "; start one with `meshlift fleet upgrade --to VERSION`")
    fault = state.params.get("fault")
    source = _source(name, fleet, rehearse=rehearse, fault=fault)
    _drive(name, fleet, source, state.params["to"], {"fault": fault} if fault else {}, as_json=as_json)


@fleet_app.command(epilog="Example: meshlift fleet status --json")
def status(fleet_file: FleetOpt = None, rehearse: RehearseOpt = False, as_json: JsonOpt = False) -> None:
    """Rings × stacks × phase of the current (or last) fleet run, and why the line stopped."""
    from rollout.fleet.driver import exit_code
    from rollout.fleet.journal import FleetJournal
    from rollout.fleet.view import fleet_document, print_json, print_status

    name, fleet, _ = _fleet(fleet_file)
    source = _source(name, fleet, rehearse=rehearse, fault=None)
    journal = FleetJournal(source.root)
    state = journal.load()
    events = journal.events(state.run_id) if state else []
    if as_json:
        print_json(fleet_document(state, name=name, exit_code=exit_code(state) if state and state.terminal else None,
                                    events=events))
        return
    phases = {}
    for stack, record in (state.stacks if state else {}).items():
        run = source.journal(stack).load()
        if run is not None and record.run == run.run_id:
            phases[stack] = run.phase.value  # the stack's own journal is the freshest word on it
    print_status(state, name=name, events=events, stack_phases=phases)


def _drive(name: str, fleet: Any, source: Any, version: str, extra: dict[str, Any], *, as_json: bool) -> None:
    from rollout.fleet.driver import FleetDriver, exit_code
    from rollout.fleet.view import JsonFleetView, LiveFleetView, fleet_document, print_json, print_result

    started = time.monotonic()
    if as_json:
        view = JsonFleetView()
        state = FleetDriver(fleet=fleet, fleet_name=name, source=source, view=view).run(version, extra_params=extra)
        print_json(fleet_document(state, name=name, exit_code=exit_code(state), events=view.events))
    else:
        with LiveFleetView() as live:
            state = FleetDriver(fleet=fleet, fleet_name=name, source=source, view=live).run(version, extra_params=extra)
        print_result(state, seconds=time.monotonic() - started)
    code = exit_code(state)
    if code:
        raise typer.Exit(code)
