"""The stage machine driving the Kubernetes platform over a recording Automation API double."""

from __future__ import annotations

import pytest

from rollout.phases import Phase
from tests.rollout.doubles import ScriptedGate


def _stages(engine) -> list[tuple[str, int]]:
    return [(c["meshlift:rollout"]["stage"], c["meshlift:rollout"]["promotedWaves"])
            for c in engine.named("set_config") if "meshlift:rollout" in c]


def test_healthy_upgrade_sets_config_and_runs_up_once_per_stage_then_succeeds(rig):
    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    assert _stages(rig.engine) == [("install", 0), ("canary", 0), ("promote", 1), ("promote", 2), ("cleanup", 0)]
    calls = [name for name, _ in rig.engine.calls if name in ("set_config", "up")]
    assert calls == ["set_config", "up"] * 5, "each stage is exactly: set config, then up"
    first = rig.engine.named("set_config")[0]
    assert first["meshlift:revisions"] == [{"version": "1.39.3"}, {"version": "1.40.0"}]
    assert first["meshlift:rollout"] == {"from": "1.39.3", "to": "1.40.0", "stage": "install", "promotedWaves": 0}
    assert all(up["env"] == ["MESHLIFT_GATED"] for up in rig.engine.named("up"))
    assert rig.reporter.phases() == ["Installing", "CanaryVerifying", "Promoting", "Promoting", "Verifying",
                                     "CleaningUp", "Succeeded"]


def test_gates_judge_canaries_then_each_wave_against_the_rest_then_everything(rig):
    rig.run()

    assert rig.gate.calls == [
        ("canary", ["shop/web-canary"], ["shop/web"]),
        ("wave 1", ["shop/web"], ["pay/api"]),
        ("wave 2", ["shop/web", "pay/api"], []),
        ("verify", ["shop/web", "pay/api"], []),
    ]


def test_canary_gate_failure_reapplies_the_install_update_from_history(make_rig):
    rig = make_rig(gate=ScriptedGate({"canary": "failed"}))

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["gate"] == "canary"
    assert "success rate" in state.failure["message"]
    # updates: 1 initial, 2 install, 3 canary (rejected) -> rollback re-applies 2, recorded as update 4
    assert state.rollback["to_update"] == 2 and state.rollback["update"] == 4
    rollback_config = rig.engine.named("set_config")[-1]
    assert rollback_config["meshlift:rollout"]["stage"] == "install"
    assert rig.engine.calls[-1][0] == "up" and "rollback to update 2" in rig.engine.calls[-1][1]["message"]
    assert rig.reporter.phases()[-2:] == ["RollingBack", "RolledBack"]


def test_second_wave_failure_rolls_back_past_the_first_wave_to_a_single_version_state(make_rig):
    rig = make_rig(gate=ScriptedGate({"wave 2": "failed"}))

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK and state.failure["gate"] == "wave 2"
    assert state.waves_done == 1
    assert state.rollback["to_update"] == 2, "the install update: no workload on the new revision"


def test_failed_up_rolls_back_and_names_the_apply(make_rig):
    rig = make_rig()
    rig.engine.fail_up_on = {3, 4}  # promote wave 1, twice (the orchestrator retries once)

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["gate"] == "apply"
    assert "update" in state.failure["message"]


def test_rollback_that_fails_ends_failed(make_rig):
    rig = make_rig(gate=ScriptedGate({"canary": "failed"}))
    rig.engine.fail_up_on = {3, 4, 5}  # every rollback attempt's up fails

    state = rig.run()

    assert state.phase is Phase.FAILED
    assert "failed" in state.rollback["error"]


def test_inconclusive_gate_fails_closed(make_rig):
    rig = make_rig(gate=ScriptedGate({"verify": "inconclusive"}))

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK and state.failure["gate"] == "verify"


def test_repeating_a_succeeded_upgrade_changes_nothing(rig):
    rig.run()
    calls_before = len(rig.engine.calls)

    again = rig.run()

    assert again.phase is Phase.SUCCEEDED
    assert [c for c, _ in rig.engine.calls[calls_before:] if c in ("set_config", "up")] == []


def test_interrupted_run_resumes_at_the_wave_where_it_stopped(make_rig):
    rig = make_rig(gate=ScriptedGate(interrupt_on="wave 2"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    assert rig.journal.load().phase is Phase.PROMOTING and rig.journal.load().waves_done == 1
    stages_before = _stages(rig.engine)

    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    resumed = _stages(rig.engine)[len(stages_before):]
    assert resumed == [("promote", 2), ("cleanup", 0)], "wave 2 is re-applied, nothing before it"
    assert [c[0] for c in rig.gate.calls] == ["canary", "wave 1", "wave 2", "wave 2", "verify"]


def test_a_different_upgrade_while_one_is_in_progress_is_refused(make_rig):
    from rollout.errors import UsageError

    rig = make_rig(gate=ScriptedGate(interrupt_on="canary"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    with pytest.raises(UsageError, match="in phase CanaryVerifying"):
        rig.run("1.41.0")


def test_a_rehearsal_with_other_parameters_abandons_the_unfinished_one_and_starts_fresh(make_rig):
    rig = make_rig(gate=ScriptedGate(interrupt_on="canary"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    old = rig.journal.load()
    resets = []
    request = rig.request("1.40.0")
    request.params = {"to": "1.40.0", "fault": "5xx"}
    request.replace_unfinished, request.on_new_run = True, lambda: resets.append(1)

    state = rig.orchestrator().run(request)

    assert state.run_id != old.run_id and state.phase is Phase.SUCCEEDED
    assert resets == [1]
    assert [e["event"] for e in rig.journal.events(old.run_id)][-1] == "abandoned"
    started = next(data for kind, data in rig.reporter.events if kind == "run" and data["run"] == state.run_id)
    assert started["replaced"] == {"run": old.run_id, "params": old.params, "phase": "CanaryVerifying"}


def test_the_view_says_which_interrupted_run_a_new_one_gave_up():
    import io

    from rich.console import Console

    from rollout.console import LiveReporter

    buffer = io.StringIO()
    reporter = LiveReporter(title="t", steps=["install"], console=Console(file=buffer, width=300))
    reporter.event("run", {"run": "new1", "resumed": False,
                           "replaced": {"run": "old1", "params": {"to": "1.40.0"}, "phase": "Promoting"}})
    text = buffer.getvalue()
    assert "gave up the interrupted run old1 (to 1.40.0, at Promoting)" in text and "run new1 started" in text


def test_an_upgrade_the_stack_config_records_as_cleaned_up_is_not_run_again(make_rig):
    from rollout.orchestrator import RunRequest
    from rollout.stages import upgrade_target
    from tests.rollout.doubles import mesh_config

    finished = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
                              "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "cleanup"}})
    rig = make_rig(config=finished)
    request = RunRequest(command="upgrade", params={"to": "1.40.0"}, target=upgrade_target(finished, "1.40.0"),
                         base_config=finished)

    state = rig.orchestrator().run(request)

    assert state.phase is Phase.SUCCEEDED
    assert rig.engine.named("set_config") == [] and rig.engine.named("up") == []


def test_gateways_are_gated_canary_release_first_then_the_upgraded_primary():
    from meshmodel.plan import plan_for
    from meshmodel.spec import Stage
    from rollout.platforms.base import GateScope
    from rollout.platforms.scope import selectors_for
    from rollout.stages import spec_at, upgrade_target
    from tests.rollout.doubles import mesh_config

    config = mesh_config(**{"meshlift:gateways": [{"name": "istio-ingressgateway", "namespace": "istio-ingress",
                                                   "revision": "stable"}]})
    spec = upgrade_target(config, "1.40.0").spec

    canary = [s for s in selectors_for(plan_for(spec_at(spec, Stage.CANARY)), GateScope("canary"))
              if s.namespace == "istio-ingress"]
    promoted = [s for s in selectors_for(plan_for(spec_at(spec, Stage.PROMOTE, 1)), GateScope("wave", (1,)))
                if s.namespace == "istio-ingress"]

    assert [(s.role, s.labels["istio.io/rev"], s.expected_version) for s in canary] == [
        ("canary", "1-40-0", "1.40.0"), ("baseline", "stable", "1.39.3")]
    assert canary[0].label_selector == "app=istio-ingressgateway,istio=ingressgateway,istio.io/rev=1-40-0"
    assert [(s.role, s.expected_version) for s in promoted] == [("canary", "1.40.0")]


def test_a_rollback_that_leaves_the_mesh_unhealthy_is_a_failed_rollback(make_rig):
    rig = make_rig(gate=ScriptedGate({"canary": "failed", "rollback": "failed"}))

    state = rig.run()

    assert state.phase is Phase.FAILED
    assert state.rollback["to_update"] == 2
    assert "unhealthy after re-applying update 2" in state.rollback["error"]
    assert rig.gate.calls[-1] == ("rollback", ["shop/web", "pay/api"], [])


def test_gates_read_the_declared_baseline_sample_and_journal_what_was_sampled(make_rig):
    from rollout.platforms.kubernetes import KubernetesPlatform
    from tests.rollout.doubles import fake_discovery, mesh_config

    config = mesh_config(**{"meshlift:gates": {"window": "2s", "interval": "100ms", "consecutivePasses": 2,
                                               "baselinePodsPerWorkload": 3}})
    rig = make_rig(config=config)
    asked: list[tuple[str, str, int | None]] = []

    class Discovery:
        sampled: list = []

        def __call__(self, selectors):
            asked.extend((s.name, s.role, s.sample) for s in selectors)
            from checks.sampling import Sampled
            self.sampled = [Sampled(f"{s.namespace}/{s.name}", s.role, ("p-1",), 5) for s in selectors]
            return fake_discovery(selectors)

    orchestrator = rig.orchestrator()
    orchestrator.platform = KubernetesPlatform(rig.engine, discover=Discovery(), live=rig.cluster)
    state = orchestrator.run(rig.request())

    assert state.phase is Phase.SUCCEEDED
    assert ("web", "baseline", 3) in asked and ("api", "baseline", 3) in asked
    assert all(sample is None for _, role, sample in asked if role == "canary")
    started = [data for kind, data in rig.reporter.events if kind == "gate" and data.get("status") == "started"]
    assert started[0]["sampled"][0] == {"workload": "shop/web-canary", "role": "canary", "pods": ["p-1"], "of": 5}
