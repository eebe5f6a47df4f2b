"""A wave in parts outside the orchestrator's loop: `meshlift plan`, the gate hook, the stack history."""

from __future__ import annotations

import json

import pytest
import yaml

from meshmodel.plan import plan_for
from meshmodel.spec import Stage
from meshmodel.spec_check import load_spec
from rollout import cli
from rollout.entry import run
from rollout.history import HistoryEntry, rollback_target
from rollout.hooks import hook_scope
from rollout.stages import planned_stages, rollout_config, upgrade_target
from tests.rollout.doubles import mesh_config
from tests.rollout.test_cli import project  # noqa: F401 (the fixture)
from tests.rollout.test_orchestrator_pacing import SHOP, _paced_rig

PACED = {"meshlift:restarts": {"maxRolling": 2}}
INVENTORY = {"shop": [{"kind": "Deployment", "name": name, "selector": {"app": name}} for name in SHOP],
             "pay": [{"kind": "Deployment", "name": "api", "selector": {"app": "api"}}]}


def _target(**overrides):
    config = mesh_config(**{**PACED, "meshlift:inventory": INVENTORY, **overrides})
    return config, upgrade_target(config, "1.40.0")


def _spec(stage: Stage, waves: int = 0, restarted: int | None = None):
    config, target = _target()
    return load_spec({**config, **target.extra,
                      "meshlift:rollout": rollout_config(target.spec.rollout, stage, waves, restarted)})


def test_plan_shows_each_part_of_a_wave_with_its_restarts_and_the_gate_after_the_last():
    _, target = _target()

    stages = planned_stages(target.spec)

    promote = [(s.label, s.changes, s.gate) for s in stages if s.stage is Stage.PROMOTE]
    restart = "restart shop/{} (wave 1): 1-39-3 -> 1-40-0"
    assert [label for label, _, _ in promote] == [
        "promote wave 1/2 part 1/3", "promote wave 1/2 part 2/3", "promote wave 1/2 part 3/3", "promote wave 2/2"]
    assert [restart.format(n) for n in ("a", "b")] == [c for c in promote[0][1] if c.startswith("restart")]
    assert promote[1][1] == [restart.format(n) for n in ("c", "d")]
    assert promote[2][1] == [restart.format("web")]
    assert [gate for _, _, gate in promote] == [None, None, "wave 1 (waves 1..1 vs. the rest)",
                                                "wave 2 (waves 1..2 vs. the rest) then verify (everything)"]


def test_plan_without_max_rolling_has_one_stage_per_wave():
    _, target = _target(**{"meshlift:restarts": {}})

    labels = [s.label for s in planned_stages(target.spec) if s.stage is Stage.PROMOTE]

    assert labels == ["promote wave 1/2", "promote wave 2/2"]


def test_meshlift_plan_lists_the_parts_of_each_wave(project, capsys):  # noqa: F811
    config = mesh_config(**{**PACED, "meshlift:inventory": INVENTORY})
    (project.path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))

    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0

    stages = json.loads(capsys.readouterr().out)["stages"]
    assert [s["stage"] for s in stages if s["stage"].startswith("promote")] == [
        "promote wave 1/2 part 1/3", "promote wave 1/2 part 2/3", "promote wave 1/2 part 3/3", "promote wave 2/2"]
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0"]) == 0
    assert "part 2/3" in capsys.readouterr().out


def test_a_bad_max_rolling_is_refused_with_its_key_path_and_exit_2(project, capsys):  # noqa: F811
    (project.path / "stacks" / "Pulumi.dev.yaml").write_text(
        yaml.safe_dump({"config": mesh_config(**{"meshlift:restarts": {"maxRolling": 0}})}))

    assert run(cli.app, ["validate", "-s", "dev"]) == 2

    err = capsys.readouterr().err
    assert "meshlift:restarts.maxRolling" in err and "greater than 0" in err and "Traceback" not in err


def test_every_part_of_a_wave_is_guarded_by_the_gate_of_its_first_part():
    for restarted in (2, 4):
        assert hook_scope(_spec(Stage.PROMOTE, 1, restarted))[1].kind == "canary"
    first_spec, first_scope = hook_scope(_spec(Stage.PROMOTE, 2))
    part_spec, part_scope = hook_scope(_spec(Stage.PROMOTE, 2, 1))
    assert (part_scope.kind, part_scope.waves) == (first_scope.kind, first_scope.waves) == ("wave", (1,))
    assert part_spec.rollout.restarted_in_wave is None, "the judged waves 1..n-1 are whole"
    assert plan_for(part_spec) == plan_for(first_spec)


def test_a_stack_file_left_mid_wave_still_gives_the_upgrade_to_resume():
    config, target = _target()
    left = {**config, **target.extra,
            "meshlift:rollout": rollout_config(target.spec.rollout, Stage.PROMOTE, 1, 2)}

    again = upgrade_target(left, "1.40.0")

    assert again.spec.rollout.stage is Stage.INSTALL and again.spec.rollout.restarted_in_wave is None
    assert "restartedInWave" not in again.change(Stage.PROMOTE, 1).config["meshlift:rollout"]


def _history_entry(version: int, restarted: int | None, waves: int = 2) -> HistoryEntry:
    rollout = {"from": "1.39.3", "to": "1.40.0", "stage": "promote", "promotedWaves": waves,
               **({"restartedInWave": restarted} if restarted else {})}
    namespaces = [{"name": "shop", "wave": 1}, {"name": "pay", "wave": 2}]
    return HistoryEntry(version=version, kind="update", result="succeeded",
                        config={"meshlift:rollout": json.dumps(rollout), "meshlift:namespaces": json.dumps(namespaces)})


def test_history_says_a_part_of_the_last_wave_still_runs_both_versions():
    part, whole = _history_entry(8, 3), _history_entry(9, None)

    assert (part.data_plane, whole.data_plane) == ("1.39.3 + 1.40.0", "1.40.0")
    assert part.describe() == "1.39.3 -> 1.40.0 stage promote waves 2 (first 3 workload(s) of wave 2)"
    assert part.data_plane_version is None, "never an automatic rollback target, nor one for --to <version>"


def test_automatic_rollback_after_a_wave_in_parts_goes_back_to_install(make_rig):
    from tests.rollout.doubles import ScriptedGate

    rig = _paced_rig(make_rig, gate=ScriptedGate({"wave 2": "failed"}))

    state = rig.run()

    parts = [e for e in rig.engine.entries if "restartedInWave" in (e.rollout or {})]
    assert [e.rollout["restartedInWave"] for e in parts] == [2, 4]
    assert rollback_target(rig.engine.entries, before=state.failure["update"]).stage is Stage.INSTALL
    assert state.rollback["to_update"] == 2


def test_rolling_back_by_hand_to_a_part_re_applies_exactly_that_part(make_rig):
    rig = _paced_rig(make_rig)
    rig.run()
    part = next(e for e in rig.engine.entries if (e.rollout or {}).get("restartedInWave") == 4)

    rig.orchestrator().rollback_by_hand(to=str(part.version), base_config=rig.config)

    reapplied = rig.engine.named("set_config")[-1]
    assert reapplied["meshlift:rollout"] == {"from": "1.39.3", "to": "1.40.0", "stage": "promote",
                                             "promotedWaves": 1, "restartedInWave": 4}
    restarted = {w.name for w in plan_for(load_spec({**rig.config, **reapplied})).workloads
                 if w.restart_revision == "1-40-0"}
    assert restarted == {"a", "b", "c", "d"}, "web, the last part of wave 1, and wave 2 restart back"



def test_the_live_view_says_which_part_of_a_wave_is_rolling_out():
    from tests.rollout.test_console_resume import _reporter

    reporter, _ = _reporter()
    reporter.event("wave", {"wave": 1, "of": 2, "status": "applied", "part": 2, "parts": 3, "restarted": 4,
                            "workloads": 5})
    assert reporter.steps["wave 1"] == ["running", "part 2/3: 4 of 5 workloads restarting"]
    reporter.event("wave", {"wave": 1, "of": 2, "status": "restarted", "part": 2, "parts": 3, "restarted": 4,
                            "workloads": 5})
    assert reporter.steps["wave 1"] == ["running", "part 2/3: 4 of 5 workloads rolled out"]


def test_status_says_how_far_an_interrupted_wave_got(make_rig, capsys):
    from rollout.console import print_status
    from tests.rollout.doubles import ScriptedGate

    rig = _paced_rig(make_rig, gate=ScriptedGate(interrupt_on="wave 1"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()

    print_status(rig.journal.load(), [])

    assert "is Promoting; waves 0/2 (wave 1: 5 workload(s) restarted)" in capsys.readouterr().out
