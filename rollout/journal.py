"""The persisted record of a rollout: where it is, and every decision with its evidence.

Layout under `.meshlift/<stack>/` (created on first use, ignored by git):

    run.json       the current run's state (`RunState`), replaced atomically
                   (write a temp file, fsync, rename) after every transition, so a
                   crash leaves either the old or the new state, never half of one
    journal.jsonl  one JSON object per line, appended and fsynced: every phase
                   change, stage applied, gate result, decision and rollback, each
                   with its evidence; `meshlift status` reads it. A line torn by a
                   crash is skipped on reading (and never followed by a good line
                   on the same line: appends start with a newline when needed).
                   Past `MAX_LOG_BYTES` it is rotated to `journal.1.jsonl` (one
                   generation kept), so the pair never exceeds twice that.
    approve        written by `meshlift promote` (JSON): the run it approves, the
                   gate that was waiting, the evidence seen, who and when
    lock           flock()ed by the one process driving this stack; the kernel
                   drops the lock when that process dies, however it dies

A new process reads `run.json`: a run that is not terminal resumes at its phase,
wave and part of the wave (each stage's apply is declarative, so re-applying it
is harmless).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rollout.errors import RolloutBusy, StateUnreadable
from rollout.phases import Phase, check_transition

STATE_DIR = ".meshlift"
MAX_LOG_BYTES = 1024 * 1024


@dataclass
class RunState:
    """One rollout (or rehearsal) from Planned to a terminal phase."""

    run_id: str
    stack: str
    command: str  # upgrade | rehearse
    params: dict[str, Any]  # what makes a repeated command "the same run" (target version, fault)
    phase: Phase = Phase.PLANNED
    waves_total: int = 0
    waves_done: int = 0  # waves promoted *and* gated
    # Workloads of wave waves_done+1 restarted by the part being applied or applied (`restartedInWave`):
    # a resumed run goes on from that part, never an earlier one, which would restart workloads back.
    wave_restarted: int = 0
    applied: dict[str, Any] | None = None  # the last stage config applied (meshlift:rollout)
    baseline_update: int | None = None  # the stack's update before this run changed anything
    failure: dict[str, Any] | None = None  # gate, message, checks: why it rolled back
    rollback: dict[str, Any] | None = None  # the update re-applied, and how it went
    awaiting: dict[str, Any] | None = None  # WaitingApproval: the gate and evidence an approval approves
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def new(cls, *, stack: str, command: str, params: dict[str, Any], waves_total: int) -> RunState:
        return cls(run_id=uuid.uuid4().hex[:12], stack=stack, command=command,
                   params=dict(params), waves_total=waves_total)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["phase"] = Phase(values["phase"])
        return cls(**values)

    def matches(self, command: str, params: dict[str, Any]) -> bool:
        return self.command == command and self.params == params


class Journal:
    """The state and event log of one stack (`.meshlift/<stack>/`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_stack(cls, project_dir: Path, stack: str) -> Journal:
        return cls(project_dir / STATE_DIR / stack)

    @property
    def state_path(self) -> Path:
        return self.root / "run.json"

    @property
    def log_path(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def approval_path(self) -> Path:
        return self.root / "approve"

    # ------------------------------------------------------------------ state

    def load(self) -> RunState | None:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise StateUnreadable(f"{self.state_path} is unreadable ({str(error)[:120]}); "
                                  "move it aside to start over") from None
        try:
            return RunState.from_json(data)
        except (TypeError, ValueError, KeyError) as error:
            raise StateUnreadable(f"{self.state_path} is not a meshlift run record ({str(error)[:120]}); "
                                  "move it aside to start over") from None

    def save(self, state: RunState) -> None:
        state.updated_at = time.time()
        _write_atomic(self.state_path, json.dumps(state.to_json(), indent=2, sort_keys=True))

    def transition(self, state: RunState, phase: Phase, **evidence: Any) -> None:
        """Move `state` to `phase` (only along TRANSITIONS), log it, persist it."""
        previous = state.phase
        state.phase = check_transition(previous, phase)
        self.append(state, "phase", **{"from": previous.value, "to": phase.value, **evidence})
        self.save(state)

    # ------------------------------------------------------------------ events

    @property
    def rotated_log_path(self) -> Path:
        return self.root / "journal.1.jsonl"

    def append(self, state: RunState, event: str, **data: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 3), "run": state.run_id, "event": event, **data}
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str)
        self._rotate_if_full(len(line) + 1)
        with open(self.log_path, "a+b") as handle:
            # A crash may have left a torn last line: start ours on a line of its own.
            torn = False
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            handle.write((("\n" if torn else "") + line + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            return
        if size + adding > MAX_LOG_BYTES:
            os.replace(self.log_path, self.rotated_log_path)  # the older generation is dropped

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every logged event still kept (of one run), oldest first; torn lines are skipped."""
        records = []
        for path in (self.rotated_log_path, self.log_path):
            try:
                lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a crash mid-write: everything before it is intact
                if isinstance(record, dict) and (run_id is None or record.get("run") == run_id):
                    records.append(record)
        return records

    # ------------------------------------------------------------------ approval

    def approve(self, approval: dict[str, Any]) -> None:
        """Record an approval (`run`, `gate`, `evidence`, `by`, `at`) for the waiting run to take."""
        _write_atomic(self.approval_path, json.dumps(approval, sort_keys=True))

    def approval_for(self, run_id: str) -> dict[str, Any] | None:
        """The recorded approval of run `run_id`, if there is one."""
        try:
            approval = json.loads(self.approval_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return approval if isinstance(approval, dict) and approval.get("run") == run_id else None

    def clear_approval(self) -> None:
        self.approval_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ exclusivity

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the stack's lock; RolloutBusy if another live process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RolloutBusy(
                    f"another meshlift process is driving this stack (lock {self.root / 'lock'})"
                ) from None
            yield
        finally:
            handle.close()  # closing releases the flock


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def operator() -> str:
    """Who is approving: user@host (recorded with every approval)."""
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no passwd entry (a container): still record something
        return f"uid {os.getuid()}@{socket.gethostname()}"
