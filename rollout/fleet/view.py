"""Everything `meshlift fleet` prints: the live rings × stacks × phase view, tables, JSON.

The one module of `rollout.fleet` that talks to the terminal. `LiveFleetView` redraws
the fleet in place (rich) while key moments scroll above it; `JsonFleetView`
collects the fleet's events for one JSON document (`--json`, schema `SCHEMA`).
Both receive events from several stack threads at once, so both lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rollout import console as rollout_console
from rollout.fleet.journal import (HALTED, NOT_STARTED, PASSED, PENDING, SOAKING, STOPPED, SUCCEEDED, UPGRADING,
                                   FleetState, RingRecord)

SCHEMA = "meshlift.fleet/v1"
print_json = rollout_console.print_json

_RING_STYLE = {PENDING: ("·", "dim"), UPGRADING: ("▶", "cyan"), SOAKING: ("◷", "yellow"), PASSED: ("√", "green"),
               STOPPED: ("×", "red")}
_PHASE_STYLE = {NOT_STARTED: "dim", "Succeeded": "green", "RolledBack": "yellow", "Failed": "bold red",
                "RollingBack": "yellow"}


def _span(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def _clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def _ring_note(ring: RingRecord) -> str:
    if ring.status == SOAKING and ring.soak_until:
        return f"soaking {_span(ring.soak_s)} until {_clock(ring.soak_until)}, re-gating"
    if ring.status == PENDING:
        return f"then soak {_span(ring.soak_s)}"
    return ""


def fleet_table(state: FleetState, notes: dict[str, str] | None = None, *,
                stack_phases: dict[str, str] | None = None) -> Group:
    """Rings × stacks × phase under a title line; `notes` adds a live detail per stack (gate, wave)."""
    title = Text(f"fleet {state.fleet}: {_describe(state.params)} — {state.phase}", style="bold")
    rows: list[list[Any]] = []
    for ring in state.rings:
        mark, style = _RING_STYLE.get(ring.status, ("?", ""))
        for position, stack in enumerate(ring.stacks):
            record = state.stacks[stack]
            phase = (stack_phases or {}).get(stack, record.phase)
            detail = (notes or {}).get(stack) or record.failure or (_ring_note(ring) if position == 0 else "")
            rows.append([Text(ring.name if position == 0 else "", style="bold"),
                         Text(mark if position == 0 else "", style=style), Text(stack),
                         Text(phase, style=_PHASE_STYLE.get(phase, "cyan")), Text(detail, style="dim")])
    table = rollout_console.table_of("", ["ring", "", "stack", "phase", "detail"], rows)
    if isinstance(table, Group):  # piped: the title line already heads the rows
        return Group(title, *table.renderables[1:])
    table.title = None
    return Group(title, table)


def _describe(params: dict[str, Any]) -> str:
    extra = f", fault {params['fault']}" if params.get("fault") else ""
    return f"upgrade to {params.get('to')} on {params.get('platform')}{extra}"


class LiveFleetView:
    """The fleet table redrawn in place; rings starting, soaks, re-gates and halts scroll above it."""

    def __init__(self, *, console: Console | None = None) -> None:
        self.console = console or rollout_console.out
        self.state: FleetState | None = None
        self.notes: dict[str, str] = {}
        self._lock = threading.RLock()
        self.live = Live(Text(""), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveFleetView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.notes.clear()
            self._redraw()
        self.live.__exit__(*exc)  # type: ignore[arg-type]
        if not self.console.is_terminal:
            self.console.line()  # off a terminal, rich ends the last frame without a newline

    def _redraw(self) -> None:
        if self.state is not None:
            self.live.update(fleet_table(self.state, self.notes))

    def _say(self, text: str, style: str = "") -> None:
        self.console.print(Text(f"{_clock(time.time())} {text}", style=style))

    # ---------------------------------------------------------------- FleetView

    def fleet_event(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.state = FleetState.from_json(data["state"])
            if kind == "run":
                if data.get("already_done"):
                    self._say(f"already done (fleet run {data['run']}): every ring passed", "green")
                elif data.get("resumed"):
                    self._say(f"resuming fleet run {data['run']} at ring {data.get('ring')}", "yellow")
                else:
                    self._say(f"fleet run {data['run']} started")
            elif kind == "ring":
                self._say(f"ring {data['ring']}: {data['status']}", "bold")
            elif kind == "stack" and data.get("status") == "finished":
                style = "green" if data.get("phase") == "Succeeded" else "red"
                self._say(f"  {data['stack']}: {data.get('phase')}" + (f" ({data['failure']})" if data.get("failure") else ""), style)
                self.notes.pop(data["stack"], None)
            elif kind == "soak":
                if data["status"] == "started":
                    self._say(f"ring {data['ring']}: soak {data['seconds']:g}s until {_clock(data['until'])}, "
                              "re-gating every finished ring", "yellow")
                else:
                    self._say(f"ring {data['ring']}: soak over after {data['seconds']:g}s; every finished ring "
                              "passed its last gate", "green")
            elif kind == "gate":
                passed = data["outcome"] == "passed"
                self.notes[data["stack"]] = f"re-gate {'passed' if passed else 'FAILED'} (soak of {data['soaking']})"
                if not passed:
                    self._say(f"× re-gate {data['stack']}: {data['message']}", "red")
            elif kind == "halt":
                self._say(f"line stopped at ring {data['ring']}: {data['reason']}", "bold red")
            elif kind == "done":
                # The run's whole time, across resumes; the final line gives this command's own.
                self._say(f"every ring passed, {data['seconds']:g}s after the fleet run started", "bold green")
            self._redraw()

    def stack_event(self, stack: str, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            if self.state is None or kind == "log":
                return
            record = self.state.stacks[stack]
            if kind == "phase":
                record.phase = data["to"]
                self.notes[stack] = f"{data['from']} -> {data['to']}"
            elif kind == "run" and data.get("resumed"):
                self.notes[stack] = f"resumed at {data.get('phase')}"
                self._say(f"  {stack}: resuming its run {data.get('run')} at {data.get('phase')}", "yellow")
            elif kind == "run" and data.get("already_done"):
                record.phase, self.notes[stack] = "Succeeded", "already done"
            elif kind == "apply":
                self.notes[stack] = f"{'applying' if data.get('status') == 'started' else 'applied'} {data.get('stage')}"
            elif kind == "gate":
                if data.get("status") == "started":
                    self.notes[stack] = f"gate {data.get('gate')}: {len(data.get('canary', []))} proxies"
                else:
                    self.notes[stack] = f"gate {data.get('gate')}: {data.get('outcome')}"
            elif kind == "rollback":
                self.notes[stack] = f"rolling back to update {data.get('to_update')}"
            self._redraw()

    def stack_sample(self, stack: str, gate: str, sample: Any) -> None:
        with self._lock:
            self.notes[stack] = f"{gate}: sample {getattr(sample, 'index', 0) + 1} {getattr(sample, 'verdict', '')}"
            self._redraw()


class JsonFleetView:
    """Collects the fleet's events (not the stacks' step-by-step events) for the `--json` document."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.stack_events = 0
        self._lock = threading.Lock()

    def fleet_event(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append({"event": kind, **{k: v for k, v in data.items() if k != "state"}})

    def stack_event(self, stack: str, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.stack_events += kind != "log"

    def stack_sample(self, stack: str, gate: str, sample: Any) -> None:
        return None


def fleet_document(state: FleetState | None, *, name: str, exit_code: int | None,
                   events: list[dict[str, Any]]) -> dict[str, Any]:
    """The versioned JSON document of `fleet upgrade|resume|status --json` (times as RFC 3339)."""
    from rollout.schemas import document, rfc3339

    if state is None:
        return document("fleet", fleet=name)
    rings = [{"name": ring.name, "status": ring.status, "soak_s": ring.soak_s, "max_parallel": ring.max_parallel,
              "soak_started_at": rfc3339(ring.soak_started_at), "soak_until": rfc3339(ring.soak_until),
              "stacks": [{"name": stack, **{k: v for k, v in vars(state.stacks[stack]).items() if k != "ring"}}
                         for stack in ring.stacks]}
             for ring in state.rings]
    return document("fleet", fleet=name, run=state.run_id, phase=state.phase, exit_code=exit_code,
                    to=state.params.get("to"), platform=state.params.get("platform"), params=state.params,
                    halt=state.halt, started_at=rfc3339(state.started_at), updated_at=rfc3339(state.updated_at),
                    rings=rings, events=[_rfc3339_times(event) for event in events])


def _rfc3339_times(event: dict[str, Any]) -> dict[str, Any]:
    from rollout.schemas import rfc3339

    return {key: rfc3339(value) if key in ("ts", "until") and isinstance(value, (int, float)) else value
            for key, value in event.items()}


def print_plan(name: str, to: str, rows: list[dict[str, Any]]) -> None:
    table_rows: list[list[Any]] = []
    for index, ring in enumerate(rows, 1):
        stacks = "\n".join(f"{s['name']}: {s['from']} -> {s['to']}, {len(s['stages'])} stages, "
                           f">= {s['min_gate_s']:g}s gating" for s in ring["stacks"])
        gate = ring["gate"]
        regate = f"window {_span(gate['window'])}, {gate['consecutive_passes']} passes" if gate else "-"
        after = "the next ring starts" if index < len(rows) else "done"
        table_rows.append([str(index), ring["name"], stacks, str(ring["max_parallel"]),
                           f"{_span(ring['soak_s'])} re-gating rings 1..{index}, then {after}", regate])
    rollout_console.print_table(f"fleet {name}: upgrade to {to}, ring by ring (validated on every stack)",
                                ["#", "ring", "stacks (from -> to, stages)", "at once", "soak, then", "re-gate"],
                                table_rows)


def print_status(state: FleetState | None, *, name: str, events: list[dict[str, Any]],
                 stack_phases: dict[str, str]) -> None:
    out = rollout_console.out
    if state is None:
        out.print(f"no fleet run recorded for fleet {name!r}")
        return
    out.print(fleet_table(state, stack_phases=stack_phases))
    if state.halt:
        out.print(f"[bold red]line stopped[/] at ring {state.halt['ring']}: {state.halt['reason']}", soft_wrap=True)
    if state.phase not in (SUCCEEDED, HALTED):
        out.print("  resume with `meshlift fleet resume` (or the same `meshlift fleet upgrade` command)")
    rows = [[_clock(e["ts"]), e["event"], rollout_console.event_detail(e, ("ts", "run", "event", "rings", "params"))]
            for e in events[-12:]]
    rollout_console.print_table("last fleet events", ["time", "event", "detail"], rows)


def print_result(state: FleetState, *, seconds: float) -> None:
    out = rollout_console.out
    if state.phase == SUCCEEDED:
        out.print(f"[bold green]√ fleet upgraded[/]: every ring on {state.params.get('to')}, in order, each soaked "
                  f"({seconds:.1f}s in this command)")
    elif state.halt:
        out.print(f"[bold red]× line stopped[/] at ring {state.halt['ring']}: {state.halt['reason']}", soft_wrap=True)
        untouched = [r.name for r in state.rings if r.status == PENDING]
        if untouched:
            out.print(f"  untouched: ring(s) {', '.join(untouched)} still run the old version")
