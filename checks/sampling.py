"""Which pods of a workload a gate reads: a declared number, chosen deterministically.

A wave gate compares the promoted waves with every workload not yet promoted,
so its baseline grows with the mesh. It reads `baselinePodsPerWorkload` pods of
each baseline workload instead of all of them. The choice orders pods by a hash
of their name: the same pods are chosen however the API server lists them, a
pod that ends is replaced by the next in that order while the others stay, and
the choice does not lean towards the oldest or newest pods the way sorting by a
generated name suffix would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Sampled", "choose"]

T = TypeVar("T")


def _rank(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def choose(items: Sequence[T], count: int | None, *, name: Callable[[T], str] = str) -> list[T]:
    """`count` of `items` (all when `count` is None or not smaller), in the order they came."""
    if count is None or len(items) <= count:
        return list(items)
    kept = {id(item) for item in sorted(items, key=lambda item: _rank(name(item)))[:count]}
    return [item for item in items if id(item) in kept]


@dataclass(frozen=True)
class Sampled:
    """What a gate read of one workload: the pods chosen, out of how many were found."""

    workload: str  # namespace/name
    role: str  # canary | baseline
    chosen: tuple[str, ...]
    found: int | None  # None: the workload was left out of the sample, its pods not even listed

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "role": self.role, "pods": list(self.chosen), "of": self.found}
