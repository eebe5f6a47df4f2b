from __future__ import annotations

import pytest

from rollout.phases import FORWARD, TRANSITIONS, IllegalTransition, Phase, check_transition, next_forward


def test_happy_path_skips_approval_unless_required():
    assert next_forward(Phase.CANARY_VERIFYING, require_approval=False) is Phase.PROMOTING
    assert next_forward(Phase.CANARY_VERIFYING, require_approval=True) is Phase.WAITING_APPROVAL


def test_every_phase_that_changes_the_mesh_can_roll_back_and_terminal_phases_cannot_move():
    for phase in FORWARD[1:-1]:
        assert Phase.ROLLING_BACK in TRANSITIONS[phase], phase
    for phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED):
        assert phase.terminal and TRANSITIONS[phase] == frozenset()


def test_rolling_back_ends_rolled_back_or_failed_only():
    assert TRANSITIONS[Phase.ROLLING_BACK] == {Phase.ROLLED_BACK, Phase.FAILED}


def test_illegal_edges_are_refused():
    with pytest.raises(IllegalTransition, match="Planned -> Promoting"):
        check_transition(Phase.PLANNED, Phase.PROMOTING)
    with pytest.raises(IllegalTransition, match="terminal"):
        check_transition(Phase.SUCCEEDED, Phase.ROLLING_BACK)


def test_exit_codes_of_terminal_phases():
    assert [p.exit_code for p in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED)] == [0, 1, 3]
    assert Phase.PROMOTING.exit_code is None
