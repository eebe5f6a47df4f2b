"""Render bench/RESULTS.md from the stored sections (bench/results.json)."""

from __future__ import annotations

import json
from pathlib import Path

from ._result import Section

ORDER = ("prometheus", "decision", "fleet", "gatescale", "parsing", "program", "engine")


def load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"machine": {}, "sections": {}}


def save(path: Path, store: dict) -> None:
    path.write_text(json.dumps(store, indent=1, sort_keys=True, default=str) + "\n")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def render(store: dict, *, command: str) -> str:
    names = [n for n in ORDER if n in store["sections"]] + sorted(set(store["sections"]) - set(ORDER))
    sections = [Section.from_dict(store["sections"][n]) for n in names]
    lines = [
        "# meshlift benchmarks — results",
        "",
        f"Written by `{command}` (`make bench` = `.venv/bin/python -m bench`). Every figure below was",
        "measured on this machine in the run stamped on its section; nothing is copied from elsewhere",
        "unless marked *reference*. Medians with (min–max, n) ranges.",
        "",
        "## Machine",
        "",
        _table(["", ""], [[k, v] for k, v in store.get("machine", {}).items()]),
        "",
        "## Targets",
        "",
    ]
    rows = []
    for s in sections:
        for t in s.targets:
            rows.append([t.target, t.figure, "**met**" if t.met else "**missed**", t.bound or "—"])
    lines += [_table(["target", "measured", "", "what bounds it"], rows), ""]
    for s in sections:
        stamp = f"measured {s.measured_at}, {s.duration_s:.0f} s" + (" — QUICK smoke sizes" if s.quick else "")
        lines += [f"## {s.title}", "", f"*{stamp}*", ""]
        if s.method:
            lines += ["How:", ""] + [f"- {m}" for m in s.method] + [""]
        for t in s.tables:
            lines += [f"**{t.title}**", "", _table(t.headers, t.rows), ""]
        if s.notes:
            lines += ["Notes:", ""] + [f"- {n}" for n in s.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"
