"""The approval wait: the canary held until someone answers, a gate fails, or time runs out.

An approval comes from `meshlift promote` (a file the journal hands over once) or,
when the run was started interactively, from a prompt polled between samples. While
nobody has answered, the canary gate keeps sampling, so a canary that turns bad is
still rolled back; only a summary of the samples is journaled now and then.
The wait decides; the orchestrator acts on its decision (promote or roll back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rollout.gates import GateVerdict
from rollout.journal import Journal
from rollout.schemas import rfc3339


class Approval(Protocol):
    """An interactive answer, polled while waiting: True go, False roll back, None not yet."""

    def poll(self) -> bool | None: ...


@dataclass
class WaitSummary:
    """The gate samples taken while waiting for approval, as counts (journaled now and then)."""

    started: float
    gates: int = 0
    passed: int = 0
    last_message: str | None = None
    last_logged: float = 0.0

    def __post_init__(self) -> None:
        self.last_logged = self.started

    def add(self, verdict: GateVerdict) -> None:
        self.gates += 1
        self.passed += bool(verdict.passed)
        self.last_message = verdict.message

    def to_json(self) -> dict[str, Any]:
        return {"gates": self.gates, "passed": self.passed, "last": self.last_message}


@dataclass(frozen=True)
class Approved:
    record: dict[str, Any]  # run, gate, evidence, and who approved, how and when
    samples: dict[str, Any]  # WaitSummary.to_json() of the wait


@dataclass(frozen=True)
class Halted:
    message: str
    verdict: GateVerdict | None = None  # the gate that failed during the wait; None: rejected or timed out


@dataclass
class ApprovalWait:
    journal: Journal
    prompt: Approval | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    poll_s: float
    timeout_s: float | None
    summary_s: float

    def run(self, run_id: str, awaiting: dict[str, Any], *, sample_gate: Callable[[], GateVerdict],
            on_summary: Callable[[dict[str, Any]], None]) -> Approved | Halted:
        """Wait for the approval of `awaiting` (run, gate, evidence); `sample_gate` runs the canary
        gate once, `on_summary` is handed the samples' summary every `summary_s`."""
        waited = WaitSummary(started=self.clock())
        while True:
            approval = self.journal.approval_for(run_id)
            answer: bool | None = True if approval else None
            if answer is None and self.prompt is not None:
                answer = self.prompt.poll()
                approval = {"by": getattr(self.prompt, "who", "prompt"), "via": "prompt"} if answer else None
            if answer is True:
                self.journal.clear_approval()
                record = {"run": run_id, "gate": awaiting["gate"], "evidence": awaiting["evidence"], **(approval or {})}
                record.setdefault("at", rfc3339(self.clock()))
                return Approved(record=record, samples=waited.to_json())
            if answer is False:
                return Halted("Halt advancement: promotion rejected by the operator")
            if self.timeout_s is not None and self.clock() - waited.started >= self.timeout_s:
                return Halted(f"Halt advancement: nobody approved within {self.timeout_s:g}s")
            # Rollback gates stay active while nobody has answered; a summary is journaled, not each sample.
            verdict = sample_gate()
            waited.add(verdict)
            if not verdict.passed:
                return Halted(verdict.message, verdict=verdict)
            if self.clock() - waited.last_logged >= self.summary_s:
                on_summary(waited.to_json())
                waited.last_logged = self.clock()
            self.sleep(self.poll_s)
