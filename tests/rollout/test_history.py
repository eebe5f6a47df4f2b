"""Which stack update a rollback re-applies."""

from __future__ import annotations

import json

import pytest

from rollout.errors import NoRollbackTarget
from rollout.history import HistoryEntry, rollback_target


def _entry(version, stage=None, waves=0, result="succeeded", kind="update"):
    config = {"meshlift:revisions": json.dumps([{"version": "1.39.3"}] + ([{"version": "1.40.0"}] if stage else []))}
    if stage:
        config["meshlift:rollout"] = json.dumps({"from": "1.39.3", "to": "1.40.0", "stage": stage,
                                                 "promotedWaves": waves})
    return HistoryEntry(version=version, kind=kind, result=result, config=config)


HISTORY = [
    _entry(1),  # the mesh before the upgrade
    _entry(2, "install"),
    _entry(3, "canary"),
    _entry(4, "promote", 1),
    _entry(5, "promote", 2, result="failed"),
    _entry(6, kind="refresh"),
]


def test_automatic_rollback_picks_the_newest_good_single_version_update_before_the_rejected_one():
    assert rollback_target(HISTORY, before=4).version == 2
    assert rollback_target(HISTORY, before=2).version == 1


def test_promote_and_canary_updates_are_never_automatic_targets():
    chosen = rollback_target(HISTORY)
    assert chosen.version == 2 and chosen.stage.value == "install"


def test_by_update_number():
    assert rollback_target(HISTORY, to="3").version == 3
    with pytest.raises(NoRollbackTarget, match="update 5 is a update that failed"):
        rollback_target(HISTORY, to="5")
    with pytest.raises(NoRollbackTarget, match="not in the stack's history"):
        rollback_target(HISTORY, to="42")


def test_by_version_picks_the_newest_update_whose_data_plane_ran_only_that_version():
    cleaned = _entry(7, "cleanup")
    assert rollback_target([*HISTORY, cleaned], to="1.40.0").version == 7
    assert rollback_target([*HISTORY, cleaned], to="1.39.3").version == 2
    with pytest.raises(NoRollbackTarget, match="1.38.0"):
        rollback_target(HISTORY, to="1.38.0")


def test_nothing_to_go_back_to():
    with pytest.raises(NoRollbackTarget):
        rollback_target([_entry(1, "canary")])


def test_reapplied_config_decodes_structured_values():
    config = _entry(4, "promote", 1).decoded_config()
    assert config["meshlift:rollout"]["promotedWaves"] == 1
    assert config["meshlift:revisions"][1] == {"version": "1.40.0"}


def test_history_names_the_data_plane_of_each_update_and_never_calls_an_unknown_one_mixed():
    namespaces = json.dumps([{"name": "shop", "wave": 1}, {"name": "pay", "wave": 2}])
    shown = {}
    for number, stage, waves in [(2, "install", 0), (3, "canary", 0), (4, "promote", 1), (5, "promote", 2),
                                 (6, "cleanup", 0)]:
        entry = _entry(number, stage, waves)
        entry.config["meshlift:namespaces"] = namespaces
        shown[number] = entry.data_plane
    assert shown == {2: "1.39.3", 3: "1.39.3 + 1.40.0", 4: "1.39.3 + 1.40.0", 5: "1.40.0", 6: "1.40.0"}
    unknown = HistoryEntry(version=7, kind="update", result="succeeded", config={})
    assert unknown.data_plane == "?"


def test_update_times_are_written_as_the_json_documents_promise():
    from datetime import datetime, timedelta, timezone

    from rollout.schemas import rfc3339_of

    assert rfc3339_of(datetime(2026, 12, 6, 5, 24, 32, 877465)) == "2026-12-06T05:24:32.877Z"
    assert rfc3339_of(datetime(2026, 12, 6, 6, 24, 32, 877465, tzinfo=timezone(timedelta(hours=1)))) == \
        "2026-12-06T05:24:32.877Z"
    assert rfc3339_of(None) is None
