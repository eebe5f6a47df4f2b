from __future__ import annotations

import json

import pytest

from rollout.errors import RolloutBusy
from rollout.journal import Journal, RunState
from rollout.phases import IllegalTransition, Phase


def _state() -> RunState:
    return RunState.new(stack="dev", command="upgrade", params={"to": "1.40.0"}, waves_total=2)


def test_state_survives_a_new_process_and_every_transition_is_logged(tmp_path):
    journal = Journal(tmp_path / ".meshlift" / "dev")
    state = _state()
    journal.save(state)
    journal.transition(state, Phase.INSTALLING, baseline_update=7)
    state.waves_done = 1
    journal.save(state)

    loaded = Journal(tmp_path / ".meshlift" / "dev").load()

    assert loaded.phase is Phase.INSTALLING and loaded.waves_done == 1 and loaded.run_id == state.run_id
    (event,) = journal.events(state.run_id)
    assert (event["event"], event["from"], event["to"], event["baseline_update"]) == \
        ("phase", "Planned", "Installing", 7)


def test_state_file_is_replaced_whole_never_written_in_place(tmp_path):
    journal = Journal(tmp_path)
    state = _state()
    journal.save(state)
    inode = journal.state_path.stat().st_ino
    journal.transition(state, Phase.INSTALLING)
    assert journal.state_path.stat().st_ino != inode
    assert not list(tmp_path.glob(".run.json.*.tmp"))


def test_a_torn_last_line_from_a_crash_is_skipped(tmp_path):
    journal = Journal(tmp_path)
    state = _state()
    journal.append(state, "apply", stage="install")
    with open(journal.log_path, "a") as handle:
        handle.write('{"ts": 1, "run": "')  # the process died mid-write
    assert [e["event"] for e in journal.events()] == ["apply"]


def test_illegal_transition_is_refused_and_nothing_is_persisted(tmp_path):
    journal = Journal(tmp_path)
    state = _state()
    journal.save(state)
    with pytest.raises(IllegalTransition):
        journal.transition(state, Phase.SUCCEEDED)
    assert json.loads(journal.state_path.read_text())["phase"] == "Planned"


def test_only_one_process_drives_a_stack(tmp_path):
    journal = Journal(tmp_path)
    with journal.locked():
        with pytest.raises(RolloutBusy):
            with Journal(tmp_path).locked():
                pass
    with journal.locked():  # released when the holder is done
        pass


def test_approval_is_for_one_run_only(tmp_path):
    journal = Journal(tmp_path)
    journal.approve({"run": "run-a", "gate": "canary", "by": "me"})
    assert journal.approval_for("run-a")["by"] == "me" and journal.approval_for("run-b") is None
