"""Manual approval before promotion: the canary gate keeps sampling while nobody has answered."""

from __future__ import annotations

from rollout.orchestrator import RunRequest
from rollout.phases import Phase
from rollout.stages import upgrade_target
from tests.rollout.doubles import ScriptedGate


class PromoteFromAnotherTerminal:
    """Nobody answers at the prompt; after `after` polls, `meshlift promote` writes the approval."""

    def __init__(self, journal, after: int) -> None:
        self.journal, self.after, self.polls = journal, after, 0

    def poll(self):
        self.polls += 1
        if self.polls == self.after:
            self.journal.approve({"run": self.journal.load().run_id, "by": "someone", "via": "test"})
        return None


class Answer:
    def __init__(self, answer):
        self.answer = answer

    def poll(self):
        return self.answer


def _request(rig) -> RunRequest:
    return RunRequest(command="upgrade", params={"to": "1.40.0"},
                      target=upgrade_target(rig.config, "1.40.0", require_approval=True), base_config=rig.config)


def test_waits_sampling_the_canary_until_promote_then_promotes(rig):
    approval = PromoteFromAnotherTerminal(rig.journal, after=3)

    state = rig.orchestrator(approval=approval).run(_request(rig))

    assert state.phase is Phase.SUCCEEDED
    gates = [call[0] for call in rig.gate.calls]
    assert gates[:4] == ["canary", "approval", "approval", "approval"], "gates keep running while waiting"
    assert "WaitingApproval" in rig.reporter.phases()
    stages = [c["meshlift:rollout"]["stage"] for c in rig.engine.named("set_config")]
    assert stages.index("promote") > stages.index("canary")


def test_a_gate_failure_while_waiting_rolls_back_without_promoting(make_rig):
    rig = make_rig(gate=ScriptedGate({"approval": "failed"}))

    state = rig.orchestrator(approval=Answer(None)).run(_request(rig))

    assert state.phase is Phase.ROLLED_BACK and state.failure["gate"] == "approval"
    assert "promote" not in [c["meshlift:rollout"]["stage"] for c in rig.engine.named("set_config")]


def test_operator_rejects_at_the_prompt(rig):
    state = rig.orchestrator(approval=Answer(False)).run(_request(rig))

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["message"] == "Halt advancement: promotion rejected by the operator"


def test_approval_given_before_the_wait_is_not_lost(rig):
    approval = PromoteFromAnotherTerminal(rig.journal, after=1)

    state = rig.orchestrator(approval=approval).run(_request(rig))

    assert state.phase is Phase.SUCCEEDED


def test_a_run_resumed_after_its_approval_was_recorded_does_not_ask_for_it_again(make_rig):
    import pytest

    rig = make_rig(gate=ScriptedGate(interrupt_on="approval"))
    with pytest.raises(KeyboardInterrupt):
        rig.orchestrator(approval=Answer(None)).run(_request(rig))
    waiting = rig.journal.load()
    assert waiting.phase is Phase.WAITING_APPROVAL
    rig.journal.approve({"run": waiting.run_id, "by": "someone", "via": "meshlift promote"})
    rig.gate.interrupt_on = None
    rig.reporter.events.clear()

    state = rig.orchestrator(approval=None).run(_request(rig))

    assert state.phase is Phase.SUCCEEDED
    approvals = [data["status"] for kind, data in rig.reporter.events if kind == "approval"]
    assert approvals == ["approved"], "no 'waiting for approval' prompt for a run already approved"


# ---- approval that means something ------------------------------------------------------

import io  # noqa: E402
import os  # noqa: E402

from rollout.console import StdinApproval  # noqa: E402
from rollout.journal import MAX_LOG_BYTES  # noqa: E402
from rollout.orchestrator import Orchestrator  # noqa: E402
from rollout.platforms.kubernetes import KubernetesPlatform  # noqa: E402
from tests.rollout.doubles import fake_discovery  # noqa: E402


class SimulatedClock:
    """Time that passes only when the orchestrator sleeps."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class PromoteAfter:
    """`meshlift promote` from elsewhere once `seconds` of simulated time have passed."""

    def __init__(self, journal, clock, seconds: float) -> None:
        self.journal, self.clock, self.deadline = journal, clock, clock() + seconds

    def poll(self):
        if self.clock() >= self.deadline and self.journal.approval_for(self.journal.load().run_id) is None:
            self.journal.approve({"run": self.journal.load().run_id, "gate": "canary", "by": "ops@host",
                                  "at": "2027-01-15T08:00:00Z", "via": "meshlift promote"})
        return None


def _timed_orchestrator(rig, clock, approval, **options):
    return Orchestrator(platform=KubernetesPlatform(rig.engine, discover=fake_discovery, live=rig.cluster),
                        journal=rig.journal,
                        gate=rig.gate, reporter=rig.reporter, stack="dev", approval=approval, retry_wait_s=0,
                        approval_poll_s=1.0, clock=clock, sleep=clock.sleep, **options)


def test_an_hour_waiting_for_approval_leaves_a_journal_of_bounded_size(rig):
    clock = SimulatedClock()
    approval = PromoteAfter(rig.journal, clock, seconds=3600)

    state = _timed_orchestrator(rig, clock, approval).run(_request(rig))

    assert state.phase is Phase.SUCCEEDED
    waiting_gates = [call for call in rig.gate.calls if call[0] == "approval"]
    assert len(waiting_gates) >= 3600, "the gate sampled all along"
    summaries = [e for e in rig.journal.events() if e["event"] == "approval" and e["status"] == "waiting"]
    assert 55 <= len(summaries) <= 65, "one summary a minute, not one line per sample"
    assert rig.journal.log_path.stat().st_size < 64 * 1024
    approved = next(e for e in rig.journal.events() if e.get("status") == "approved")
    assert approved["samples"]["gates"] >= 3600 and approved["samples"]["passed"] == approved["samples"]["gates"]


def test_the_approval_names_run_gate_evidence_and_who_and_when(rig):
    clock = SimulatedClock()
    state = _timed_orchestrator(rig, clock, PromoteAfter(rig.journal, clock, seconds=5)).run(_request(rig))

    approved = next(e for e in rig.journal.events() if e.get("status") == "approved")
    assert approved["run"] == state.run_id and approved["gate"] == "canary"
    assert approved["evidence"] == "canary passed"  # the canary gate's own message, as it was shown
    assert (approved["by"], approved["at"], approved["via"]) == ("ops@host", "2027-01-15T08:00:00Z",
                                                                 "meshlift promote")
    assert not rig.journal.approval_path.exists(), "an approval is used once"


def test_nobody_approving_within_the_timeout_rolls_back(rig):
    clock = SimulatedClock()
    state = _timed_orchestrator(rig, clock, None, approval_timeout_s=600).run(_request(rig))

    assert state.phase is Phase.ROLLED_BACK and state.failure["gate"] == "approval"
    assert state.failure["message"] == "Halt advancement: nobody approved within 600s"
    assert 590 <= clock() - 1_800_000_000.0 <= 610


def _pipe(text: str):
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())
    os.close(write_end)
    return os.fdopen(read_end, "r")


def test_an_answer_piped_on_stdin_approves(rig):
    with _pipe("y\n") as stdin:
        state = rig.orchestrator(approval=StdinApproval(stdin)).run(_request(rig))

    assert state.phase is Phase.SUCCEEDED
    approved = next(e for e in rig.journal.events() if e.get("status") == "approved")
    assert approved["via"] == "prompt" and approved["by"].endswith("(prompt)")


def test_a_pipe_that_ends_without_an_answer_rolls_back_and_says_nobody_answered(rig):
    with _pipe("maybe\n") as stdin:
        state = rig.orchestrator(approval=StdinApproval(stdin)).run(_request(rig))

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["message"] == "Halt advancement: the approval input ended without an answer (failing closed)"


def test_a_no_piped_on_stdin_is_the_operators_rejection(rig):
    with _pipe("n\n") as stdin:
        state = rig.orchestrator(approval=StdinApproval(stdin)).run(_request(rig))

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["message"] == "Halt advancement: promotion rejected by the operator"


def test_stdin_that_cannot_answer_is_told_apart_from_a_pipe(tmp_path):
    from rollout.console import stdin_can_answer

    with open(os.devnull) as devnull, _pipe("") as pipe:
        assert not stdin_can_answer(devnull) and stdin_can_answer(pipe)
    assert not stdin_can_answer(io.StringIO("y\n")), "no file descriptor: nothing select() can wait on"


def test_journal_bound_is_far_above_an_hours_wait():
    assert MAX_LOG_BYTES >= 16 * 64 * 1024
