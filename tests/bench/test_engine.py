"""The real-engine benchmark's own logic: the config it applies and how it reads meshlift's transcript."""

from __future__ import annotations

from pathlib import Path

from bench._engine_stack import engine_config
from bench.engine import parse_upgrade
from meshmodel.packed import is_packed
from meshmodel.spec_check import load_spec

TRANSCRIPT = """\
phase Planned -> Installing
  Resources: + 3 created, ~ 1 updated
  Duration: 17s
phase Installing -> CanaryVerifying
  Duration: 1m7s
phase CanaryVerifying -> Promoting
  Duration: 13s
phase Promoting, next wave
  Duration: 5s
phase Promoting -> Verifying
phase Verifying -> CleaningUp
  Duration: 5s
phase CleaningUp -> Succeeded
√ promoted: to 1.31.0; every wave on the target; old revision removed (78.8s)
"""


def test_each_stage_and_each_wave_gets_its_own_duration():
    assert parse_upgrade(TRANSCRIPT) == {
        "stages": {"Installing": 17, "CanaryVerifying": 67, "Promoting wave 1": 13, "Promoting wave 2": 5,
                   "CleaningUp": 5},
        "total": 78.8,
    }


def test_a_transcript_without_an_outcome_has_no_total():
    assert parse_upgrade("phase Planned -> Installing\n  Duration: 3s\n")["total"] is None


class _Cluster:
    kubeconfig, context = Path("/tmp/kubeconfig"), "bench"


def test_the_applied_config_selects_existing_workloads_and_starts_at_install():
    config = engine_config(100, _Cluster(), "http://127.0.0.1:1")
    spec = load_spec(config)
    assert sum(len(items) for items in (spec.inventory or {}).values()) == 100
    assert is_packed(config["meshlift:inventory"])
    assert all(not ns.create for ns in spec.namespaces)
    assert [g.service.type for g in spec.gateways] == ["ClusterIP"]
    assert spec.rollout is not None and spec.rollout.stage.value == "install"
