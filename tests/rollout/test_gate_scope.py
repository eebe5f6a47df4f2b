"""Which pods a gate reads: a wave gate's baseline is a declared, reported sample of the workloads."""

from __future__ import annotations

from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout.platforms.base import GateScope
from rollout.platforms.scope import selectors_for
from tests.rollout.doubles import mesh_config


def _mesh(teams: int, *, baseline_workloads: int | None = None):
    """`teams` namespaces of three workloads each; the first namespace is wave 1, the rest wave 2."""
    gates = {"window": "2s", "interval": "100ms", "consecutivePasses": 2}
    if baseline_workloads is not None:
        gates["baselineWorkloads"] = baseline_workloads
    names = [f"team-{i}" for i in range(teams)]
    config = mesh_config(**{
        "meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
        "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "promote", "promotedWaves": 1},
        "meshlift:namespaces": [{"name": name, "revision": "stable", "wave": 1 if i == 0 else 2,
                                 "workloads": [{"name": f"svc-{j}"} for j in range(3)]}
                                for i, name in enumerate(names)],
        "meshlift:inventory": {name: [{"kind": "Deployment", "name": f"svc-{j}", "selector": {"app": f"svc-{j}"}}
                                      for j in range(3)] for name in names},
        "meshlift:gates": gates,
    })
    spec = load_spec(config)
    return spec, plan_for(spec)


def _wave_one(spec, plan):
    return selectors_for(plan, GateScope("wave", (1,)).sampling(spec.gates))


def test_a_wave_gate_reads_the_declared_number_of_baseline_workloads_and_keeps_the_others_listed() -> None:
    spec, plan = _mesh(10, baseline_workloads=5)
    selectors = _wave_one(spec, plan)
    canary = [s for s in selectors if s.role == "canary"]
    baseline = [s for s in selectors if s.role == "baseline"]
    assert {(s.namespace, s.sample) for s in canary} == {("team-0", None)}  # every pod under test is read
    assert len(baseline) == 27  # every workload not yet promoted is still named ...
    read = [s for s in baseline if s.sample != 0]
    assert len(read) == 5 and {s.sample for s in read} == {spec.gates.baseline_pods_per_workload}
    assert len([s for s in baseline if s.sample == 0]) == 22  # ... and those left out say so


def test_the_baseline_workloads_chosen_do_not_depend_on_the_order_they_are_declared_in() -> None:
    spec, plan = _mesh(10, baseline_workloads=5)
    reversed_plan = plan.model_copy(update={"workloads": list(reversed(plan.workloads))}) \
        if hasattr(plan, "model_copy") else None
    chosen = {(s.namespace, s.name) for s in _wave_one(spec, plan) if s.role == "baseline" and s.sample != 0}
    if reversed_plan is None:
        from dataclasses import replace

        reversed_plan = replace(plan, workloads=tuple(reversed(plan.workloads)))
    again = {(s.namespace, s.name) for s in _wave_one(spec, reversed_plan) if s.role == "baseline" and s.sample != 0}
    assert chosen == again and len(chosen) == 5


def test_a_mesh_smaller_than_the_bound_reads_every_baseline_workload_by_default() -> None:
    spec, plan = _mesh(4)
    assert spec.gates.baseline_workloads == 50
    assert all(s.sample != 0 for s in _wave_one(spec, plan))


def test_a_canary_gate_reads_every_canaried_workloads_own_pods_whatever_the_bound() -> None:
    config = mesh_config(**{
        "meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
        "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "canary"},
        "meshlift:namespaces": [{"name": f"team-{i}", "revision": "stable", "wave": 1,
                                 "workloads": [{"name": "web", "canary": True}]} for i in range(3)],
        "meshlift:inventory": {f"team-{i}": [{"kind": "Deployment", "name": "web", "selector": {"app": "web"}}]
                               for i in range(3)},
        "meshlift:gates": {"baselineWorkloads": 1},
    })
    spec = load_spec(config)
    selectors = selectors_for(plan_for(spec), GateScope("canary").sampling(spec.gates))
    baseline = [s for s in selectors if s.role == "baseline"]
    assert len(baseline) == 3 and all(s.sample == spec.gates.baseline_pods_per_workload for s in baseline)


def test_a_selector_selects_the_pods_its_label_selector_selects_on_the_api_server() -> None:
    from rollout.platforms.scope import PodSelector
    from tests.label_selectors import selects_text

    selector = PodSelector("shop", "web", {"app": "web"}, "baseline", without=("meshlift.io/canary-of",),
                           expressions=({"key": "tier", "operator": "In", "values": ["front", "edge"]},
                                        {"key": "legacy", "operator": "NotIn", "values": ["yes"]},
                                        {"key": "team", "operator": "Exists"},
                                        {"key": "old", "operator": "DoesNotExist"}))
    pods = [{"app": "web", "tier": "front", "team": "a"}, {"app": "web", "tier": "edge", "team": "a", "legacy": "no"},
            {"app": "web", "tier": "front", "team": "a", "legacy": "yes"}, {"app": "web", "tier": "back", "team": "a"},
            {"app": "web", "team": "a"}, {"app": "web", "tier": "front"}, {"app": "api", "tier": "front", "team": "a"},
            {"app": "web", "tier": "front", "team": "a", "old": ""},
            {"app": "web", "tier": "front", "team": "a", "meshlift.io/canary-of": "web"}]
    assert [selector.selects(labels) for labels in pods] == [
        selects_text(selector.label_selector, labels) for labels in pods]
    assert [selector.selects(labels) for labels in pods] == [True, True] + [False] * 7
