"""The orchestrator on workloads that already run: the recorded inventory, the cleanup guard, drift warnings.

Kubernetes platform over the recording engine; what runs comes from a fake
`live` reader answering API-server-shaped objects (tests.rollout.doubles.FakeCluster).
"""

from __future__ import annotations

import copy

import pytest

from meshmodel.packed import is_packed, unpack
from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout.errors import CleanupRefused, ConfigTooLarge, PlatformError, PlatformUnavailable, exit_code_for
from rollout.inventory import INVENTORY_KEY
from rollout.phases import Phase
from tests.components.cluster import live_workload
from tests.rollout.doubles import FakeCluster
from tests.rollout.test_leftovers import by_name, on_revision, owned_by


def _inventories(engine) -> list[dict]:
    """The inventory each stage's config carried, unpacked (meshlift writes it packed)."""
    configs = [c[INVENTORY_KEY] for c in engine.named("set_config") if "meshlift:rollout" in c]
    assert all(is_packed(c) for c in configs), "the inventory is written packed, so large meshes fit"
    return [unpack(c) for c in configs]


def test_what_runs_is_listed_once_and_every_stage_restarts_exactly_that(rig):
    rig.cluster.objects.append(live_workload("pay", "ledger", kind="StatefulSet"))
    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    inventories = _inventories(rig.engine)
    assert len(inventories) == 5 and all(i == inventories[0] for i in inventories)
    assert [(w["kind"], w["name"]) for w in inventories[0]["pay"]] == [("Deployment", "api"), ("StatefulSet", "ledger")]
    assert [k for k, _ in rig.reporter.events if k == "inventory"] == ["inventory"], "recorded once per run"
    # Selected by what runs: the StatefulSet nobody listed restarts in its namespace's wave.
    cleanup = load_spec({**rig.config, **rig.engine.named("set_config")[-1]})
    assert {(w.name, w.restart_revision) for w in plan_for(cleanup).workloads} == {
        ("web", "1-40-0"), ("api", "1-40-0"), ("ledger", "1-40-0")}
    wave_2 = next(c for c in rig.gate.calls if c[0] == "wave 2")
    assert wave_2[1] == ["shop/web", "pay/api", "pay/ledger"]


def test_a_resumed_run_keeps_the_inventory_its_first_apply_recorded(make_rig):
    from tests.rollout.doubles import ScriptedGate

    rig = make_rig(gate=ScriptedGate(interrupt_on="wave 1"))
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    rig.cluster.objects.append(live_workload("shop", "late", replicas=1))  # appeared mid-run
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED
    assert all("late" not in [w["name"] for w in i["shop"]] for i in _inventories(rig.engine))


def test_a_listed_workload_that_does_not_run_is_a_config_error_before_anything_changes(rig):
    rig.cluster.objects = [o for o in rig.cluster.objects if o["metadata"]["name"] != "web"]
    with pytest.raises(Exception) as raised:
        rig.run()
    assert "no Deployment 'web' runs in namespace 'shop'" in str(raised.value)
    assert exit_code_for(raised.value) == 2
    assert rig.engine.named("up") == []


def test_an_unreachable_cluster_at_the_start_changes_nothing(rig):
    rig.cluster.fail_with = PlatformError("cannot list what runs in the cluster: connection refused")
    with pytest.raises(PlatformUnavailable) as raised:
        rig.run()
    assert "nothing was changed" in str(raised.value) and exit_code_for(raised.value) == 2
    assert rig.engine.named("up") == []


def test_cleanup_is_refused_while_an_old_revision_job_pod_runs_and_resumes_once_it_is_gone(rig):
    job_pod = owned_by(on_revision(by_name("ratings-v1-5c9d7b8f4-fghij"), "1-39-3", "1.39.3"), "Job", "backup-29100")
    failed = on_revision(by_name("reviews-v1-7d8f9c6b5-pqrst"), "1-39-3", "1.39.3")
    failed["status"]["phase"] = "Failed"
    rig.cluster.pod_list = [job_pod, failed]

    with pytest.raises(CleanupRefused) as raised:
        rig.run()
    message = str(raised.value)
    assert "bookinfo/backup-29100-x7k2p (Job/backup-29100, Running)" in message
    assert "bookinfo/reviews-v1-7d8f9c6b5-pqrst" in message and "Not in the way" in message
    assert exit_code_for(raised.value) == 2
    state = rig.journal.load()
    assert state.phase is Phase.CLEANING_UP, "the run waits at cleanup"
    assert [c["meshlift:rollout"]["stage"] for c in rig.engine.named("set_config")][-1] == "promote"
    refused = [d for k, d in rig.reporter.events if k == "cleanup"]
    assert refused[-1]["status"] == "refused" and refused[-1]["pods"][0]["name"] == "backup-29100-x7k2p"

    rig.cluster.pod_list = [failed]  # the Job ended; the failed pod is no reason to wait
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED
    assert rig.engine.named("set_config")[-1]["meshlift:rollout"]["stage"] == "cleanup"


def test_a_canaried_workload_changed_during_the_canary_stage_is_reported_at_promotion(make_rig):
    rig = make_rig()
    cluster = rig.cluster

    class ChangingCluster(FakeCluster):
        """Someone deploys a new image of shop/web while its canary runs."""

        def __init__(self) -> None:
            super().__init__(*copy.deepcopy(cluster.objects))
            self.listings = 0

        def workloads(self, namespace: str):
            if namespace == "shop":
                self.listings += 1
                if self.listings == 2:
                    web = self.find("shop", "web")
                    web["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:2.15.0"
            return super().workloads(namespace)

    rig.cluster = ChangingCluster()
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert len(warnings) == 1 and "Deployment shop/web changed during the canary stage" in warnings[0]
    journaled = [e for e in rig.journal.events(state.run_id) if e["event"] == "warning"]
    assert [e["message"] for e in journaled] == warnings, "the warning is in the run's journal"


def test_a_config_too_large_for_pulumis_config_channel_is_refused_before_anything_changes(make_rig):
    from tests.rollout.doubles import mesh_config

    config = {**mesh_config(), "app:certificateBundle": "x" * 140_000}  # a user's own key, far too big
    rig = make_rig(config=config)
    with pytest.raises(ConfigTooLarge) as raised:
        rig.run()
    message = str(raised.value)
    assert "more than the 131,072 bytes Linux allows in one environment variable (PULUMI_CONFIG)" in message
    assert "Largest keys: app:certificateBundle (140,000 bytes)" in message and "Nothing was changed" in message
    assert exit_code_for(raised.value) == 2
    assert rig.engine.named("up") == [] and rig.engine.named("set_config") == []
