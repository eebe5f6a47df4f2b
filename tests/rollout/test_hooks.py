"""The promotion hook a plain `pulumi up` runs: same gate as the orchestrator, fail closed."""

from __future__ import annotations

import asyncio

import pytest

from meshmodel.spec import Stage
from meshmodel.spec_check import load_spec
from rollout.hooks import GateBlocked, PromotionGate, gate_hooks, hook_scope
from rollout.inventory import INVENTORY_KEY, inventory_of
from rollout.stages import rollout_config, upgrade_target
from tests.rollout.doubles import FakeCluster, ScriptedGate, fake_discovery, mesh_config


def _spec(stage: Stage, waves: int = 0):
    """The stack config as the last `meshlift upgrade` left it: with the inventory it recorded."""
    target = upgrade_target(mesh_config(), "1.40.0")
    inventory = inventory_of(["shop", "pay"], {ns: FakeCluster().workloads(ns) for ns in ("shop", "pay")})
    return load_spec({**mesh_config(), **target.extra, INVENTORY_KEY: inventory,
                      "meshlift:rollout": rollout_config(target.spec.rollout, stage, waves)})


def _run(hook, args=None):
    outcome = hook(args)
    if outcome is not None:
        asyncio.run(outcome)


def test_no_gate_before_promotion():
    assert hook_scope(_spec(Stage.INSTALL)) is None
    assert gate_hooks(_spec(Stage.CANARY)) is None


def test_first_wave_is_guarded_by_the_canary_gate_and_later_waves_by_the_earlier_ones():
    assert hook_scope(_spec(Stage.PROMOTE, 1))[1].kind == "canary"
    spec, scope = hook_scope(_spec(Stage.PROMOTE, 2))
    assert (scope.kind, scope.waves) == ("wave", (1,))
    assert hook_scope(_spec(Stage.CLEANUP))[1].kind == "verify"


def test_binding_runs_the_hook_before_create_and_update():
    binding = gate_hooks(_spec(Stage.PROMOTE, 1), gate=ScriptedGate(), discover=fake_discovery)
    assert binding.before_create == binding.before_update and len(binding.before_create) == 1
    assert binding.before_delete is None


def test_passing_gate_lets_the_update_through_and_judges_only_once(monkeypatch):
    monkeypatch.delenv("MESHLIFT_GATED", raising=False)
    gate = ScriptedGate()
    hook = PromotionGate(*hook_scope(_spec(Stage.PROMOTE, 1)), gate=gate, discover=fake_discovery)
    _run(hook)
    _run(hook)
    assert gate.calls == [("canary", ["shop/web-canary"], ["shop/web"])]


def test_failing_gate_blocks_the_resource_with_the_halt_message(monkeypatch):
    monkeypatch.delenv("MESHLIFT_GATED", raising=False)
    hook = PromotionGate(*hook_scope(_spec(Stage.PROMOTE, 1)), gate=ScriptedGate({"canary": "failed"}),
                         discover=fake_discovery)
    with pytest.raises(GateBlocked, match="Halt canary advancement: success rate"):
        _run(hook)


def test_an_update_that_only_takes_restarts_back_is_not_gated_but_one_that_adds_or_moves_any_is(monkeypatch):
    from pulumi import ResourceHookArgs

    monkeypatch.delenv("MESHLIFT_GATED", raising=False)
    gate = ScriptedGate({"canary": "failed"})
    hook = PromotionGate(*hook_scope(_spec(Stage.PROMOTE, 1)), gate=gate, discover=fake_discovery)
    old = {"namespace": "shop", "restarts": {"Deployment/web": "1-40-0", "Deployment/cart": "1-40-0"}}

    def update(restarts):
        return ResourceHookArgs(urn="urn:shop-restarts", id="shop", name="shop-restarts", type="t",
                                old_inputs=old, old_outputs={**old, "missing": []},
                                new_inputs={**old, "restarts": restarts})

    _run(hook, update({"Deployment/web": "1-40-0"}))  # a rollback to wave 1 takes cart back
    _run(hook, update({}))
    assert gate.calls == []
    for restarts in ({"Deployment/web": "1-40-0", "Deployment/pay": "1-40-0"}, {"Deployment/web": "1-41-0"}):
        with pytest.raises(GateBlocked):
            _run(hook, update(restarts))


@pytest.mark.parametrize("outcome", ["inconclusive", "error", "no targets"])
def test_gate_fails_closed(monkeypatch, outcome):
    monkeypatch.delenv("MESHLIFT_GATED", raising=False)
    gate = ScriptedGate({"canary": "inconclusive"}) if outcome == "inconclusive" else ScriptedGate()

    def broken(_selectors):
        raise ConnectionError("kube-apiserver unreachable")

    discover = {"error": broken, "no targets": lambda _s: []}.get(outcome, fake_discovery)
    hook = PromotionGate(*hook_scope(_spec(Stage.PROMOTE, 1)), gate=gate, discover=discover)
    with pytest.raises(GateBlocked):
        _run(hook)


def test_hook_stands_down_when_the_orchestrator_already_gated(monkeypatch):
    monkeypatch.setenv("MESHLIFT_GATED", "1234")
    gate = ScriptedGate({"canary": "failed"})
    hook = PromotionGate(*hook_scope(_spec(Stage.PROMOTE, 1)), gate=gate, discover=fake_discovery)
    _run(hook)
    assert gate.calls == []
