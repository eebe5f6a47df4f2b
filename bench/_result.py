"""What a benchmark hands back: tables, targets met or missed, notes; JSON-safe.

Each benchmark returns one `Section`; `bench/RESULTS.md` is rendered from the
stored sections (bench/results.json), so `--only NAME` re-runs one benchmark and
keeps the others' last figures, each stamped with when it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TargetCheck:
    """One target of the issue: the measured figure and whether it is met; `bound` says what limits it."""

    target: str
    figure: str
    met: bool
    bound: str = ""


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    name: str
    title: str
    method: list[str] = field(default_factory=list)  # how it was measured, one bullet each
    tables: list[Table] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures, for the JSON file
    measured_at: str = ""
    duration_s: float = 0.0
    quick: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Section:
        raw = dict(raw)
        raw["tables"] = [Table(**t) for t in raw.get("tables", [])]
        raw["targets"] = [TargetCheck(**t) for t in raw.get("targets", [])]
        return cls(**raw)
