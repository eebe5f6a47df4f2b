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


def test_a_torn_last_line_is_skipped_and_the_next_event_starts_a_line_of_its_own(tmp_path):
    journal = Journal(tmp_path)
    state = _state()
    journal.append(state, "first")
    with open(journal.log_path, "a") as handle:
        handle.write('{"ts": 1, "run": "x", "ev')  # a crash mid-write
    assert [e["event"] for e in journal.events()] == ["first"]

    journal.append(state, "after-the-crash")

    assert [e["event"] for e in journal.events()] == ["first", "after-the-crash"]
    for line in journal.log_path.read_text().splitlines()[-1:]:
        assert json.loads(line)["event"] == "after-the-crash"


def test_the_journal_rotates_so_it_never_grows_past_two_generations(tmp_path, monkeypatch):
    monkeypatch.setattr("rollout.journal.MAX_LOG_BYTES", 4096)
    journal = Journal(tmp_path)
    state = _state()
    for index in range(500):
        journal.append(state, "gate", index=index, message="x" * 40)
    sizes = journal.log_path.stat().st_size + journal.rotated_log_path.stat().st_size
    assert sizes <= 2 * 4096
    kept = [e["index"] for e in journal.events(state.run_id)]
    assert kept == sorted(kept) and kept[-1] == 499, "the newest events are kept, in order"


def test_an_unreadable_state_file_is_a_usage_error_naming_it(tmp_path):
    from rollout.errors import StateUnreadable

    journal = Journal(tmp_path)
    journal.state_path.write_text('{"run_id": ')
    with pytest.raises(StateUnreadable, match="run.json is unreadable"):
        journal.load()
