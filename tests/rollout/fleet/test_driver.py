"""The fleet driver's decisions, on the Kubernetes platform over recording engines (shape only;
the same driver on real Envoys is proven in test_fleet_envoy.py)."""

from __future__ import annotations

import pytest

from rollout.errors import UsageError
from rollout.fleet.driver import FleetDriver, exit_code
from rollout.fleet.journal import FleetJournal
from rollout.fleet.view import JsonFleetView
from tests.rollout.fleet.conftest import RecordedStacks, StackGate, fleet_of, stack_config

STACKS = ["dev", "staging", "prodeu", "produs"]


def _driver(fleet, source, gate, **options) -> FleetDriver:
    return FleetDriver(fleet=fleet, fleet_name="test", source=source, view=JsonFleetView(), gate=gate,
                       soak_poll_s=0.01, retry_wait_s=0, **options)


def _ups(source: RecordedStacks, stack: str) -> list[str]:
    return [call["message"] for call in source.engines[stack].named("up")]


def test_rings_upgrade_in_order_and_every_stack_ends_on_the_target(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)
    gate = StackGate()

    state = _driver(three_rings, source, gate).run("1.40.0")

    assert state.phase == "Succeeded" and exit_code(state) == 0
    assert all(record.phase == "Succeeded" for record in state.stacks.values())
    for stack in STACKS:
        assert source.engines[stack].named("set_config")[-1]["meshlift:rollout"]["stage"] == "cleanup"
    events = FleetJournal(source.root).events(state.run_id)
    started = [e["stack"] for e in events if e["event"] == "stack" and e["status"] == "started"]
    assert started[:2] == ["dev", "staging"] and set(started[2:]) == {"prodeu", "produs"}
    soaks = [(e["soaking"], e["stack"]) for e in events if e["event"] == "gate"]
    assert soaks == [("dev", "dev"), ("staging", "dev"), ("staging", "staging"),
                     ("prod", "dev"), ("prod", "staging"), ("prod", "prodeu"), ("prod", "produs")], \
        "each soak re-gates every finished ring, earliest first"


def test_an_invalid_stack_anywhere_stops_the_fleet_before_anything_changes(tmp_path, three_rings):
    skewed = stack_config("produs", **{"meshlift:revisions": [{"version": "1.36.0"}],
                                       "meshlift:tags": {"stable": "1-36-0"}})
    source = RecordedStacks(tmp_path, STACKS, configs={"produs": skewed})

    with pytest.raises(UsageError) as raised:
        _driver(three_rings, source, StackGate()).run("1.40.0")

    assert "nothing changed anywhere" in str(raised.value)
    (detail,) = raised.value.details  # one line per problem, as validate prints them
    assert detail.startswith("stacks/Pulumi.produs.yaml: meshlift:rollout.to: 1.36.0 -> 1.40.0 spans more than 2 minor")
    assert all(engine.named("set_config") == [] and engine.named("up") == [] for engine in source.engines.values())
    assert FleetJournal(source.root).load() is None


def test_a_stack_whose_cluster_fails_the_upgrades_preflight_stops_the_fleet_before_anything_changes(
        tmp_path, three_rings):
    from tests.rollout.doubles import FakeCluster

    source = RecordedStacks(tmp_path, STACKS)
    pinned = FakeCluster()
    pinned.custom_list = [{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                           "plural": "authorizationpolicies",
                           "metadata": {"namespace": "shop", "name": "deny-all", "labels": {"istio.io/rev": "1-39-3"}}}]
    source.clusters["prodeu"] = pinned

    with pytest.raises(UsageError) as raised:
        _driver(three_rings, source, StackGate()).run("1.40.0")

    assert sorted(source.preflighted) == sorted(STACKS), "every stack is checked, as `meshlift upgrade -s` checks it"
    (detail,) = raised.value.details
    assert detail.startswith("stacks/Pulumi.prodeu.yaml: meshlift:pinnedConfig: 1 Istio config object(s) carry "
                             "istio.io/rev=1-39-3: AuthorizationPolicy shop/deny-all"), detail
    assert all(engine.named("set_config") == [] and engine.named("up") == [] for engine in source.engines.values())
    assert FleetJournal(source.root).load() is None


def test_a_failed_stack_is_rolled_back_and_stops_the_line(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)

    state = _driver(three_rings, source, StackGate({("staging", "wave 1")})).run("1.40.0")

    assert state.phase == "Halted" and exit_code(state) == 1
    assert state.halt["ring"] == "staging" and state.halt["stack"] == "staging"
    assert state.stacks["staging"].phase == "RolledBack"
    assert "rollback to update" in _ups(source, "staging")[-1]
    assert [r.status for r in state.rings] == ["passed", "halted", "pending"]
    assert _ups(source, "prodeu") == [] and _ups(source, "produs") == [], "later rings untouched"
    assert state.stacks["prodeu"].phase == "NotStarted"


def test_within_a_ring_no_new_stack_starts_after_one_failed(tmp_path):
    fleet = fleet_of({"name": "prod", "stacks": ["prodeu", "produs"], "maxParallel": 1})
    source = RecordedStacks(tmp_path, ["prodeu", "produs"])

    state = _driver(fleet, source, StackGate({("prodeu", "canary")})).run("1.40.0")

    assert state.stacks["prodeu"].phase == "RolledBack" and state.stacks["produs"].phase == "NotStarted"
    assert _ups(source, "produs") == []


def test_max_parallel_bounds_how_many_stacks_upgrade_at_once(tmp_path):
    stacks = ["a", "b", "c"]
    serial = RecordedStacks(tmp_path / "serial", stacks)
    gate = StackGate(delay_s=0.05)
    _driver(fleet_of({"name": "all", "stacks": stacks, "maxParallel": 1}), serial, gate).run("1.40.0")
    assert gate.max_active == 1

    parallel = RecordedStacks(tmp_path / "parallel", stacks)
    gate = StackGate(delay_s=0.2)
    state = _driver(fleet_of({"name": "all", "stacks": stacks, "maxParallel": 2}), parallel, gate).run("1.40.0")
    assert state.phase == "Succeeded"
    assert gate.max_active == 2


def test_a_finished_ring_failing_its_re_gate_during_a_soak_stops_the_line(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)

    state = _driver(three_rings, source, StackGate({("dev", "soak dev")})).run("1.40.0")

    assert state.phase == "Halted" and state.halt["stack"] == "dev" and state.halt["ring"] == "dev"
    assert "meshlift rollback -s dev" in state.halt["reason"]
    assert state.stacks["dev"].phase == "Succeeded", "a soaked ring is not rolled back behind the operator's back"
    assert _ups(source, "staging") == []


def test_an_interrupted_fleet_resumes_at_the_stack_and_phase_it_stopped(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)
    gate = StackGate(interrupt_on=("staging", "wave 1"))

    with pytest.raises(KeyboardInterrupt):
        _driver(three_rings, source, gate).run("1.40.0")
    stopped = FleetJournal(source.root).load()
    assert stopped.phase == "Running" and [r.status for r in stopped.rings] == ["passed", "upgrading", "pending"]
    dev_ups = len(_ups(source, "dev"))

    state = _driver(three_rings, source, gate).run("1.40.0")

    assert state.run_id == stopped.run_id and state.phase == "Succeeded"
    assert len(_ups(source, "dev")) == dev_ups, "a passed ring is not upgraded again"
    staging_runs = {e["run"] for e in source.journal("staging").events() if e["event"] == "run"}
    assert len(staging_runs) == 1, "the staging stack resumed its own run"
    resumed = [e for e in FleetJournal(source.root).events(state.run_id) if e["event"] == "run"]
    assert resumed[-1]["resumed"] is True and resumed[-1]["ring"] == "staging"


def test_a_different_upgrade_is_refused_while_a_fleet_run_is_unfinished(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)
    with pytest.raises(KeyboardInterrupt):
        _driver(three_rings, source, StackGate(interrupt_on=("dev", "canary"))).run("1.40.0")

    with pytest.raises(UsageError, match="meshlift fleet resume"):
        _driver(three_rings, source, StackGate()).run("1.41.0")


def test_the_same_finished_fleet_upgrade_again_changes_nothing(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)
    first = _driver(three_rings, source, StackGate()).run("1.40.0")
    ups = {stack: len(_ups(source, stack)) for stack in STACKS}

    again = _driver(three_rings, source, StackGate()).run("1.40.0")

    assert again.run_id == first.run_id and again.phase == "Succeeded"
    assert {stack: len(_ups(source, stack)) for stack in STACKS} == ups


def test_an_unfinished_run_is_not_resumed_with_other_rings(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)
    with pytest.raises(KeyboardInterrupt):
        _driver(three_rings, source, StackGate(interrupt_on=("staging", "canary"))).run("1.40.0")
    reordered = fleet_of({"name": "dev", "stacks": ["dev"]}, {"name": "prod", "stacks": ["prodeu", "produs"]},
                         {"name": "staging", "stacks": ["staging"]})
    ups = {stack: len(_ups(source, stack)) for stack in STACKS}

    with pytest.raises(UsageError, match="the fleet file changed"):
        _driver(reordered, source, StackGate()).run("1.40.0")

    assert {stack: len(_ups(source, stack)) for stack in STACKS} == ups


def test_a_stack_another_process_is_driving_stops_the_line_with_exit_2(tmp_path, three_rings):
    source = RecordedStacks(tmp_path, STACKS)

    with source.journal("staging").locked():  # as a `meshlift upgrade -s staging` still running would
        state = _driver(three_rings, source, StackGate()).run("1.40.0")

    assert state.phase == "Halted" and exit_code(state) == 2
    assert state.stacks["staging"].phase == "CouldNotStart"
    assert "another meshlift process is driving this stack" in state.halt["reason"]
    assert _ups(source, "staging") == [] and _ups(source, "prodeu") == []
