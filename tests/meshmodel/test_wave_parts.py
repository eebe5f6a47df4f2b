"""A wave restarted in parts: `restarts.maxRolling`, `rollout.restartedInWave`, and what the plan restarts."""

from __future__ import annotations

import pytest

from meshmodel.plan import plan_for, wave_restart_order
from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from tests.rollout.doubles import mesh_config

# Wave 1: shop and cart, listed out of order; wave 2: pay. shop/batch is OnDelete and left alone.
INVENTORY = {
    "shop": [{"kind": "Deployment", "name": "web", "selector": {"app": "web"}},
             {"kind": "StatefulSet", "name": "db", "selector": {"app": "db"}},
             {"kind": "Deployment", "name": "cart", "selector": {"app": "cart"}},
             {"kind": "StatefulSet", "name": "batch", "selector": {"app": "batch"}, "movement": "onDelete"}],
    "cart": [{"kind": "Deployment", "name": "api", "selector": {"app": "api"}}],
    "pay": [{"kind": "Deployment", "name": "api", "selector": {"app": "api"}}],
}


def _config(rollout: dict | None = None, **overrides) -> dict:
    namespaces = [*mesh_config()["meshlift:namespaces"], {"name": "cart", "revision": "stable", "wave": 1}]
    config = mesh_config(**{"meshlift:namespaces": namespaces, "meshlift:inventory": INVENTORY,
                            "meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}]}, **overrides)
    if rollout is not None:
        config["meshlift:rollout"] = {"from": "1.39.3", "to": "1.40.0", **rollout}
    return config


def _restarted(config: dict) -> set[str]:
    return {f"{w.namespace}/{w.kind}/{w.name}" for w in plan_for(load_spec(config)).workloads
            if w.restart_revision == "1-40-0"}


def test_a_wave_restarts_in_namespace_kind_name_order_and_only_workloads_that_move():
    spec = load_spec(_config())

    assert wave_restart_order(spec, 1) == [("cart", "Deployment", "api"), ("shop", "Deployment", "cart"),
                                           ("shop", "Deployment", "web"), ("shop", "StatefulSet", "db")]
    assert wave_restart_order(spec, 2) == [("pay", "Deployment", "api")]


def test_restarted_in_wave_restarts_the_first_k_of_the_last_promoted_wave_only():
    assert _restarted(_config({"stage": "promote", "promotedWaves": 1, "restartedInWave": 2})) == {
        "shop/Deployment/cart", "cart/Deployment/api"}
    assert _restarted(_config({"stage": "promote", "promotedWaves": 1})) == {
        "shop/Deployment/web", "shop/StatefulSet/db", "shop/Deployment/cart", "cart/Deployment/api"}
    # Parts of wave 2 leave wave 1 whole.
    assert _restarted(_config({"stage": "promote", "promotedWaves": 2, "restartedInWave": 1})) == {
        "shop/Deployment/web", "shop/StatefulSet/db", "shop/Deployment/cart", "cart/Deployment/api",
        "pay/Deployment/api"}


def test_a_part_moves_the_tags_and_the_namespaces_of_its_wave_as_the_whole_wave_does():
    part = plan_for(load_spec(_config({"stage": "promote", "promotedWaves": 1, "restartedInWave": 1})))
    whole = plan_for(load_spec(_config({"stage": "promote", "promotedWaves": 1})))

    assert part.tags == whole.tags and part.namespaces == whole.namespaces
    assert part.default_revision == whole.default_revision


def test_a_part_larger_than_the_wave_is_the_whole_wave():
    assert (_restarted(_config({"stage": "promote", "promotedWaves": 1, "restartedInWave": 40}))
            == _restarted(_config({"stage": "promote", "promotedWaves": 1})))


@pytest.mark.parametrize("value, reason", [(0, "greater than 0"), (-3, "greater than 0"),
                                           ("many", "valid integer"), (2**31, "less than or equal")])
def test_max_rolling_must_be_a_positive_integer(value, reason):
    with pytest.raises(SpecError) as raised:
        load_spec(_config(**{"meshlift:restarts": {"maxRolling": value}}))
    found = {p.key: p.reason for p in raised.value.problems}
    assert reason in found["meshlift:restarts.maxRolling"], found


def test_max_rolling_is_unset_by_default_and_read_when_given():
    assert load_spec(_config()).restarts.max_rolling is None
    assert load_spec(_config(**{"meshlift:restarts": {"maxRolling": 25}})).restarts.max_rolling == 25


@pytest.mark.parametrize("rollout", [
    {"stage": "install", "restartedInWave": 1},
    {"stage": "canary", "restartedInWave": 1},
    {"stage": "promote", "promotedWaves": 0, "restartedInWave": 1},
    {"stage": "cleanup", "promotedWaves": 2, "restartedInWave": 1},
])
def test_restarted_in_wave_belongs_to_a_promoted_wave(rollout):
    with pytest.raises(SpecError) as raised:
        load_spec(_config(rollout))
    assert "meshlift:rollout.restartedInWave" in {p.key for p in raised.value.problems}


def test_restarted_in_wave_must_be_positive():
    with pytest.raises(SpecError) as raised:
        load_spec(_config({"stage": "promote", "promotedWaves": 1, "restartedInWave": 0}))
    assert "meshlift:rollout.restartedInWave" in {p.key for p in raised.value.problems}
