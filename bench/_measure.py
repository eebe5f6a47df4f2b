"""Measuring helpers shared by the benchmarks: summaries, peak memory, proxies' memory.

Peak memory of this process is read from the kernel (`VmHWM` in
/proc/self/status) after resetting it through /proc/self/clear_refs, so each
measurement sees its own peak rather than the whole run's. Envoy memory is
read from /proc/<pid>/smaps_rollup (RSS and PSS: the 107 MB binary's pages are
shared, so PSS is what each proxy really costs).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Summary:
    """Median and range of repeated measurements (seconds, bytes, ...)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        found = tuple(values)
        if not found:
            raise ValueError("no measurements")
        return cls(found)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def n(self) -> int:
        return len(self.values)

    def fmt(self, unit: str = "s", *, scale: float = 1.0, digits: int = 2) -> str:
        """`1.23 s (1.10–1.40, n=5)`; one value prints without a range."""
        med = f"{self.median * scale:.{digits}f}"
        if self.n == 1:
            return f"{med} {unit}".strip()
        return f"{med} {unit} ({self.low * scale:.{digits}f}–{self.high * scale:.{digits}f}, n={self.n})"

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def _status_kib(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS; returns the current RSS in bytes."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not resettable here: the peak is then the process's lifetime peak (said in the report)
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """Peak RSS (bytes) since the last `reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def process_peak_rss(pid: int) -> int:
    """Peak RSS (bytes) of another live process over its whole life (its VmHWM)."""
    return _status_kib("VmHWM", pid) * 1024


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def repeat(fn: Callable[[], object], n: int) -> Summary:
    """Wall time of `n` calls of `fn` (gc collected before each, not during)."""
    times = []
    for _ in range(n):
        gc.collect()
        seconds, _ = timed(fn)
        times.append(seconds)
    return Summary.of(times)


def with_peak(fn: Callable[[], T]) -> tuple[float, T, int, int]:
    """(seconds, value, peak RSS bytes, growth over the RSS before the call)."""
    before = reset_peak_rss()
    seconds, value = timed(fn)
    peak = peak_rss()
    return seconds, value, peak, max(0, peak - before)


def process_memory(pids: Sequence[int]) -> dict[str, float]:
    """Total and per-process RSS and PSS (bytes) of `pids`, from smaps_rollup."""
    rss = pss = 0
    counted = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        counted += 1
    return {
        "processes": counted,
        "rss_total": rss,
        "pss_total": pss,
        "rss_each": rss / counted if counted else 0.0,
        "pss_each": pss / counted if counted else 0.0,
    }


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"
