"""Presenting results: a linkerd-check-style rich report, and the stable JSON schema.

JSON (`schema: meshlift.checks/v1`)::

    {"schema": "meshlift.checks/v1", "success": bool, "taken_at": float,
     "targets": [{"name", "admin_url", "role", "success",
                  "checks": [{"id", "category", "description",
                              "result": "pass|warn|fail|error|skip",
                              "fatal": bool, "no_data": bool,
                              "observed": any, "threshold": any,
                              "message": str, "details": object|null, "hint": str}]}]}

A gate adds (`schema: meshlift.gate/v1`) `outcome` (passed|failed|inconclusive),
`message`, `failing_checks`, `elapsed` and `samples` (each sample's verdict and
report); `targets` is then the last sample's, and `success` is outcome == passed.
Fields are only ever added, never renamed or removed, within a schema version.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.text import Text

from .catalog import CATEGORIES
from .gate import GateOutcome, GateResult
from .result import Report, Status, TargetReport

__all__ = ["CHECK_SCHEMA", "GATE_SCHEMA", "report_to_json", "gate_to_json", "render_report", "render_gate", "print_report", "print_gate"]

CHECK_SCHEMA = "meshlift.checks/v1"
GATE_SCHEMA = "meshlift.gate/v1"


def report_to_dict(report: Report) -> dict[str, Any]:
    return {"schema": CHECK_SCHEMA, **report.to_dict()}


def gate_to_dict(gate: GateResult) -> dict[str, Any]:
    last = gate.samples[-1].report.to_dict() if gate.samples else {"targets": [], "taken_at": 0.0}
    return {
        "schema": GATE_SCHEMA,
        **gate.to_dict(),
        "success": gate.passed,
        "taken_at": last["taken_at"],
        "targets": last["targets"],
    }


def report_to_json(report: Report, *, indent: int | None = 2) -> str:
    return json.dumps(report_to_dict(report), indent=indent, default=str)


def gate_to_json(gate: GateResult, *, indent: int | None = 2) -> str:
    return json.dumps(gate_to_dict(gate), indent=indent, default=str)


def _target_block(target: TargetReport) -> list[RenderableType]:
    blocks: list[RenderableType] = [Text(f"{target.target}  ({target.admin_url}, {target.role})", style="bold")]
    by_category: dict[str, list] = {}
    for result in target.results:
        by_category.setdefault(result.category, []).append(result)
    for category in sorted(by_category, key=lambda c: CATEGORIES.index(c) if c in CATEGORIES else 99):
        blocks.append(Text(""))
        blocks.append(Text(category, style="bold"))
        blocks.append(Text("-" * len(category)))
        blocks.extend(by_category[category])
    return blocks


def render_report(report: Report) -> RenderableType:
    parts: list[RenderableType] = []
    for i, target in enumerate(report.targets):
        if i:
            parts.append(Rule(style="dim"))
        parts.extend(_target_block(target))
    parts.append(Text(""))
    parts.append(_summary(report.success))
    return Group(*parts)


def _summary(success: bool, text: str | None = None) -> Text:
    mark = Status.PASS if success else Status.FAIL
    line = Text("Status check results are ")
    line.append(mark.mark, style=mark.style)
    if text:
        line.append(f"\n{text}", style=mark.style)
    return line


def render_gate(gate: GateResult) -> RenderableType:
    parts: list[RenderableType] = []
    if gate.samples:
        last = gate.samples[-1].report
        for i, target in enumerate(last.targets):
            if i:
                parts.append(Rule(style="dim"))
            parts.extend(_target_block(target))
    verdicts = " ".join({"pass": "√", "fail": "×", "no-data": "-"}[s.verdict] for s in gate.samples)
    parts.append(Text(""))
    parts.append(Text(f"gate {gate.name}: {len(gate.samples)} sample(s) in {gate.elapsed:.1f}s  {verdicts}"))
    style = {GateOutcome.PASSED: "green", GateOutcome.FAILED: "red", GateOutcome.INCONCLUSIVE: "yellow"}[gate.outcome]
    parts.append(Text(f"{gate.outcome.value}: {gate.message}", style=style))
    return Group(*parts)


def print_report(report: Report, console: Console | None = None) -> None:
    (console or Console()).print(render_report(report))


def print_gate(gate: GateResult, console: Console | None = None) -> None:
    (console or Console()).print(render_gate(gate))
