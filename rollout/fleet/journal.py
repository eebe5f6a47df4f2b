"""The fleet's own record, on top of one journal per stack.

Layout under the fleet's state directory (`.meshlift/fleet/<name>/`):

    fleet.json     the current fleet run (`FleetState`), replaced atomically after
                   every decision: which ring is upgrading, soaking (and until when)
                   or passed, each stack's last known phase, why the line stopped
    journal.jsonl  one JSON object per line, appended and fsynced: rings started,
                   stacks started and finished, soaks, re-gates, halts, with times
    lock           flock()ed by the one process driving the fleet

Each stack keeps its own run in its own journal (`.meshlift/<stack>/`), written
by its orchestrator; a resumed fleet hands each unfinished stack back to it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rollout.errors import RolloutBusy
from rollout.journal import Journal, _write_atomic

# Fleet phases: Running until every ring passed (Succeeded) or the line stopped (Halted).
RUNNING, SUCCEEDED, HALTED = "Running", "Succeeded", "Halted"
# Ring statuses, in order.
PENDING, UPGRADING, SOAKING, PASSED, STOPPED = "pending", "upgrading", "soaking", "passed", "halted"
# A stack the fleet has not handed to its orchestrator yet; one whose run could not even start
# (another process drives it, its platform is unreachable): nothing of it changed.
NOT_STARTED, COULD_NOT_START = "NotStarted", "CouldNotStart"


@dataclass
class RingRecord:
    name: str
    stacks: list[str] = field(default_factory=list)
    soak_s: float = 0.0
    max_parallel: int = 1
    status: str = PENDING
    soak_started_at: float | None = None
    soak_until: float | None = None


@dataclass
class StackRecord:
    ring: str
    phase: str = NOT_STARTED  # the stack run's Phase value once started
    run: str | None = None
    failure: str | None = None


@dataclass
class FleetState:
    run_id: str
    fleet: str
    params: dict[str, Any]  # to, platform, fleet digest (and the rehearsal's fault): "the same run"
    phase: str = RUNNING
    rings: list[RingRecord] = field(default_factory=list)
    stacks: dict[str, StackRecord] = field(default_factory=dict)
    halt: dict[str, Any] | None = None  # ring, stack, reason: why the line stopped
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def new(cls, *, fleet: str, params: dict[str, Any], rings: list[RingRecord]) -> FleetState:
        """A run of `rings` (as the fleet file had them when it started: a status reads no fleet file)."""
        return cls(run_id=uuid.uuid4().hex[:12], fleet=fleet, params=dict(params), rings=rings,
                   stacks={stack: StackRecord(ring=ring.name) for ring in rings for stack in ring.stacks})

    @property
    def terminal(self) -> bool:
        return self.phase != RUNNING

    def ring(self, name: str) -> RingRecord:
        return next(ring for ring in self.rings if ring.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetState:
        return cls(run_id=data["run_id"], fleet=data["fleet"], params=data["params"], phase=data["phase"],
                   rings=[RingRecord(**ring) for ring in data["rings"]],
                   stacks={name: StackRecord(**record) for name, record in data["stacks"].items()},
                   halt=data.get("halt"), started_at=data["started_at"], updated_at=data["updated_at"])


class FleetJournal:
    """`fleet.json` plus the event log and lock of the stack journal, in the fleet's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._log = Journal(root)

    @property
    def state_path(self) -> Path:
        return self.root / "fleet.json"

    def load(self) -> FleetState | None:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            raise RuntimeError(f"{self.state_path} is unreadable ({error}); move it aside to start over") from error
        return FleetState.from_json(data)

    def save(self, state: FleetState) -> None:
        state.updated_at = time.time()
        _write_atomic(self.state_path, json.dumps(state.to_json(), indent=2, sort_keys=True))

    def append(self, state: FleetState, event: str, **data: Any) -> dict[str, Any]:
        return self._log.append(state, event, **data)  # type: ignore[arg-type]  # needs only run_id

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return self._log.events(run_id)

    @contextmanager
    def locked(self) -> Iterator[None]:
        try:
            lock = self._log.locked()
            lock.__enter__()
        except RolloutBusy:
            raise RolloutBusy(f"another meshlift process is driving this fleet (lock {self.root / 'lock'})") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
