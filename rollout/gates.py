"""Gates, as the orchestrator sees them: a verdict on a set of proxies.

The checks package does the judging (`checks.run_gate`); this module is the seam
between its result and the orchestrator's decision, and owns the retry policy:
an *inconclusive* gate (no traffic yet, no values found) is re-run a bounded
number of times (tenacity) and then fails closed; a *failed* gate is final.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import RetryError, Retrying, retry_if_result, stop_after_attempt, wait_fixed

from meshmodel.spec import GateSettings
from rollout.platforms.base import GateTargets

OnSample = Callable[[Any], None]
INCONCLUSIVE_RETRIES = 2


@dataclass(frozen=True)
class GateVerdict:
    """One gate's decision with its evidence (JSON-serialisable)."""

    gate: str  # canary | wave 2 | verify | approval
    outcome: str  # passed | failed | inconclusive
    message: str  # Flagger-style: "Halt <target> advancement: <why>"
    failing_checks: list[str] = field(default_factory=list)
    evidence: Any = None
    duration_s: float = 0.0
    attempts: int = 1

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "outcome": self.outcome, "message": self.message,
                "failing_checks": list(self.failing_checks), "duration_s": round(self.duration_s, 2),
                "attempts": self.attempts, "evidence": self.evidence}


class GateRunner(Protocol):
    def __call__(self, gate: str, targets: GateTargets, settings: GateSettings, *,
                 on_sample: OnSample | None = None) -> GateVerdict: ...


def verdict_from_result(gate: str, result: Any, *, duration_s: float, attempts: int = 1) -> GateVerdict:
    """Translate a `checks.GateResult` into a GateVerdict."""
    outcome = getattr(result, "outcome", None)
    outcome = getattr(outcome, "value", outcome)
    if outcome is None:
        outcome = "passed" if getattr(result, "passed", False) else "failed"
    evidence = result.to_dict() if hasattr(result, "to_dict") else getattr(result, "evidence", None)
    if isinstance(evidence, dict) and isinstance(evidence.get("samples"), list):
        # The deciding sample is the evidence; every sample would bloat the journal.
        evidence = {**evidence, "sample_count": len(evidence["samples"]), "samples": evidence["samples"][-1:]}
    failing = getattr(result, "failing_checks", None) or getattr(result, "failing", None) or []
    return GateVerdict(
        gate=gate,
        outcome=str(outcome),
        message=str(getattr(result, "message", "") or ""),
        failing_checks=[str(check) for check in failing],
        evidence=evidence,
        duration_s=duration_s,
        attempts=attempts,
    )


class ChecksGate:
    """The real gate: `checks.run_gate` on the targets, inconclusive retried then failed closed."""

    def __init__(self, *, inconclusive_retries: int = INCONCLUSIVE_RETRIES, retry_wait_s: float = 0.5) -> None:
        self.inconclusive_retries = inconclusive_retries
        self.retry_wait_s = retry_wait_s

    def __call__(self, gate: str, targets: GateTargets, settings: GateSettings, *,
                 on_sample: OnSample | None = None) -> GateVerdict:
        if not targets.canary:
            return GateVerdict(gate, "failed", f"Halt {gate} advancement: no proxies found to judge",
                               failing_checks=["targets"])
        started = time.monotonic()
        attempts = 0
        current = targets

        def once() -> GateVerdict:
            nonlocal attempts, current
            attempts += 1
            if attempts > 1 and current.refresh is not None:  # a retry judges the pods there are now
                try:
                    current = current.refresh()
                except Exception:  # noqa: BLE001 - the retry then judges the targets it had
                    pass
            result = _run_checks_gate(gate, current, settings, on_sample)
            return verdict_from_result(gate, result, duration_s=time.monotonic() - started, attempts=attempts)

        retrying = Retrying(
            stop=stop_after_attempt(1 + self.inconclusive_retries),
            wait=wait_fixed(self.retry_wait_s),
            retry=retry_if_result(lambda verdict: verdict.outcome == "inconclusive"),
        )
        try:
            verdict = retrying(once)
        except RetryError as error:
            last = error.last_attempt.result()
            verdict = GateVerdict(
                gate, "failed",
                f"{last.message} (inconclusive {attempts} times: failing closed)",
                failing_checks=last.failing_checks or ["inconclusive"],
                evidence=last.evidence, duration_s=time.monotonic() - started, attempts=attempts,
            )
        return verdict


def _run_checks_gate(gate: str, targets: GateTargets, settings: GateSettings, on_sample: OnSample | None) -> Any:
    from checks.gate import run_gate

    def retarget() -> tuple[list[Any], list[Any]]:
        nonlocal targets
        assert targets.refresh is not None
        targets = targets.refresh()
        return targets.canary, targets.baseline

    outcome = run_gate(targets.canary, settings, baseline_targets=tuple(targets.baseline),
                       on_sample=on_sample, name=gate, retarget=retarget if targets.refresh is not None else None)
    if inspect.isawaitable(outcome):
        from checks.interruptible import run as run_interruptible

        return run_interruptible(_await(outcome))
    return outcome


async def _await(awaitable: Any) -> Any:
    return await awaitable
