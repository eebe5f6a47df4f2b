"""A wave applied in parts (`meshlift:restarts.maxRolling`): one `up` and its rollouts per part, one gate."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.phases import Phase
from tests.components.cluster import live_workload
from tests.rollout.doubles import FakeCluster, ScriptedGate, mesh_config

# Wave 1 is shop's five Deployments, restarted by (namespace, kind, name): a b | c d | web.
SHOP = ["a", "b", "c", "d", "web"]


def _paced_rig(make_rig, *, max_rolling: int | None = 2, gate: ScriptedGate | None = None):
    restarts = {} if max_rolling is None else {"maxRolling": max_rolling}
    rig = make_rig(config=mesh_config(**{"meshlift:restarts": restarts}), gate=gate)
    rig.cluster = FakeCluster(*(live_workload("shop", name, replicas=1) for name in reversed(SHOP)),
                              live_workload("pay", "api", replicas=1))
    return rig


def _trace(rig) -> list[tuple[str, Any]]:
    """What the run did, in order: each config applied (stage, waves, restartedInWave), each rollout wait
    (the workloads waited for) and each gate."""
    trace: list[tuple[str, Any]] = []
    applied = iter(c["meshlift:rollout"] for c in rig.engine.named("set_config") if "meshlift:rollout" in c)
    for kind, data in rig.reporter.events:
        if kind == "apply" and data.get("status") == "started":
            rollout = next(applied)
            trace.append(("apply", (rollout["stage"], rollout["promotedWaves"], rollout.get("restartedInWave"))))
        elif kind == "rollout" and data.get("status") == "waiting":
            trace.append(("wait", data["workloads"]))
        elif kind == "gate" and data.get("status") == "started":
            trace.append(("gate", data["gate"]))
    return trace


def _shop(*names: str) -> list[str]:
    return [f"Deployment shop/{name}" for name in names]


def test_a_wave_is_applied_in_parts_each_rolled_out_before_the_next_and_gated_once_after_the_last(make_rig):
    rig = _paced_rig(make_rig)

    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    assert _trace(rig) == [
        ("apply", ("install", 0, None)),
        ("apply", ("canary", 0, None)), ("gate", "canary"),
        ("apply", ("promote", 1, 2)), ("wait", _shop("a", "b")),
        ("apply", ("promote", 1, 4)), ("wait", _shop("c", "d")),
        ("apply", ("promote", 1, None)), ("wait", _shop("web")), ("gate", "wave 1"),
        ("apply", ("promote", 2, None)), ("wait", ["Deployment pay/api"]), ("gate", "wave 2"),
        ("gate", "verify"),
        ("apply", ("cleanup", 0, None)),
    ]
    assert [up["message"] for up in rig.engine.named("up")][2:5] == [
        "meshlift: promote wave 1/2 (2/5 workloads) 1.39.3 -> 1.40.0",
        "meshlift: promote wave 1/2 (4/5 workloads) 1.39.3 -> 1.40.0",
        "meshlift: promote wave 1/2 1.39.3 -> 1.40.0"]
    assert state.wave_restarted == 0 and state.waves_done == 2


def test_the_journal_and_events_say_which_part_of_how_many_and_how_many_workloads_are_restarted(make_rig):
    rig = _paced_rig(make_rig)

    state = rig.run()

    progress = [(e["status"], e.get("part"), e.get("parts"), e.get("restarted"), e.get("workloads"))
                for e in rig.journal.events(state.run_id) if e["event"] == "wave" and e["wave"] == 1]
    assert progress == [("applied", 1, 3, 2, 5), ("restarted", 1, 3, 2, 5),
                        ("applied", 2, 3, 4, 5), ("restarted", 2, 3, 4, 5),
                        ("applied", 3, 3, 5, 5), ("restarted", 3, 3, 5, 5),
                        ("verified", None, None, None, None)]
    reported = [data for kind, data in rig.reporter.events if kind == "wave" and data["wave"] == 1]
    assert [(d["status"], d.get("part")) for d in reported] == [(p[0], p[1]) for p in progress]
    wave2 = [e for e in rig.journal.events(state.run_id) if e["event"] == "wave" and e["wave"] == 2]
    assert all("part" not in e for e in wave2), "a wave that fits in one part says nothing of parts"


def test_without_max_rolling_a_wave_is_one_apply_as_before(make_rig):
    rig = _paced_rig(make_rig, max_rolling=None)

    rig.run()

    promotes = [step for step in _trace(rig) if step[0] == "apply" and step[1][0] == "promote"]
    assert promotes == [("apply", ("promote", 1, None)), ("apply", ("promote", 2, None))]
    assert ("wait", _shop(*SHOP)) in _trace(rig)


def test_a_part_that_does_not_roll_out_fails_the_wave_before_the_next_part(make_rig):
    rig = _paced_rig(make_rig)
    stuck = rig.cluster.find("shop", "c")

    def stuck_while_promoted(cluster) -> None:  # the rollback's restart back rolls out
        promoted = (rig.engine.config.get("meshlift:rollout") or {}).get("stage") == "promote"
        stuck["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded",
                                          "message": "ReplicaSet has timed out progressing"}] if promoted else []

    rig.cluster.on_poll = stuck_while_promoted

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["gate"] == "wave 1" and "shop/c" in state.failure["message"]
    promotes = [s[1] for s in _trace(rig) if s[0] == "apply" and s[1][0] == "promote"]
    assert promotes == [("promote", 1, 2), ("promote", 1, 4)], "no part after the one that failed"
    assert state.rollback["to_update"] == 2, "back to the install update, as for a whole wave"


def test_a_run_killed_mid_wave_resumes_at_the_part_it_reached_never_an_earlier_one(make_rig):
    rig = _paced_rig(make_rig)

    def kill_during_the_second_part(cluster) -> None:
        if ("wait", _shop("c", "d")) in _trace(rig):  # waiting for the second part's rollouts
            cluster.on_poll = None
            raise KeyboardInterrupt

    rig.cluster.on_poll = kill_during_the_second_part
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    stopped = rig.journal.load()
    assert (stopped.phase, stopped.waves_done, stopped.wave_restarted) == (Phase.PROMOTING, 0, 4)
    before = len(_trace(rig))

    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    assert _trace(rig)[before:before + 4] == [
        ("apply", ("promote", 1, 4)), ("wait", _shop("a", "b", "c", "d")),
        ("apply", ("promote", 1, None)), ("wait", _shop("web")),
    ], "the part it reached is re-applied (declarative), then the rest; never part 1"
    assert [g for _, g in (s for s in _trace(rig) if s[0] == "gate")] == ["canary", "wave 1", "wave 2", "verify"]


def test_a_run_killed_during_a_parts_up_resumes_at_that_part(make_rig):
    rig = _paced_rig(make_rig)
    up = rig.engine.up

    def killed_in_the_fourth_up(**kwargs):  # install, canary, part 1, then part 2
        if rig.engine.ups == 3:
            rig.engine.ups += 1
            raise KeyboardInterrupt
        return up(**kwargs)

    rig.engine.up = killed_in_the_fourth_up
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    assert rig.journal.load().wave_restarted == 4
    before = len(_trace(rig))

    rig.run()

    assert _trace(rig)[before:before + 2] == [("apply", ("promote", 1, 4)), ("wait", _shop("a", "b", "c", "d"))]


def test_a_run_killed_after_the_last_part_re_applies_only_the_whole_wave_and_gates_it(make_rig):
    rig = _paced_rig(make_rig, gate=ScriptedGate(interrupt_on="wave 1"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    assert rig.journal.load().wave_restarted == 5
    before = len(_trace(rig))

    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    assert _trace(rig)[before:before + 3] == [
        ("apply", ("promote", 1, None)), ("wait", _shop(*SHOP)), ("gate", "wave 1")]


def test_a_lowered_max_rolling_on_resume_still_goes_on_from_the_part_reached(make_rig):
    rig = _paced_rig(make_rig, max_rolling=3)

    def kill_after_the_first_part(cluster) -> None:
        if (rig.engine.config.get("meshlift:rollout") or {}).get("restartedInWave") == 3:
            cluster.on_poll = None
            raise KeyboardInterrupt

    rig.cluster.on_poll = kill_after_the_first_part
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    rig.config["meshlift:restarts"] = {"maxRolling": 1}
    before = len(_trace(rig))

    rig.run()

    applied = [s[1][2] for s in _trace(rig)[before:] if s[0] == "apply" and s[1][:2] == ("promote", 1)]
    assert applied == [3, 4, None], "3 workloads were restarted: no part restarts fewer"


def test_the_gate_after_the_last_part_failing_rolls_the_whole_wave_back_to_install(make_rig):
    rig = _paced_rig(make_rig, gate=ScriptedGate({"wave 1": "failed"}))

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK and state.rollback["to_update"] == 2
    assert rig.engine.named("set_config")[-1]["meshlift:rollout"]["stage"] == "install"


def test_a_canaried_workload_changed_during_the_canary_is_reported_once_not_once_per_part(make_rig):
    rig = _paced_rig(make_rig)
    web = rig.cluster.find("shop", "web")

    def deployed_during_the_canary(cluster) -> None:
        if (rig.engine.config.get("meshlift:rollout") or {}).get("stage") == "promote":
            web["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:2.15.0"

    rig.cluster.on_poll = deployed_during_the_canary
    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert len(warnings) == 1 and "Deployment shop/web changed during the canary stage" in warnings[0]


def test_a_wave_applied_whole_before_max_rolling_was_set_is_not_split_on_resume(make_rig):
    rig = _paced_rig(make_rig, max_rolling=None, gate=ScriptedGate(interrupt_on="wave 1"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    stopped = rig.journal.load()
    stopped.wave_restarted = 0  # as a run recorded before parts existed
    rig.journal.save(stopped)
    rig.config["meshlift:restarts"] = {"maxRolling": 2}
    before = len(_trace(rig))

    rig.run()

    assert _trace(rig)[before:before + 3] == [("apply", ("promote", 1, None)), ("wait", _shop(*SHOP)),
                                              ("gate", "wave 1")], "never part 1: it would restart c, d, web back"
