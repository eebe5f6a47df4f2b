"""`meshlift`: gated, revisioned Istio upgrades on Pulumi — and a rehearsal on real Envoys.

Commands parse options and call the orchestrator; `rollout.console` prints;
`main()` maps errors to exit codes in one place:

    0  succeeded / promoted / valid
    1  a gate failed and the mesh was rolled back
    2  usage or config error, unreadable stack file, unmet prerequisite (nothing changed)
    3  the rollback itself failed: a human must look
    70 a bug in meshlift: one line, and the full trace in a file
    130 interrupted (Ctrl-C): run the same command again to resume

With `--json`, every outcome (errors included) prints the command's one JSON
document (`rollout.schemas`), with `error` set when it failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from rollout import console
from rollout.errors import UsageError
from rollout.journal import Journal, operator
from rollout.phases import Phase
from rollout.project import project_dir, spec_error_at, stack_config
from rollout.runs import ApprovalOptions, drive, finish, report_run
from rollout.schemas import document, rfc3339, rfc3339_of

EPILOG = """\
Examples:

\b
  meshlift rehearse                      # the whole 1.39 -> 1.40 upgrade on local Envoys: ends promoted
  meshlift rehearse --fault 5xx          # a failing canary: detected, rolled back, gate named (exit 1)
  meshlift validate -s prod              # check stacks/Pulumi.prod.yaml; exit 2 lists every problem
  meshlift plan -s prod --to 1.31.0      # each stage, what it changes, which gate, how long at least
  meshlift upgrade -s prod --to 1.31.0   # drive the stages with `pulumi up`, gate, promote or roll back
  meshlift promote -s prod               # approve the canary of a run waiting for approval
  meshlift rollback -s prod --to 14      # re-apply the config of stack update 14 (or --to 1.30.3)
  meshlift abandon -s prod               # give up a run that never applied anything
  meshlift status -s prod; meshlift history -s prod

\b
Exit codes: 0 promoted/ok, 1 gate failed and rolled back, 2 usage, config or
            prerequisite error (nothing changed), 3 rollback failed, 70 bug in
            meshlift, 130 interrupted (re-run the same command to resume).
"""


app = typer.Typer(
    name="meshlift",
    help="Gated, revisioned Istio upgrades on Pulumi, with a rehearsal on real local Envoys.",
    epilog=EPILOG,
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StackOpt = Annotated[str, typer.Option("--stack", "-s", help="Stack name: reads stacks/Pulumi.<stack>.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for CI) instead of text (and instead of the live view, where there is one).")]
ApproveFromOpt = Annotated[str, typer.Option(
    "--approve-from", metavar="stdin|promote",
    help="Where the approval comes from: 'stdin' (y/n typed, or piped: `echo y | meshlift ...`) or 'promote' "
         "(only `meshlift promote` from another shell; for CI without a terminal).")]
ApprovalTimeoutOpt = Annotated[str | None, typer.Option(
    "--approval-timeout", metavar="DURATION",
    help="Roll back if nobody approved within this long (e.g. 30m). Lets a run without a terminal wait.")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print_line(f"meshlift {version('meshlift')}")
        except PackageNotFoundError:
            console.print_line("meshlift (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    _show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print meshlift's version and exit.")] = False,
) -> None:
    if ctx.invoked_subcommand is None:
        names = ", ".join(ctx.command.list_commands(ctx))  # type: ignore[attr-defined]
        raise UsageError(f"meshlift: no command given; commands: {names}. Try 'meshlift --help'.")


# ---------------------------------------------------------------- validate / plan


@app.command(epilog="Example: meshlift validate -s prod --json")
def validate(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Validate a stack's config; exit 2 lists every problem with its key path."""
    path, config = stack_config(stack)
    try:
        spec = load_spec(config)
    except SpecError as error:
        raise spec_error_at(error, path) from None
    summary = {"stack": stack, "valid": True, "revisions": spec.revision_names, "tags": spec.tags,
               "namespaces": len(spec.namespaces), "waves": spec.waves, "gateways": len(spec.gateways),
               "rollout": spec.rollout.model_dump(by_alias=True, mode="json") if spec.rollout else None}
    if as_json:
        console.print_json(document("validate", **summary))
    else:
        waves = ", ".join(map(str, spec.waves)) or "-"
        console.print_line(f"[green]√[/] {path} is valid: revisions {', '.join(spec.revision_names)}; "
                           f"{len(spec.namespaces)} namespace(s) in wave(s) {waves}; "
                           f"{len(spec.gateways)} gateway(s)")


@app.command(epilog="Example: meshlift plan -s prod --to 1.31.0")
def plan(
    stack: StackOpt = "dev",
    to: Annotated[str | None, typer.Option(help="Target version (default: the config's rollout.to).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each stage of the upgrade: what it changes, which gate follows, how long at least.

    Reads the stack's cluster too, when it can: what the upgrade would refuse there,
    and what happens to namespaces meshlift enrolled that the config no longer lists.
    """
    from rollout.inventory import with_recorded
    from rollout.pinned_config import PINNED_OBJECTS_KEY, pinned_records
    from rollout.preflight import findings_for_plan
    from rollout.stages import before_rollout, planned_stages, upgrade_target
    from rollout.workload_report import with_live_workloads

    path, config = stack_config(stack)
    try:
        current = load_spec(config)
        version = to or (current.rollout.to_version if current.rollout else None)
        if version is None:
            raise UsageError(f"{path}: nothing to plan: the config has no meshlift:rollout; pass --to VERSION")
        target = upgrade_target(config, version)
    except SpecError as error:
        raise spec_error_at(error, path) from None
    target, workloads, not_listed = with_live_workloads(target, config)
    found, unread = findings_for_plan(target.spec, config)
    if target.spec.pinned_config == "relabel":  # the stages then relabel what the run would record
        target = with_recorded(target, config, {PINNED_OBJECTS_KEY: pinned_records(found.pinned)})
    stages = planned_stages(target.spec, current=before_rollout(target.spec))
    least = sum(s.min_s for s in stages)
    rollout = target.spec.rollout
    assert rollout is not None
    cluster = {"read": unread is None, "unreadable": unread, "notes": found.notes,
               "problems": [str(problem) for problem in found.problems]}
    if as_json:
        console.print_json(document(
            "plan", stack=stack, **{"from": rollout.from_version, "to": rollout.to_version}, min_gate_s=least,
            stages=[{"stage": s.label, "changes": s.changes, "gate": s.gate, "min_s": s.min_s,
                     "max_s": None if s.max_s == float("inf") else s.max_s} for s in stages], cluster=cluster,
            workloads=[row.to_json() for row in workloads], workloads_note=not_listed or None))
        return
    rows = [[index, s.label, "\n".join(s.changes), s.gate or "-",
             f"{s.min_s:g}s .. {'∞' if s.max_s == float('inf') else f'{s.max_s:g}s'}"]
            for index, s in enumerate(stages, 1)]
    console.print_table(f"{stack}: {rollout.from_version} -> {rollout.to_version} "
                        f"(each stage is one `pulumi up`)", ["#", "stage", "changes", "gate after it", "gate time"],
                        rows)
    console.print_line(f"at least {least:g}s of gating, plus the time each `pulumi up` takes")
    if unread is not None:
        console.print_line(f"cluster not read ({unread}); `meshlift upgrade` checks it before changing anything")
    for note in found.notes:
        console.print_line(f"[yellow]‼[/] {note}")
    for problem in found.problems:
        console.print_line(f"[red]×[/] {problem}  (`meshlift upgrade` refuses this)")
    console.print_workloads(workloads, not_listed)


# ---------------------------------------------------------------- upgrade / promote / rollback


@app.command(epilog="Example: meshlift upgrade -s prod --to 1.31.0 --require-approval")
def upgrade(
    to: Annotated[str, typer.Option(help="The Istio version to upgrade to, e.g. 1.31.0.")],
    stack: StackOpt = "dev",
    require_approval: Annotated[bool | None, typer.Option(
        "--require-approval/--no-require-approval",
        help="Wait for approval after the canary gate (default: the config's requireApproval).")] = None,
    approve_from: ApproveFromOpt = "stdin",
    approval_timeout: ApprovalTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drive the upgrade stage by stage (`pulumi up` each), gate, then promote or roll back.

    Before anything is recorded, checks that the Pulumi CLI is on PATH, the state
    backend is reachable and the stack's kube context exists, and that the config
    takes over nothing others run in the cluster (exit 2 otherwise).
    Interrupted? Run the same command again: it resumes at the stage it stopped.
    """
    from rollout.preflight import check_before_upgrade
    from rollout.prerequisites import check_cluster_prerequisites
    from rollout.stages import upgrade_target

    path, config = stack_config(stack)
    try:
        target = upgrade_target(config, to, require_approval=require_approval)
    except SpecError as error:
        raise spec_error_at(error, path) from None
    approval = ApprovalOptions.parse(approve_from, approval_timeout,
                                     required=target.spec.rollout.require_approval)  # type: ignore[union-attr]
    check_cluster_prerequisites(project_dir(), config)
    check_before_upgrade(target.spec, config, path)
    drive(stack, "upgrade", {"to": target.spec.rollout.to_version}, target, config,  # type: ignore[union-attr]
          platform=_kubernetes(stack), journal=Journal.for_stack(project_dir(), stack), as_json=as_json,
          approval=approval)


@app.command(epilog="Example: meshlift promote -s prod --yes")
def promote(
    stack: StackOpt = "dev",
    run: Annotated[str | None, typer.Option("--run", help="The run id you approve (default: the waiting one).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking to confirm.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve the canary of a run that is waiting for approval, and say what was approved.

    Refused (exit 2) unless the run is at WaitingApproval: an approval is never given
    in advance. The approval names the run, the gate and the evidence it saw, and
    is journaled with who and when. If no meshlift process is driving the run, the
    promotion continues here.
    """
    journal = Journal.for_stack(project_dir(), stack)
    state = journal.load()
    if state is None or state.phase.terminal:
        raise UsageError(f"--stack {stack}: no rollout is in progress, so there is nothing to approve")
    if state.phase is not Phase.WAITING_APPROVAL or state.awaiting is None:
        raise UsageError(f"run {state.run_id} on stack {stack!r} is at {state.phase.value}, not waiting for "
                         "approval: nothing approved (an approval is only accepted once the canary gate has "
                         "passed and the run waits for it; see `meshlift status -s " + stack + "`)")
    if run is not None and run != state.run_id:
        raise UsageError(f"--run {run}: the run waiting on stack {stack!r} is {state.run_id}; nothing approved")
    awaiting = state.awaiting
    summary = (f"run {state.run_id} ({state.command} {console.plain(state.params)}), gate {awaiting['gate']}: "
               f"{awaiting.get('evidence') or 'no evidence recorded'}")
    if not yes and not as_json and not console.confirm(f"approve {summary}?"):
        raise UsageError("not approved (answer y to approve, or pass --yes)")
    approval = {"run": state.run_id, "gate": awaiting["gate"], "evidence": awaiting.get("evidence"),
                "by": operator(), "at": rfc3339(time.time()), "via": "meshlift promote"}
    journal.approve(approval)
    try:
        with journal.locked():
            pass
    except UsageError:  # RolloutBusy: the process driving the run takes the approval
        if as_json:
            console.print_json(document("promote", stack=stack, run=state.run_id, approved=True, approval=approval))
        else:
            console.print_line(f"[green]√[/] approved {summary}; the running meshlift process promotes it")
        return
    if not as_json:
        console.print_line(f"[green]√[/] approved {summary}; promoting here (no meshlift process is driving it)")
    if state.command == "rehearse":
        rehearse(fault=state.params.get("fault", "none"), as_json=as_json,
                 require_approval=bool(state.params.get("approval")), approve_from="promote",
                 approval_timeout=None)
        return
    upgrade(to=state.params["to"], stack=stack, require_approval=None, approve_from="promote",
            approval_timeout=None, as_json=as_json)


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
    from rollout.prerequisites import check_cluster_prerequisites

    _, config = stack_config(stack)
    check_cluster_prerequisites(project_dir(), config)
    reporter = console.JsonReporter()
    orchestrator = Orchestrator(platform=_kubernetes(stack), journal=Journal.for_stack(project_dir(), stack),
                                gate=_no_gate, reporter=reporter, stack=stack)
    applied = orchestrator.rollback_by_hand(to=to, base_config=config)
    event = next(e for e in reporter.events if e["event"] == "rollback")
    if as_json:
        console.print_json(document("rollback", stack=stack, rolled_back_to=event["to_update"],
                                    describe=event["describe"], update=applied.update))
    else:
        console.print_line(f"[yellow]↺[/] re-applied update {event['to_update']} ({event['describe']}) "
                           f"as update {applied.update}")


@app.command(epilog="Example: meshlift abandon -s prod")
def abandon(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Give up a run that never applied anything (it stopped at Planned), so a new one can start.

    A run that applied a stage is not abandoned: finish it (run the same command
    again) or roll it back (`meshlift rollback`).
    """
    journal = Journal.for_stack(project_dir(), stack)
    if journal.load() is None:  # refused before the lock: nothing is created for a stack that has no run
        raise UsageError(f"--stack {stack}: no rollout is in progress, so there is nothing to abandon")
    with journal.locked():
        state = journal.load()
        if state is None or state.phase.terminal:
            raise UsageError(f"--stack {stack}: no rollout is in progress, so there is nothing to abandon")
        if state.phase is not Phase.PLANNED or state.applied is not None:
            raise UsageError(f"run {state.run_id} on stack {stack!r} is at {state.phase.value} and may have changed "
                             f"the mesh: {console.resume_hint(state)}")
        journal.transition(state, Phase.ABANDONED, by=operator())
    if as_json:
        console.print_json(document("abandon", stack=stack, run=state.run_id, abandoned=True))
    else:
        console.print_line(f"[green]√[/] abandoned run {state.run_id} on stack {stack} (it had changed nothing)")


# ---------------------------------------------------------------- status / history


@app.command(epilog="Example: meshlift status -s prod --json")
def status(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Where the current (or last) rollout is, and why it stopped there."""
    journal = Journal.for_stack(project_dir(), stack)
    state = journal.load()
    if state is None:
        from rollout.rehearsal import STACK as REHEARSAL

        if stack != REHEARSAL:
            stack_config(stack)  # a stack that does not exist is an error, not "nothing recorded"
        if as_json:
            console.print_json(document("status", stack=stack))
        else:
            console.print_line(f"no rollout recorded for stack {stack}")
        return
    events = journal.events(state.run_id)
    warnings = _status_warnings(stack)
    if as_json:
        run = {**state.to_json(), "started_at": rfc3339(state.started_at), "updated_at": rfc3339(state.updated_at)}
        console.print_json(document("status", stack=stack, run=run, warnings=warnings,
                                    events=[{**e, "ts": rfc3339(e.get("ts"))} for e in events[-20:]]))
        return
    console.print_status(state, events, driven=_driven(journal))
    for warning in warnings:
        console.print_line(f"[yellow]‼[/] {warning}")


def _status_warnings(stack: str) -> list[str]:
    """What the stack's cluster says now that the journal cannot: labels put back on enrolled namespaces."""
    from rollout.preflight import namespace_warnings
    from rollout.rehearsal import STACK as REHEARSAL

    if stack == REHEARSAL:
        return []  # local Envoys: no cluster, no namespace labels
    return namespace_warnings(stack_config(stack)[1])


@app.command("retire-check", epilog="Example: meshlift retire-check -s prod --json")
def retire_check(stack: StackOpt = "dev", as_json: JsonOpt = False) -> None:
    """Whether the unrevisioned istiod a takeover left can be uninstalled: what still depends on it, and the fix.

    Exit 0: nothing does (the helm command to uninstall it is printed). Exit 2: refused,
    naming each pod, namespace and workload it still serves. Changes nothing.
    """
    from rollout.retire_command import retire_check as check

    check(stack, as_json)


def _driven(journal: Journal) -> bool:
    """True while another meshlift process holds the stack's lock (it is driving the run now)."""
    try:
        with journal.locked():
            return False
    except UsageError:  # RolloutBusy
        return True


@app.command(epilog="Example: meshlift history -s prod --limit 10")
def history(
    stack: StackOpt = "dev",
    limit: Annotated[int, typer.Option(min=0, help="How many updates to show (0: all).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The stack's updates (newest first) with what each applied: the entries `rollback --to` takes."""
    if stack == "rehearsal":
        from rollout.platforms.local import LocalPlatform

        platform: Any = LocalPlatform(state_dir=Journal.for_stack(project_dir(), stack).root, base_config={})
    else:
        platform = _kubernetes(stack)
    entries = platform.history()
    entries = entries[:limit] if limit else entries
    if as_json:
        console.print_json(document("history", stack=stack, entries=[
            {"version": e.version, "kind": e.kind, "result": e.result, "message": e.message,
             "start_time": rfc3339_of(e.start_time), "describe": e.describe(), "data_plane_version": e.data_plane_version}
            for e in entries]))
        return
    console.print_history(stack, entries)


# ---------------------------------------------------------------- rehearse


@app.command(epilog="""Examples:

\b
  meshlift rehearse                       # healthy: ends promoted (exit 0)
  meshlift rehearse --fault cert-expiry   # ends rolled back, naming the gate and why (exit 1)
  meshlift rehearse --json                # one JSON document for CI

\b
Faults: none, 5xx, reject-config, cert-expiry, overload, upstream-down, missing-route.
Interrupted (Ctrl-C)? Every Envoy is stopped; run the same command again to resume.""")
def rehearse(
    fault: Annotated[str, typer.Option(help="Inject this real failure into the canary proxies.")] = "none",
    require_approval: Annotated[bool, typer.Option(
        "--require-approval", help="Wait for approval after the canary gate (y/n here, or `meshlift promote -s rehearsal`).")] = False,
    approve_from: Annotated[str | None, ApproveFromOpt.__metadata__[0]] = None,
    approval_timeout: ApprovalTimeoutOpt = None,
    as_json: JsonOpt = False,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Rehearse on a local Kubernetes with the real Pulumi engine, Istio's charts and istiod "
                          "(1.30.3 -> 1.31.0; builds the pinned toolchain on first use, tens of minutes).")] = False,
) -> None:
    """Rehearse the whole staged upgrade on real local Envoys (1.39.3 -> 1.40.0), no cluster needed."""
    from rollout.rehearsal import FAULTS, STACK, gates_from_env, rehearsal_config, rehearse as run_rehearsal
    from rollout.stages import upgrade_target

    if fault not in FAULTS:
        raise UsageError(f"--fault {fault}: not a fault the rehearsal knows; choose one of: {', '.join(FAULTS)}")
    approval_flags = [flag for flag, value in (("--approve-from", approve_from), ("--approval-timeout", approval_timeout))
                      if value is not None]
    if cluster and (require_approval or approval_flags):
        raise UsageError(f"{' '.join(['--require-approval'] * require_approval + approval_flags)}: the cluster "
                         "rehearsal does not wait for an approval; leave these out, or rehearse locally (no --cluster)")
    if approval_flags and not require_approval:
        raise UsageError(f"{', '.join(approval_flags)}: only with --require-approval (without it, "
                         "the rehearsal waits for no approval)")
    approve_from = approve_from or "stdin"
    if cluster:
        from rollout.cluster_rehearsal import rehearse_on_cluster

        code = rehearse_on_cluster(fault=fault, program_root=Path(__file__).resolve().parents[1],
                                   say=lambda message: print(message, file=sys.stderr, flush=True),
                                   extra_args=["--json"] if as_json else None)
        raise typer.Exit(code)
    approval = ApprovalOptions.parse(approve_from, approval_timeout, required=require_approval)
    gates = gates_from_env()  # checked before the progress view opens
    target = upgrade_target(rehearsal_config(), "1.40.0")
    started = time.monotonic()

    def go(reporter: Any) -> Any:
        return run_rehearsal(project_dir=project_dir(), fault=fault, reporter=reporter, gates=gates,
                             require_approval=require_approval, approval=approval.source(),
                             approval_timeout_s=approval.timeout_s)[0]

    title = f"rehearsal: Envoy 1.39.3 -> 1.40.0, fault {fault}"
    state = report_run(go, title=title, waves=len(target.spec.waves), approval=require_approval,
                       as_json=as_json, header={"command": "rehearse", "stack": STACK,
                                                "params": {"to": "1.40.0", "fault": fault, "approval": require_approval}},
                       typed_approval=approve_from == "stdin")
    finish(state, started, as_json=as_json)


# ---------------------------------------------------------------- shared plumbing


def _kubernetes(stack: str) -> Any:
    from rollout.platforms import make_platform

    return make_platform("kubernetes", project_dir=project_dir(), stack=stack)


def _no_gate(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("a hand rollback runs no gate")


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
        app.command("check", epilog=checks_cli.CHECK_EPILOG)(command)
        app.command("inspect", epilog=checks_cli.INSPECT_EPILOG)(checks_cli.inspect)
    elif isinstance(sub_app, typer.Typer):
        app.add_typer(sub_app, name="check")


_mount_check()

from rollout.fleet.cli import fleet_app  # noqa: E402 - the sub-app's commands import lazily

app.add_typer(fleet_app, name="fleet")

