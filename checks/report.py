"""Presenting results: a linkerd-check-style rich report, and the stable JSON schema.

JSON (`schema: meshlift.checks/v2`)::

    {"schema": "meshlift.checks/v2", "success": bool, "taken_at": "RFC 3339"|null,
     "targets": [{"name", "admin_url", "role", "success",
                  "endpoint": {"status": "ok|unreachable|not-envoy", "message", "hint"},
                  "checks": [{"id", "category", "description",
                              "result": "pass|warn|fail|error|skip",
                              "fatal": bool, "no_data": bool,
                              "observed": any, "threshold": any,
                              "message": str, "details": object|null, "hint": str}]}],
     "error": null|{"code", "message", "details"}}

A gate adds (`schema: meshlift.gate/v2`) `name`, `outcome` (passed|failed|inconclusive),
`message`, `failing_checks`, `elapsed` and `samples` (each sample's verdict and
report); `targets` is then the last sample's, and `success` is outcome == passed.
A usage or configuration error prints the same document with `error` set.
Fields are only ever added, never renamed or removed, within a schema version
(v2: `taken_at` became wall-clock RFC 3339, `endpoint` and `error` were added).
docs/json.md describes both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from . import terminal
from .catalog import CATEGORIES
from .gate import GateOutcome, GateResult
from .inspect import INSPECT_SCHEMA, ProxyInspection
from .inspect_diff import InventoryDiff
from .result import SKIPPED_BY_CONFIGURATION, Report, Status, TargetReport

__all__ = ["CHECK_SCHEMA", "GATE_SCHEMA", "error_to_dict", "report_to_json", "gate_to_json", "render_report",
           "render_gate", "print_report", "print_gate", "inspect_to_json", "inspect_error_to_json", "render_inspection", "render_diff",
           "print_inspection"]

CHECK_SCHEMA = "meshlift.checks/v2"
# Between proxies: a fixed width, not the terminal's (a piped log has none).
_SEPARATOR = Text("─" * 40, style="dim")
GATE_SCHEMA = "meshlift.gate/v2"
_GATE_EMPTY = {"name": None, "outcome": None, "message": None, "failing_checks": [], "elapsed": None, "samples": []}


def report_to_dict(report: Report) -> dict[str, Any]:
    return {"schema": CHECK_SCHEMA, **report.to_dict(), "error": None}


def gate_to_dict(gate: GateResult) -> dict[str, Any]:
    last = gate.samples[-1].report.to_dict() if gate.samples else {"targets": [], "taken_at": None}
    return {
        "schema": GATE_SCHEMA,
        **gate.to_dict(),
        "success": gate.passed,
        "taken_at": last["taken_at"],
        "targets": last["targets"],
        "error": None,
    }


def error_to_dict(message: str, *, gate: bool, code: int = 2) -> dict[str, Any]:
    """The document of a run that could not start (bad flag, config), same keys as a real one."""
    empty = {"success": False, "taken_at": None, "targets": []}
    extra = {**_GATE_EMPTY, **empty} if gate else empty
    return {"schema": GATE_SCHEMA if gate else CHECK_SCHEMA, **extra,
            "error": {"code": code, "message": message, "details": []}}


def report_to_json(report: Report, *, indent: int | None = 2) -> str:
    return json.dumps(report_to_dict(report), indent=indent, default=str)


def gate_to_json(gate: GateResult, *, indent: int | None = 2) -> str:
    return json.dumps(gate_to_dict(gate), indent=indent, default=str)


def _target_block(target: TargetReport) -> list[RenderableType]:
    blocks: list[RenderableType] = [Text(f"{target.target}  ({target.admin_url}, {target.role})", style="bold")]
    by_category: dict[str, list] = {}
    endpoint = target.endpoint
    if endpoint is not None and not endpoint.ok:
        # One line for the endpoint, then the checks it prevented, grouped: not one copy of the error per check.
        blocks.append(Text(f"{Status.ERROR.mark} {endpoint.message}", style=Status.ERROR.style))
        blocks.append(Text(f"    {endpoint.hint}", style="dim"))
        not_run: dict[str, list[str]] = {}
        for result in target.results:
            if result.status is Status.ERROR and (result.details or {}).get("endpoint") == endpoint.status:
                not_run.setdefault(result.category, []).append(result.check_id)
            else:
                by_category.setdefault(result.category, []).append(result)
        if not_run:
            blocks.append(Text("  checks not run:"))
            for category in sorted(not_run, key=_category_order):
                blocks.append(Text(f"    {category}: {', '.join(not_run[category])}", style="dim"))
        results: list = []
    else:
        results = list(target.results)
    # Checks left out by --check/--skip (or the gates' checks/skipChecks) are counted, not listed one by one.
    left_out = [r.check_id for r in results if r.status is Status.SKIP and r.message == SKIPPED_BY_CONFIGURATION]
    for result in results:
        if result.check_id not in left_out:
            by_category.setdefault(result.category, []).append(result)
    for category in sorted(by_category, key=_category_order):
        blocks.append(Text(""))
        blocks.append(Text(category, style="bold"))
        blocks.append(Text("-" * len(category)))
        blocks.extend(by_category[category])
    if left_out:
        blocks.append(Text(""))
        blocks.append(Text(f"{len(left_out)} check(s) not run, as configured (--check/--skip, or the gates' "
                           "checks/skipChecks)", style="dim"))
    return blocks


def _category_order(category: str) -> int:
    return CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES)


def render_report(report: Report) -> RenderableType:
    parts: list[RenderableType] = []
    for i, target in enumerate(report.targets):
        if i:
            parts.append(_SEPARATOR)
        parts.extend(_target_block(target))
    parts.append(Text(""))
    parts.append(_summary(report.success))
    return Group(*parts)


def _summary(success: bool, text: str | None = None) -> Text:
    mark = Status.PASS if success else Status.FAIL
    line = Text("Status check results: ")
    line.append(f"{mark.mark} {'passed' if success else 'failed'}", style=mark.style)
    if text:
        line.append(f"\n{text}", style=mark.style)
    return line


def render_gate(gate: GateResult) -> RenderableType:
    parts: list[RenderableType] = []
    if gate.samples:
        last = gate.samples[-1].report
        for i, target in enumerate(last.targets):
            if i:
                parts.append(_SEPARATOR)
            parts.extend(_target_block(target))
    verdicts = " ".join({"pass": "√", "fail": "×", "no-data": "-"}[s.verdict] for s in gate.samples)
    parts.append(Text(""))
    parts.append(Text(f"gate {gate.name}: {len(gate.samples)} sample(s) in {gate.elapsed:.1f}s  {verdicts}"))
    style = {GateOutcome.PASSED: "green", GateOutcome.FAILED: "red", GateOutcome.INCONCLUSIVE: "yellow"}[gate.outcome]
    parts.append(Text(f"{gate.outcome.value}: {gate.message}", style=style))
    return Group(*parts)


def print_report(report: Report, console: Console | None = None) -> None:
    (console or terminal.console(soft_wrap=True)).print(render_report(report))


def print_gate(gate: GateResult, console: Console | None = None) -> None:
    (console or terminal.console(soft_wrap=True)).print(render_gate(gate))


# ---------------------------------------------------------------- meshlift inspect


def inspect_to_json(inspections: Sequence[ProxyInspection], diffs: Sequence[InventoryDiff] = (),
                    *, indent: int | None = 2) -> str:
    """Schema meshlift.inspect/v1: {"schema", "proxies": [...], "diffs": [{"a", "b", "identical", "kinds"}]}."""
    document = {"schema": INSPECT_SCHEMA, "proxies": [i.to_dict() for i in inspections],
                "diffs": [d.to_dict() for d in diffs], "error": None}
    return json.dumps(document, indent=indent, default=str)


def inspect_error_to_json(message: str, *, code: int = 2, indent: int | None = 2) -> str:
    """The inspect document of a run that could not start: the same keys, `error` set."""
    return json.dumps({"schema": INSPECT_SCHEMA, "proxies": [], "diffs": [],
                       "error": {"code": code, "message": message, "details": []}}, indent=indent)


def _capped(items: Sequence[str], limit: int) -> list[str]:
    if limit <= 0 or len(items) <= limit:
        return list(items)
    return [*items[:limit], f"… and {len(items) - limit} more (--limit 0 or --json shows all)"]


def _row(label: str, lines: Sequence[str]) -> list[Text]:
    if not lines:
        return [Text(f"  {label:<14}-", style="dim")]
    return [Text(f"  {label if i == 0 else '':<14}{line}") for i, line in enumerate(lines)]


def render_inspection(item: ProxyInspection, *, limit: int = 20) -> RenderableType:
    s, cp, logs = item.server, item.control_plane, item.log_levels
    rows: list[RenderableType] = [Text(f"{item.name}  ({item.admin_url}, {item.role})", style="bold")]
    if not s and item.errors and not (item.listeners or item.clusters or item.xds):
        # Nothing was read: empty sections would look like a proxy with no listeners or clusters.
        first = next(iter(item.errors.values()))
        rows.append(Text(f"  × cannot read this proxy: {first}; nothing inspected", style="red"))
        return Group(*rows)
    if s:
        rows += _row("server", [f"Envoy {s.get('envoy_version')}, Istio {s.get('istio_version') or '-'}, "
                                f"{s.get('state')}, up {s.get('uptime_s')}s, node {s.get('node_id')} "
                                f"(cluster {s.get('node_cluster')})"])
    connected = {True: "connected", False: "NOT connected", None: "no gRPC control plane"}[cp.get("connected")]
    rows += _row("control plane", [f"{connected}; {cp.get('identity') or 'no identifier'}"
                                   + (f" via {cp['xds_cluster']}" if cp.get("xds_cluster") else "")
                                   + (f" at {', '.join(cp['addresses'])}" if cp.get("addresses") else "")])
    rows += _row("xDS", _capped([f"{x['type']}: version {x['version']!r}, {x['accepted']} accepted, "
                                 f"{x['rejected']} rejected, {x['failed']} failed"
                                 + (f"; last error: {x['last_error']}" if x.get("last_error") else "")
                                 for x in item.xds], limit))
    rows += _row(f"listeners ({len(item.listeners)})", _capped(
        [f"{x['name']} {x['address'] or ''} {x['state']}" + (f" v{x['version']}" if x.get("version") else "")
         + f", {len(x['filter_chains'])} filter chain(s)" + (f": {x['error']}" if x.get("error") else "")
         for x in item.listeners], limit))
    rows += _row(f"routes ({len(item.routes)})", _capped(
        [f"{r['route_config']} ({r['source']}): virtual host {vh['name']} {vh['domains']}: "
         f"{', '.join(vh['routes']) or 'no routes'}" for r in item.routes for vh in r["virtual_hosts"]], limit))
    rows += _row(f"clusters ({len(item.clusters)})", _capped(
        [f"{c['name']} {c['type'] or ''} {c['healthy']}/{len(c['endpoints'])} healthy"
         + "".join(f"; {e['address']} {e['health']}{' ' + ','.join(e['failed']) if e['failed'] else ''}"
                   for e in c["endpoints"][:3] if e["health"] != "HEALTHY" or e["failed"])
         for c in item.clusters], limit))
    rows += _row("certificates", _capped(
        [f"{c['kind']} {c['serial']} {','.join(c['subject_alt_names'])}: expires {c['expires_at']} "
         f"({c['days_left']} days)" for c in item.certificates], limit))
    rows += _row("overload", [f"{o['action']} {'ACTIVE' if o['active'] else 'inactive'}"
                              + (f" ({o['scale_percent']:.0f}%)" if o.get("scale_percent") else "")
                              + (" at " + ", ".join(f"{m.rsplit('.', 1)[-1]} ≥ {v:g}" for m, v in o["triggers"].items())
                                 if o["triggers"] else "") for o in item.overload])
    rows += _row("log levels", [f"{logs.get('level')}" + (f"; {','.join(logs['components'])}" if logs.get("components")
                                                          else "") + f" ({logs.get('source')})"] if logs else [])
    for source, error in item.errors.items():
        rows.append(Text(f"  × {source}: {error}", style="red"))
    return Group(*rows)


def render_diff(diff: InventoryDiff, *, limit: int = 20) -> RenderableType:
    rows: list[RenderableType] = [Text(f"diff {diff.a} (a) vs {diff.b} (b)", style="bold")]
    if diff.identical:
        rows.append(Text("  √ same listeners, filter chains, route configs, virtual hosts, routes and clusters",
                         style="green"))
    for side, found in (("a", diff.only_a), ("b", diff.only_b)):
        for kind, keys in found.items():
            style = "red" if side == "b" else "yellow"
            rows += [Text(line, style=style) for line in
                     (f"  {kind:<13} only in {side}: {key}" for key in _capped(keys, limit))]
    return Group(*rows)


def print_inspection(inspections: Sequence[ProxyInspection], diffs: Sequence[InventoryDiff] = (),
                     *, limit: int = 20, console: Console | None = None) -> None:
    out = console or terminal.console()
    for i, item in enumerate(inspections):
        if i:
            out.print(_SEPARATOR)
        out.print(render_inspection(item, limit=limit))
    for diff in diffs:
        out.print(_SEPARATOR)
        out.print(render_diff(diff, limit=limit))
