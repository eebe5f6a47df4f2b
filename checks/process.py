"""Is it still the same proxy process? Evidence from two reads of the filtered `/stats`.

A restart resets every counter, and Envoy's `server.uptime` gauge counts whole
seconds from the process start (refreshed on the stats flush, so it reads 0 for
the first few seconds). Two questions are asked of two reads of the same proxy:

- `restart_evidence`: is there proof that the process changed? (the
  proxy-not-restarted check fails on it);
- `same_process`: is there proof that it did *not*? Facts read once per process
  (`/server_info`: version, node metadata) are carried to the next sample only
  on this stronger proof; anything short of it means read them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import Stats

__all__ = ["PROCESS_COUNTERS", "PROCESS_STATS", "Restart", "restart_evidence", "same_process"]

# Process-lifetime counters that only grow while one process lives. Per-cluster counters
# are not used: a cluster removed and re-added by the control plane restarts at 0 too.
# The admin listener's own request count grows with every read we make.
ADMIN_REQUESTS = "http.admin.downstream_rq_total"
PROCESS_COUNTERS = (
    ADMIN_REQUESTS,
    "listener_manager.lds.update_attempt",
    "cluster_manager.cds.update_attempt",
)
# `server.version` is the build's source revision as an integer: another binary, another value.
BUILD = "server.version"
UPTIME = "server.uptime"

# The stats (RE2, for `/stats?filter=`) both questions read.
PROCESS_STATS = (
    r"^server\.(uptime|version)$",
    r"^http\.admin\.downstream_rq_total$",
    r"^(listener_manager\.lds|cluster_manager\.cds)\.update_attempt$",
)


@dataclass(frozen=True)
class Restart:
    """Why two reads cannot come from one process."""

    uptime: float
    previous_uptime: float
    counters_reset: tuple[str, ...]
    build_changed: bool

    @property
    def reason(self) -> str:
        why = f"uptime {self.uptime:.0f}s, was {self.previous_uptime:.0f}s"
        if self.counters_reset:
            why += f"; {self.counters_reset[0]} went back"
        if self.build_changed:
            why += f"; {BUILD} changed"
        return why


def restart_evidence(now: Stats, before: Stats) -> Restart | None:
    """Proof that `now` was read from another process than `before`, else None.

    `server.uptime` going back by more than its one-second granularity, a
    process-lifetime counter going back, or another build (`server.version`).
    """
    uptime = now.number(UPTIME, default=-1)
    previous = before.number(UPTIME, default=-1)
    dropped = tuple(n for n in PROCESS_COUNTERS if n in now and n in before and now.number(n) < before.number(n))
    build_changed = BUILD in now and BUILD in before and now[BUILD] != before[BUILD]
    if (uptime >= 0 and previous >= 0 and uptime + 1 < previous) or dropped or build_changed:
        return Restart(uptime, previous, dropped, build_changed)
    return None


def same_process(now: Stats, before: Stats) -> bool:
    """Positive proof that both reads come from one process (`before` read first).

    No restart evidence, the same build, uptime reported in both, and the admin
    request counter strictly higher now: the read of `now` counts itself, so a
    new process shows the same or a lower count unless it has already served
    more admin requests than the old one had. Missing stats prove nothing.
    """
    if restart_evidence(now, before) is not None:
        return False
    if UPTIME not in now or UPTIME not in before or now.get(BUILD) != before.get(BUILD):
        return False
    if ADMIN_REQUESTS not in now or ADMIN_REQUESTS not in before:
        return False
    return now.number(ADMIN_REQUESTS) > before.number(ADMIN_REQUESTS)
