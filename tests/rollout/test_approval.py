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
