"""`meshlift inspect --diff`: type by type, what one proxy serves that the other lacks.

Both sides are compared on their normalised inventory (`config_dump.normalise`:
revisions and versions inside names become `<rev>`/`<ver>`), so a canary on
1-31-0 and a baseline on 1-30-3 that serve the same thing show no difference.
The keys printed are the ones `meshlift:gates.parityAllow` entries match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .inspect import ProxyInspection
from meshmodel.parity_allow import KINDS
from .rules_parity import missing, peer_key
from .target import Target

__all__ = ["InventoryDiff", "diff_inspections", "baseline_pairs"]


@dataclass(frozen=True)
class InventoryDiff:
    a: str
    b: str
    only_a: dict[str, list[str]]  # kind -> keys `a` serves and `b` lacks
    only_b: dict[str, list[str]]

    @property
    def identical(self) -> bool:
        return not self.only_a and not self.only_b

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "identical": self.identical,
                "kinds": {kind: {"only_in_a": self.only_a.get(kind, []), "only_in_b": self.only_b.get(kind, [])}
                          for kind in KINDS if kind in self.only_a or kind in self.only_b}}


def diff_inspections(a: ProxyInspection, b: ProxyInspection, *, allow: Iterable[str] = ()) -> InventoryDiff:
    allow = list(allow)
    left, right = a.snapshot_inventory, b.snapshot_inventory
    return InventoryDiff(a.name, b.name, missing(left, right, allow), missing(right, left, allow))


def baseline_pairs(targets: Sequence[Target]) -> list[tuple[Target, Target]]:
    """(canary, baseline) for every canary and each baseline of the same workload
    (every baseline when the canary carries no workload labels)."""
    baselines = [t for t in targets if t.role == "baseline"]
    pairs = []
    for canary in (t for t in targets if t.role == "canary"):
        key = peer_key(canary)
        pairs += [(canary, b) for b in baselines if key == (None, None) or peer_key(b) == key]
    return pairs
