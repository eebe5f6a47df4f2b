"""Everything meshlift prints: live progress, tables, JSON documents, errors.

This is the only module of `rollout` that talks to the terminal. Reporters
receive the orchestrator's events: `LiveReporter` draws stages, waves and gate
samples with rich; `JsonReporter` collects them for one JSON document at the end
(`--json`, for CI).
"""

from __future__ import annotations

import json
import select
import sys
import time
from types import SimpleNamespace
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from checks import terminal
from rollout.journal import operator
from rollout.text import plain

from rollout.phases import Phase

# A terminal gets the live view; piped output (CI logs, transcripts) plain lines: unwrapped, unpadded.
out = terminal.console()
err = terminal.console(stderr=True)

_MARK = {"pending": ("·", "dim"), "running": ("▶", "cyan"), "passed": ("√", "green"),
         "failed": ("×", "red"), "skipped": ("-", "dim"), "rolled back": ("↺", "yellow")}


class LiveReporter:
    """Stages, waves and gate samples, redrawn in place; log lines scroll above."""

    def __init__(self, *, title: str, steps: list[str], console: Console | None = None, typed_approval: bool = True) -> None:
        self.console = console or out
        self.typed_approval = typed_approval  # False: only `meshlift promote` approves, stdin is not read
        self.title = title
        self.steps = {step: ["pending", ""] for step in steps}
        self.sample_line = Text("")
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveReporter:
        # The view opens with the run's first event: an error before it (a held lock, a bad
        # setting) is then the only thing printed, not under an empty table.
        self._open = False
        return self

    def _opened(self) -> None:
        if not getattr(self, "_open", True):
            self._open = True
            self.live.__enter__()

    def __exit__(self, *exc: object) -> None:
        if not getattr(self, "_open", False):
            return
        self.sample_line = Text("")
        self.live.update(self._render())
        self.live.__exit__(*exc)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- Reporter

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self._opened()
        if kind == "log":
            self.console.print(Text(f"  {data['line']}", style="dim"))
        elif kind == "run":
            if data.get("already_done"):
                self.console.print(f"[green]already done[/] (run {data.get('run')}): nothing to change")
            elif data.get("resumed"):
                self.console.print(f"[yellow]resuming[/] run {data['run']} at {data['phase']} "
                                   f"(waves done: {data.get('waves_done', 0)})")
                for step in done_before(data["phase"], int(data.get("waves_done", 0)), list(self.steps)):
                    self._set(step, "passed", "done before the run was interrupted")
            else:
                replaced = data.get("replaced")
                if replaced:
                    self.console.print(f"[yellow]gave up[/] the interrupted run {replaced['run']} "
                                       f"({_params(SimpleNamespace(params=replaced['params']))}, at "
                                       f"{replaced['phase']}): these options differ; to resume it, run it "
                                       "with its own options")
                self.console.print(f"run {data['run']} started")
        elif kind == "apply":
            step = _step_of(data.get("stage"), data.get("message", ""))
            if data.get("status") == "started":
                self._set(step, "running", "applying")
            else:
                self._set(step, "running", f"applied (update {data.get('update')})")
        elif kind == "wave" and data.get("parts"):
            self._set(f"wave {data['wave']}", "running",
                      f"part {data['part']}/{data['parts']}: {data['restarted']} of {data['workloads']} workloads "
                      + ("rolled out" if data.get("status") == "restarted" else "restarting"))
        elif kind == "gate":
            step = data.get("gate", "")
            if data.get("status") == "started":
                sampled = [s for s in data.get("sampled", []) if s.get("role") == "baseline"]
                found = sum(s.get("of") or 0 for s in sampled)
                left_out = sum(1 for s in sampled if s.get("of") is None)
                baseline = len(data.get("baseline", []))
                self._set(step, "running", f"gating {len(data.get('canary', []))} proxies "
                                           f"(+{baseline} baseline" + (f" of {found}" if found > baseline else "")
                                           + (f"; {left_out} workloads left out" if left_out else "") + ")")
            else:
                state = "passed" if data.get("outcome") == "passed" else "failed"
                self._set(step, state, f"{data.get('message', '')} [{data.get('duration_s', 0):.1f}s]")
                self.console.print(Text(f"{_MARK[state][0]} gate {data.get('gate')}: {data.get('message')}",
                                        style=_MARK[state][1]))
        elif kind == "phase":
            text = (f"phase {data['from']} -> {data['to']}" if data["from"] != data["to"]
                    else f"phase {data['to']}, next wave")  # not "Promoting -> Promoting"
            self.console.print(Text(text, style="bold"))
            if data["from"] == Phase.INSTALLING.value and data["to"] != Phase.ROLLING_BACK.value:
                self._set("install", "passed", "target control plane running beside the stable one")
            if data["to"] == Phase.CLEANING_UP.value:
                self._set("cleanup", "running", "removing the old revision")
            if data["to"] == Phase.SUCCEEDED.value:
                self._set("cleanup", "passed", "old revision removed")
        elif kind == "approval":
            if data.get("status") == "waiting":
                self._set("approval", "running", "waiting (gates keep sampling)")
                self.console.print(f"[bold yellow]waiting for approval[/]: run `{data.get('hint')}`"
                                   + (" or type y (promote) / n (roll back) + Enter here" if self.typed_approval
                                      else " from another shell"))
            else:
                self._set("approval", "passed", "approved")
        elif kind == "rollback":
            self.console.print(f"[yellow]rolling back[/] to update {data.get('to_update')} ({data.get('describe')})")
            self.steps["rollback"] = ["running", f"re-applying update {data.get('to_update')} "
                                                 f"({data.get('describe')}), then gating the whole mesh"]
        self.live.update(self._render())

    def sample(self, gate: str, sample: Any) -> None:
        self._opened()
        verdict = getattr(sample, "verdict", str(sample))
        style = {"pass": "green", "fail": "red"}.get(verdict, "yellow")
        text = Text(f"  gate {gate} sample {getattr(sample, 'index', 0) + 1}: ", style="dim")
        text.append(verdict, style=style)
        failing = getattr(sample, "failing", ()) or getattr(sample, "no_data", ())
        if failing:
            target, result = failing[0]
            text.append(f"  {result.check_id} on {target}: {result.message}"[:160], style="dim")
        self.sample_line = text
        self.live.update(self._render())

    # ---------------------------------------------------------------- drawing

    def _set(self, step: str, status: str, note: str) -> None:
        if step in self.steps:
            self.steps[step] = [status, note]

    def mark_rolled_back(self) -> None:
        for step, (status, _note) in self.steps.items():
            if status in ("pending", "running") and step != "rollback":
                self.steps[step] = ["skipped", "stopped by the rollback" if status == "running" else ""]
        self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(width=2)
        table.add_column(min_width=10)
        table.add_column(overflow="fold")
        for step, (status, note) in self.steps.items():
            mark, style = _MARK[status]
            table.add_row(Text(mark, style=style), Text(step, style="bold" if status == "running" else ""),
                          Text(note, style="dim" if status == "pending" else ""))
        return Group(Text(self.title, style="italic"), table, self.sample_line)  # the title above, never squeezed


def _step_of(stage: str | None, message: str) -> str:
    if stage == "promote" and " wave " in message:
        return "wave " + message.split(" wave ", 1)[1].split("/", 1)[0]
    return {"install": "install", "canary": "canary", "cleanup": "cleanup"}.get(stage or "", stage or "")


# The steps a run has finished when it is at a phase (waves done aside).
_DONE_AT = {Phase.CANARY_VERIFYING.value: ("install",), Phase.WAITING_APPROVAL.value: ("install", "canary"),
            Phase.PROMOTING.value: ("install", "canary", "approval"),
            Phase.VERIFYING.value: ("install", "canary", "approval"),
            Phase.CLEANING_UP.value: ("install", "canary", "approval", "verify")}


def done_before(phase: str, waves_done: int, steps: list[str]) -> list[str]:
    """The steps a resumed run finished before it stopped, so the view does not show them as not started."""
    done = set(_DONE_AT.get(phase, ()))
    all_waves = phase in (Phase.VERIFYING.value, Phase.CLEANING_UP.value)
    done |= {step for step in steps if step.startswith("wave ")
             and (all_waves or int(step.split()[1]) <= waves_done)}
    return [step for step in steps if step in done]


def steps_for(waves: int, *, approval: bool) -> list[str]:
    steps = ["install", "canary"] + (["approval"] if approval else [])
    return steps + [f"wave {n}" for n in range(1, waves + 1)] + ["verify", "cleanup"]


class JsonReporter:
    """Collects events (not samples or log lines) for the `--json` document."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.samples = 0

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind != "log":
            # Evidence (full check reports) stays in `failure` and the journal, not in every event.
            self.events.append({"event": kind, **{k: v for k, v in data.items() if k != "evidence"}})

    def sample(self, gate: str, sample: Any) -> None:
        self.samples += 1


class StdinApproval:
    """`y`/`n` + Enter, typed on a terminal or piped in (`echo y | meshlift upgrade ...`).

    Read without blocking the gates. A pipe or file that ends without a y/n is a
    "no": nobody is left to approve, so the canary is rolled back (fail closed).
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self.who = f"{operator()} (prompt)"
        self.done = False

    def poll(self) -> bool | None:
        if self.done:
            return None
        ready, _, _ = select.select([self.stream], [], [], 0)
        if not ready:
            return None
        line = self.stream.readline()
        if line == "":  # end of input without an answer
            self.done = True
            return False
        answer = line.strip().lower()
        if answer in ("y", "yes", "promote"):
            return True
        if answer in ("n", "no", "rollback"):
            return False
        return None


def stdin_can_answer(stream: Any = None) -> bool:
    """True when a y/n can arrive on stdin: a terminal, a pipe or a file (not /dev/null or closed)."""
    import os
    import stat

    stream = stream if stream is not None else sys.stdin
    try:
        if stream.isatty():
            return True
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


# ---------------------------------------------------------------- one-shot output

def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def print_error(message: str, *, details: tuple[str, ...] | list[str] = (), hint: str | None = None) -> None:
    """One paragraph on stderr (plain text: a key path such as `gateways[1]` is not markup)."""
    line = Text("× ", style="red")
    line.append(message)
    err.print(line, soft_wrap=True)
    for detail in details:
        err.print(Text(f"  {detail}"), soft_wrap=True)
    if hint:
        err.print(Text(f"  {hint}", style="dim"), soft_wrap=True)


def confirm(question: str) -> bool:
    """Ask y/N on stderr; the answer is a line of stdin (typed or piped)."""
    err.print(Text(f"{question} [y/N] "), end="")
    if not stdin_can_answer():
        err.print(Text("(no terminal or pipe to answer on)"))
        return False
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def print_line(message: str) -> None:
    out.print(message)


def print_result(state: Any, *, seconds: float) -> None:
    phase = state.phase
    if phase is Phase.SUCCEEDED:
        out.print(f"[bold green]√ promoted[/]: {_params(state)}; every wave on the target; "
                  f"old revision removed ({seconds:.1f}s)")
    elif phase is Phase.ROLLED_BACK:
        failure = state.failure or {}
        rollback = state.rollback or {}
        out.print(f"[bold yellow]↺ rolled back[/]: gate [bold]{failure.get('gate')}[/] failed "
                  f"({', '.join(failure.get('checks') or []) or 'no check id'})")
        out.print(f"  {failure.get('message')}")
        out.print(f"  re-applied update {rollback.get('to_update')} ({rollback.get('describe')}) "
                  f"as update {rollback.get('update')} ({seconds:.1f}s)")
        _print_left_on_revision(rollback.get("left_on_revision") or [])
    elif phase is Phase.FAILED:
        failure = state.failure or {}
        err.print(f"[bold red]× rollback failed[/]: {(state.rollback or {}).get('error')}")
        err.print(f"  it was rolling back because gate {failure.get('gate')} failed: {failure.get('message')}")
        err.print("  the mesh may be half-changed: inspect `meshlift status` and `meshlift history`, then "
                  "`meshlift rollback --to <update>`")
        _print_left_on_revision((state.rollback or {}).get("left_on_revision") or [])


def _print_left_on_revision(pods: list[dict[str, Any]]) -> None:
    """Pods a moved tag injected in workloads no wave restarted: the rollback judged them as they are."""
    if not pods:
        return
    out.print("  [yellow]‼[/] left on the revision the moved tag injected (their workloads were not restarted; "
              "judged for that revision, which stays installed):", soft_wrap=True)
    for restart in dict.fromkeys(pod["restart"] for pod in pods):
        names = ", ".join(f"{pod['pod']} ({pod['revision']})" for pod in pods if pod["restart"] == restart)
        out.print(Text(f"    {names}: `{restart}` moves them back"), soft_wrap=True)


_PARAM_ORDER = ("to", "fault", "approval")


def _params(state: Any) -> str:
    # A fixed order: a resumed run's params come back from the journal with their keys sorted.
    keys = sorted(state.params, key=lambda k: (_PARAM_ORDER.index(k) if k in _PARAM_ORDER else len(_PARAM_ORDER), k))
    return ", ".join(f"{k} {plain(state.params[k])}" for k in keys if state.params[k] not in (False, None))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    out.print(table_of(title, columns, rows), soft_wrap=not out.is_terminal)


def table_of(title: str | Text, columns: list[str], rows: list[list[Any]]) -> Any:
    """A titled table in a terminal; piped, a title and one line per row, cells apart by " | ", nothing padded."""
    if not out.is_terminal:
        lines = [" | ".join(plain_cell(cell) for cell in row).rstrip() for row in [columns, *rows]]
        return Group(Text(str(title)), *(Text(line) for line in lines))
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[cell if isinstance(cell, Text) else Text(str(cell)) for cell in row])
    return table


def plain_cell(cell: Any) -> str:
    return (cell.plain if isinstance(cell, Text) else str(cell)).replace("\n", "; ")


def resume_hint(state: Any) -> str:
    """The command that resumes `state`'s run, as the user would type it."""
    if state.command == "rehearse":
        fault = state.params.get("fault")
        flags = (f" --fault {fault}" if fault not in (None, "none") else "") + \
            (" --require-approval" if state.params.get("approval") else "")
        return f"resume it with `meshlift rehearse{flags}`"
    to = state.params.get("to")
    return (f"resume it with `meshlift {state.command} -s {state.stack}" + (f" --to {to}`" if to else "`")
            + f", or roll it back with `meshlift rollback -s {state.stack}`")


def print_workloads(rows: list[Any], not_listed: str | None) -> None:
    """`meshlift plan`: what the upgrade does with each running workload (rollout.workload_report rows)."""
    if not rows:
        out.print(f"workloads: {not_listed or 'none run in the enrolled namespaces'}", soft_wrap=True)
        return
    print_table("workloads running now (classified as the upgrade will record them)",
                ["namespace", "workload", "wave", "class", "what happens"],
                [[row.namespace, row.workload, row.wave, row.label, row.detail] for row in rows])
    for row in rows:
        for warning in row.warnings:
            out.print(f"[yellow]‼[/] {row.namespace}/{row.workload}: {warning}", soft_wrap=True)
    if not_listed:  # the live workloads make the config invalid: what `meshlift upgrade` would refuse
        out.print(f"[red]×[/] `meshlift upgrade` would refuse to start: {not_listed}", soft_wrap=True)


def print_status(state: Any, events: list[dict[str, Any]], *, driven: bool = False) -> None:
    params = ", ".join(f"{k}={plain(v)}" for k, v in sorted(state.params.items()))
    out.print(f"stack {state.stack}: {state.command} run {state.run_id} ({params}) is "
              f"[bold]{state.phase.value}[/]; waves {state.waves_done}/{state.waves_total}"
              + (f" (wave {state.waves_done + 1}: {state.wave_restarted} workload(s) restarted)"
                 if state.phase.value == "Promoting" and state.wave_restarted else ""), soft_wrap=True)
    if state.failure:
        out.print(f"  gate {state.failure.get('gate')} failed: {state.failure.get('message')}", soft_wrap=True)
    if state.rollback:
        rollback = state.rollback
        out.print(f"  rollback: " + (f"re-applied update {rollback.get('to_update')} ({rollback.get('describe')}) "
                                     f"as update {rollback.get('update')}" if "to_update" in rollback
                                     else f"failed: {rollback.get('error')}"), soft_wrap=True)
    if state.awaiting:
        out.print(Text(f"  waiting for approval since {state.awaiting.get('since')}: gate {state.awaiting.get('gate')} "
                       f"passed ({state.awaiting.get('evidence') or 'no evidence recorded'})"), soft_wrap=True)
    if not state.phase.terminal:
        approve = f"approve with `meshlift promote -s {state.stack}`"
        if driven:
            out.print("  a meshlift process is driving this run now"
                      + (f"; {approve}" if state.phase is Phase.WAITING_APPROVAL else ""), soft_wrap=True)
        else:
            out.print(f"  {resume_hint(state)}" + (f"; or {approve}" if state.phase is Phase.WAITING_APPROVAL else ""),
                      soft_wrap=True)
    skip = {"ts", "run", "event", "evidence", "failure"}
    rows = [[time.strftime("%H:%M:%S", time.localtime(e["ts"])), e["event"], event_detail(e, skip)]
            for e in events[-15:]]
    print_table("last events", ["time", "event", "detail"], rows)


def event_detail(event: dict[str, Any], skip: set[str] | tuple[str, ...], *, limit: int = 200) -> str:
    """An event's fields as `key=value` text: plain values, times as clock times, cut at a word with `…`."""
    def shown(key: str, value: Any) -> str:
        if key in ("until", "since_ts") and isinstance(value, (int, float)):
            return time.strftime("%H:%M:%S", time.localtime(value))
        return plain(value)

    text = ", ".join(f"{k}={shown(k, v)}" for k, v in event.items() if k not in skip)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def print_history(stack: str, entries: list[Any]) -> None:
    rows = [[e.version, e.kind, e.result, e.describe(), e.data_plane, e.message]
            for e in entries]
    print_table(f"stack {stack}: history", ["update", "kind", "result", "state", "data plane", "message"], rows)
