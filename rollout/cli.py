"""`meshlift`: gated, revisioned Istio upgrades on Pulumi — and a rehearsal on real Envoys.

Commands parse options and call the orchestrator; `rollout.console` prints;
`main()` maps errors to exit codes in one place:

    0  succeeded / promoted / valid
    1  a gate failed and the mesh was rolled back
    2  usage or config error (an invalid stack config changes nothing)
    3  the rollback itself failed: a human must look
    130 interrupted (Ctrl-C): run the same command again to resume
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from components.spec import SpecError, load_spec, load_stack_file
from rollout import console
from rollout.errors import EXIT_USAGE, MeshliftError, UsageError, exit_code_for
from rollout.journal import Journal
from rollout.phases import Phase
from rollout.runs import drive, finish, report_run

EPILOG = """\
Examples:

\b
  meshlift rehearse                      # the whole 1.39 -> 1.40 upgrade on local Envoys: ends promoted
  meshlift rehearse --fault 5xx          # a failing canary: detected, rolled back, gate named (exit 1)
  meshlift validate -s prod              # check stacks/Pulumi.prod.yaml; exit 2 lists every problem
  meshlift plan -s prod --to 1.31.0      # each stage, what it changes, which gate, how long at least
  meshlift upgrade -s prod --to 1.31.0   # drive the stages with `pulumi up`, gate, promote or roll back
  meshlift promote -s prod               # approve a rollout waiting for approval (requireApproval)
  meshlift rollback -s prod --to 14      # re-apply the config of stack update 14 (or --to 1.30.3)
  meshlift status -s prod; meshlift history -s prod

\b
Exit codes: 0 promoted/ok, 1 gate failed and rolled back, 2 usage or config error,
            3 rollback failed, 130 interrupted (re-run the same command to resume).
"""

EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted: the journal keeps the run's place (local Envoys were stopped); run the same command again to resume"

app = typer.Typer(
    name="meshlift",
    help="Gated, revisioned Istio upgrades on Pulumi, with a rehearsal on real local Envoys.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StackOpt = Annotated[str, typer.Option("--stack", "-s", help="Stack name: reads stacks/Pulumi.<stack>.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for CI) instead of live progress.")]


def project_dir() -> Path:
    """The Pulumi project: $MESHLIFT_PROJECT_DIR, else the nearest parent with Pulumi.yaml or stacks/."""
    if os.environ.get("MESHLIFT_PROJECT_DIR"):
        return Path(os.environ["MESHLIFT_PROJECT_DIR"]).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").exists() or (candidate / "stacks").is_dir():
            return candidate
    return Path(__file__).resolve().parents[1]


def stack_config(stack: str) -> tuple[Path, dict[str, Any]]:
    path = project_dir() / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                       for p in path.parent.glob("Pulumi.*.yaml"))
        raise UsageError(f"no stack file {path} (stacks here: {', '.join(known) or 'none'})")
    return path, load_stack_file(str(path))


# ---------------------------------------------------------------- validate / plan


@app.command(epilog="Example: meshlift validate -s prod --json")
def validate(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Validate a stack's config; exit 2 lists every problem with its key path."""
    path, config = stack_config(stack)
    try:
        spec = load_spec(config)
    except SpecError as error:
        if as_json:
            console.print_json({"valid": False, "stack": stack, "problems": [
                {"key": p.key, "reason": p.reason} for p in error.problems]})
            raise typer.Exit(EXIT_USAGE) from None
        raise _SpecErrorAt(error, str(path)) from None
    summary = {"valid": True, "stack": stack, "revisions": spec.revision_names, "tags": spec.tags,
               "namespaces": len(spec.namespaces), "waves": spec.waves, "gateways": len(spec.gateways),
               "rollout": spec.rollout.model_dump(by_alias=True, mode="json") if spec.rollout else None}
    if as_json:
        console.print_json(summary)
    else:
        console.print_line(f"[green]√[/] {path.name} is valid: revisions {', '.join(spec.revision_names)}; "
                           f"{len(spec.namespaces)} namespace(s) in wave(s) {spec.waves or '-'}; "
                           f"{len(spec.gateways)} gateway(s)")


@app.command(epilog="Example: meshlift plan -s prod --to 1.31.0")
def plan(
    stack: StackOpt = "dev",
    to: Annotated[str | None, typer.Option(help="Target version (default: the config's rollout.to).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each stage of the upgrade: what it changes, which gate follows, how long at least."""
    from rollout.stages import before_rollout, planned_stages, upgrade_target

    path, config = stack_config(stack)
    try:
        current = load_spec(config)
        version = to or (current.rollout.to_version if current.rollout else None)
        if version is None:
            raise UsageError("nothing to plan: the config has no rollout; pass --to VERSION")
        target = upgrade_target(config, version)
    except SpecError as error:
        raise _SpecErrorAt(error, str(path)) from None
    stages = planned_stages(target.spec, current=before_rollout(target.spec))
    if as_json:
        console.print_json([{"stage": s.label, "changes": s.changes, "gate": s.gate, "min_s": s.min_s,
                             "max_s": None if s.max_s == float("inf") else s.max_s} for s in stages])
        return
    rows = [[index, s.label, "\n".join(s.changes), s.gate or "-",
             f"{s.min_s:g}s .. {'∞' if s.max_s == float('inf') else f'{s.max_s:g}s'}"]
            for index, s in enumerate(stages, 1)]
    rollout = target.spec.rollout
    assert rollout is not None
    console.print_table(f"{stack}: {rollout.from_version} -> {rollout.to_version} "
                        f"(each stage is one `pulumi up`)", ["#", "stage", "changes", "gate after it", "gate time"],
                        rows)
    least = sum(s.min_s for s in stages)
    console.print_line(f"at least {least:g}s of gating, plus the time each `pulumi up` takes")


# ---------------------------------------------------------------- upgrade / promote / rollback


@app.command(epilog="Example: meshlift upgrade -s prod --to 1.31.0 --require-approval")
def upgrade(
    to: Annotated[str, typer.Option(help="The Istio version to upgrade to, e.g. 1.31.0.")],
    stack: StackOpt = "dev",
    require_approval: Annotated[bool | None, typer.Option(
        "--require-approval/--no-require-approval",
        help="Wait for `meshlift promote` after the canary gate (default: the config's requireApproval).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drive the upgrade stage by stage (`pulumi up` each), gate, then promote or roll back.

    Interrupted? Run the same command again: it resumes at the stage it stopped.
    """
    from rollout.stages import upgrade_target

    path, config = stack_config(stack)
    try:
        target = upgrade_target(config, to, require_approval=require_approval)
    except SpecError as error:
        raise _SpecErrorAt(error, str(path)) from None
    drive(stack, "upgrade", {"to": target.spec.rollout.to_version}, target, config,  # type: ignore[union-attr]
          platform=_kubernetes(stack), journal=Journal.for_stack(project_dir(), stack), as_json=as_json)


@app.command(epilog="Example: meshlift promote -s prod")
def promote(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Approve a rollout waiting for approval; resume it here if no process is driving it."""
    journal = Journal.for_stack(project_dir(), stack)
    state = journal.load()
    if state is None or state.phase.terminal:
        raise UsageError(f"no rollout in progress on stack {stack!r}")
    journal.approve(state.run_id)
    journal.append(state, "approval", status="granted", by="meshlift promote")
    if state.phase is not Phase.WAITING_APPROVAL:
        console.print_line(f"approved run {state.run_id} in advance (it is at {state.phase.value})")
    try:
        with journal.locked():
            pass
    except MeshliftError:
        console.print_line(f"[green]√[/] approved run {state.run_id}: the running meshlift process promotes it")
        return
    if state.command == "rehearse":
        rehearse(fault=state.params.get("fault", "none"), as_json=as_json,
                 require_approval=bool(state.params.get("approval")))
        return
    upgrade(to=state.params["to"], stack=stack, require_approval=None, as_json=as_json)


@app.command(epilog="Examples: meshlift rollback -s prod ; meshlift rollback -s prod --to 14 ; --to 1.30.3")
def rollback(
    stack: StackOpt = "dev",
    to: Annotated[str | None, typer.Option(
        help="A stack update number, or a version whose data plane to go back to "
             "(default: the newest good update with a single data-plane version).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-apply the config of an earlier good update from the stack's history, then `pulumi up`."""
    from rollout.orchestrator import Orchestrator

    _, config = stack_config(stack)
    reporter = console.JsonReporter()
    orchestrator = Orchestrator(platform=_kubernetes(stack), journal=Journal.for_stack(project_dir(), stack),
                                gate=_no_gate, reporter=reporter, stack=stack)
    applied = orchestrator.rollback_by_hand(to=to, base_config=config)
    event = next(e for e in reporter.events if e["event"] == "rollback")
    if as_json:
        console.print_json({"rolled_back_to": event["to_update"], "describe": event["describe"],
                            "update": applied.update})
    else:
        console.print_line(f"[yellow]↺[/] re-applied update {event['to_update']} ({event['describe']}) "
                           f"as update {applied.update}")


# ---------------------------------------------------------------- status / history


@app.command(epilog="Example: meshlift status -s prod --json")
def status(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Where the current (or last) rollout is, and why it stopped there."""
    journal = Journal.for_stack(project_dir(), stack)
    state = journal.load()
    if state is None:
        if as_json:
            console.print_json({"stack": stack, "run": None})
        else:
            console.print_line(f"no rollout recorded for stack {stack!r}")
        return
    events = journal.events(state.run_id)
    if as_json:
        console.print_json({**state.to_json(), "events": events[-20:]})
        return
    console.print_status(state, events)


@app.command(epilog="Example: meshlift history -s prod --limit 10")
def history(
    stack: StackOpt = "dev",
    limit: Annotated[int, typer.Option(help="How many updates to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The stack's updates (newest first) with what each applied: the entries `rollback --to` takes."""
    if stack == "rehearsal":
        from rollout.platforms.local import LocalPlatform

        platform: Any = LocalPlatform(state_dir=Journal.for_stack(project_dir(), stack).root, base_config={})
    else:
        platform = _kubernetes(stack)
    entries = platform.history()[:limit]
    if as_json:
        console.print_json([{"version": e.version, "kind": e.kind, "result": e.result, "message": e.message,
                             "start_time": e.start_time, "describe": e.describe(),
                             "data_plane_version": e.data_plane_version} for e in entries])
        return
    console.print_history(stack, entries)


# ---------------------------------------------------------------- rehearse


@app.command(epilog="""Examples:

\b
  meshlift rehearse                       # healthy: ends promoted (exit 0)
  meshlift rehearse --fault cert-expiry   # ends rolled back, naming the gate and why (exit 1)
  meshlift rehearse --json                # one JSON document for CI

\b
Faults: none, 5xx, reject-config, cert-expiry, overload, upstream-down.
Interrupted (Ctrl-C)? Every Envoy is stopped; run the same command again to resume.""")
def rehearse(
    fault: Annotated[str, typer.Option(help="Inject this real failure into the canary proxies.")] = "none",
    require_approval: Annotated[bool, typer.Option(
        "--require-approval", help="Wait for approval after the canary gate (y/n here, or `meshlift promote -s rehearsal`).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rehearse the whole staged upgrade on real local Envoys (1.39.3 -> 1.40.0), no cluster needed."""
    from rollout.rehearsal import FAULTS, STACK, rehearsal_config, rehearse as run_rehearsal
    from rollout.stages import upgrade_target

    if fault not in FAULTS:
        raise UsageError(f"--fault {fault!r} is not one of: {', '.join(FAULTS)}")
    target = upgrade_target(rehearsal_config(), "1.40.0")
    started = time.monotonic()

    def go(reporter: Any) -> Any:
        return run_rehearsal(project_dir=project_dir(), fault=fault, reporter=reporter,
                             require_approval=require_approval,
                             approval=console.TtyApproval() if require_approval else None)[0]

    title = f"rehearsal {STACK}: Envoy 1.39.3 -> 1.40.0, fault {fault}"
    state = report_run(go, title=title, waves=len(target.spec.waves), approval=require_approval,
                       as_json=as_json, header={"command": "rehearse", "stack": STACK, "fault": fault})
    finish(state, started, as_json=as_json)


# ---------------------------------------------------------------- shared plumbing


def _kubernetes(stack: str) -> Any:
    from rollout.platforms import make_platform

    return make_platform("kubernetes", project_dir=project_dir(), stack=stack)


def _no_gate(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("a hand rollback runs no gate")


class _SpecErrorAt(Exception):
    def __init__(self, error: SpecError, path: str) -> None:
        self.error, self.path = error, path


def _mount_check() -> None:
    """`meshlift check` is the checks package's command, mounted as is."""
    try:
        from checks import cli as checks_cli  # type: ignore[attr-defined]
    except ImportError:
        @app.command("check")
        def check_unavailable() -> None:
            """Run the health checks against Envoy admin endpoints (checks package not installed)."""
            raise UsageError("the checks package has no CLI yet")
        return
    command = getattr(checks_cli, "check", None)
    sub_app = getattr(checks_cli, "app", None)
    if callable(command) and not isinstance(command, typer.Typer):
        app.command("check")(command)
        app.command("inspect", epilog=checks_cli.INSPECT_EPILOG)(checks_cli.inspect)
    elif isinstance(sub_app, typer.Typer):
        app.add_typer(sub_app, name="check")


_mount_check()

from rollout.fleet.cli import fleet_app  # noqa: E402 - the sub-app's commands import lazily

app.add_typer(fleet_app, name="fleet")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every error to an exit code (the one place that does)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts background jobs with SIGINT ignored; `kill -INT` still means "stop".
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = app(args=argv, standalone_mode=False)
        code = int(code or 0) if isinstance(code, int) else 0
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130)
            console.print_error(INTERRUPTED)
        return code
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except _SpecErrorAt as wrapped:
        console.print_spec_error(wrapped.error, path=wrapped.path)
        return EXIT_USAGE
    except SpecError as error:
        console.print_spec_error(error, path="stack config")
        return EXIT_USAGE
    except MeshliftError as error:
        console.print_error(str(error))
        return exit_code_for(error)
    except KeyboardInterrupt:
        console.print_error(INTERRUPTED)
        return EXIT_INTERRUPTED
    except (typer.BadParameter, typer.Abort) as error:  # pragma: no cover - click prints these itself
        console.print_error(str(error))
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - click usage errors and anything unexpected
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
