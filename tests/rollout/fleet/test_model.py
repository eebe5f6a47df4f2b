"""The fleet file: every problem reported with its key path, nothing half-read."""

from __future__ import annotations

import pytest

from meshmodel.spec import GateSettings
from rollout.fleet.model import FleetFileError, load_fleet, parse_fleet, ring_gates


def _problems(document) -> list[str]:
    with pytest.raises(FleetFileError) as raised:
        parse_fleet(document, label="stacks/fleet.yaml")
    return raised.value.problems


def test_a_valid_fleet_reads_soaks_parallelism_and_gate_overrides():
    fleet = parse_fleet({"rings": [
        {"name": "dev", "stacks": ["dev"], "soak": "10m"},
        {"name": "prod", "stacks": ["prod-eu", "prod-us"], "maxParallel": 2, "soak": "0s",
         "gate": {"window": "2m", "minSuccessRate": 0.995}},
    ]}, label="fleet.yaml")

    assert [r.soak for r in fleet.rings] == [600.0, 0.0]
    assert fleet.rings[1].max_parallel == 2 and fleet.stacks == ["dev", "prod-eu", "prod-us"]
    merged = ring_gates(GateSettings(window=30, interval=2, min_requests=5), fleet.rings[1])
    assert (merged.window, merged.interval, merged.min_requests, merged.min_success_rate) == (120, 2, 5, 0.995)


def test_every_problem_is_named_by_its_key_path():
    problems = _problems({"rings": [
        {"name": "dev", "stacks": ["dev"], "soak": "soon"},
        {"name": "dev", "stacks": ["dev", "bad stack"], "maxParallel": 0, "gate": {"windw": "1m"}},
        {"name": "prod", "stacks": []},
    ], "extra": 1})

    assert "rings[0].soak: 'soon' is not a duration like 500ms, 5s or 2m" in problems  # the value, quoted once
    assert any(p.startswith("rings[1].stacks[1]: 'bad stack' is not a stack name") for p in problems)
    assert any(p.startswith("rings[1].maxParallel:") for p in problems)
    assert "rings[1].gate.windw: unknown key (did you mean 'window'?)" in problems
    assert any(p.startswith("rings[2].stacks:") for p in problems)
    assert "extra: unknown key" in problems


def test_a_stack_in_two_rings_and_a_repeated_ring_name_are_refused():
    problems = _problems({"rings": [{"name": "dev", "stacks": ["a"]}, {"name": "dev", "stacks": ["a"]}]})

    assert problems == ["rings[1].name: ring 'dev' is already defined at rings[0]",
                        "rings[1].stacks[0]: stack 'a' is already in ring 'dev' (a stack upgrades in one ring only)"]


def test_unreadable_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text("rings:\n  - name: dev\n    stacks: [dev\n")

    with pytest.raises(FleetFileError) as raised:
        load_fleet(path, label="stacks/fleet.yaml")

    assert str(raised.value).startswith("stacks/fleet.yaml:4: invalid fleet file")


def test_the_digest_changes_with_the_rings_only():
    one = parse_fleet({"rings": [{"name": "dev", "stacks": ["dev"]}]}, label="a")
    same = parse_fleet({"rings": [{"name": "dev", "stacks": ["dev"], "maxParallel": 1}]}, label="b")
    other = parse_fleet({"rings": [{"name": "dev", "stacks": ["dev"], "soak": "1m"}]}, label="a")

    assert one.digest() == same.digest() != other.digest()
