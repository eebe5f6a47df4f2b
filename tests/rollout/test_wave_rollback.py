"""A wave rollback judges each pod for the revision that injected it, where no wave restarted it.

From wave 1 on the tag injects the new revision into every pod created in a tag-enrolled
namespace, also in workloads no wave restarted (a scale-up, an eviction, a replaced node).
The rollback does not restart those workloads: its gate accepts their pods on that revision
and names them; a pod of a restarted workload still on the new revision fails it.
"""

from __future__ import annotations

from meshmodel.plan import plan_for
from meshmodel.spec import Stage
from rollout.phases import Phase
from rollout.platforms.base import StrayRevision
from rollout.rollouts import stray_revisions
from rollout.stages import spec_at, upgrade_target
from tests.rollout.doubles import PodDiscovery, VersionGate, injected_pod, mesh_config

OLD, NEW = "1-39-3", "1-40-0"


def _pods_follow_the_stage(rig, *, web_stuck: bool = False) -> None:
    """shop/web's pods run what the applied stage asks (wave 1 restarts them, the rollback restarts them
    back; `web_stuck`: one stays on the new revision); pay/api, in wave 2, is never restarted, but once the
    tag has moved it has a second pod, created then, injected by the new revision."""
    tag_moved = []

    def poll(cluster) -> None:
        promoted = (rig.engine.config.get("meshlift:rollout") or {}).get("stage") == "promote"
        tag_moved.extend([True] if promoted else [])
        web = NEW if promoted else OLD
        cluster.pod_list = [injected_pod("shop", "web-1", app="web", revision=web),
                            injected_pod("shop", "web-2", app="web", revision=NEW if web_stuck else web),
                            injected_pod("pay", "api-1", app="api", revision=OLD)]
        if tag_moved:
            cluster.pod_list.append(injected_pod("pay", "api-2", app="api", revision=NEW))

    rig.cluster.on_poll = poll
    poll(rig.cluster)
    rig.discover = PodDiscovery(rig.cluster)


def test_a_pod_the_moved_tag_put_in_a_workload_no_wave_restarted_does_not_fail_the_rollback(make_rig):
    rig = make_rig(gate=VersionGate({"wave 1": "failed"}))
    _pods_follow_the_stage(rig)

    state = rig.run()

    assert state.phase is Phase.ROLLED_BACK, state.rollback
    assert state.failure["gate"] == "wave 1"
    assert rig.gate.calls[-1] == ("rollback", ["shop/web-1", "shop/web-2", "pay/api-1", "pay/api-2"], [])
    assert state.rollback["left_on_revision"] == [{
        "pod": "pay/api-2", "workload": "Deployment pay/api", "revision": NEW, "version": "1.40.0",
        "restart": "kubectl rollout restart deployment/api -n pay"}]
    warning = next(data for kind, data in rig.reporter.events if kind == "warning" and "pods" in data)
    assert warning["pods"] == ["pay/api-2"] and "pay/api-2 (1-40-0)" in warning["message"]
    journaled = [e for e in rig.journal.events(state.run_id) if e.get("event") == "warning" and "pods" in e]
    assert [e["pods"] for e in journaled] == [["pay/api-2"]]


def test_a_pod_of_a_restarted_workload_still_on_the_new_revision_fails_the_rollback(make_rig):
    rig = make_rig(gate=VersionGate({"wave 1": "failed"}))
    _pods_follow_the_stage(rig, web_stuck=True)

    state = rig.run()

    assert state.phase is Phase.FAILED
    assert "unhealthy after re-applying update 2" in state.rollback["error"]
    assert "shop/web-2 runs 1.40.0, expected 1.39.3" in state.rollback["error"]
    assert "pay/api-2" not in state.rollback["error"], "the tag's pod is judged for its own revision"
    assert [p["pod"] for p in state.rollback["left_on_revision"]] == ["pay/api-2"]


def test_a_pod_of_a_workload_no_wave_restarted_on_neither_revision_fails_the_rollback(make_rig):
    rig = make_rig(gate=VersionGate({"wave 1": "failed"}))
    _pods_follow_the_stage(rig)
    polled = rig.cluster.on_poll

    def with_a_foreign_pod(cluster) -> None:
        polled(cluster)
        cluster.pod_list.append(injected_pod("pay", "api-3", app="api", revision="1-38-0"))

    rig.cluster.on_poll = with_a_foreign_pod

    state = rig.run()

    assert state.phase is Phase.FAILED
    assert "pay/api-3 runs None, expected 1.39.3" in state.rollback["error"]


def test_only_workloads_the_rollback_does_not_restart_may_hold_the_revision_the_tag_injected():
    spec = upgrade_target(mesh_config(), "1.40.0").spec
    install = plan_for(spec_at(spec, Stage.INSTALL))

    after_wave_1 = stray_revisions(plan_for(spec_at(spec, Stage.PROMOTE, 1)), install)
    after_wave_2 = stray_revisions(plan_for(spec_at(spec, Stage.PROMOTE, 2)), install)
    after_canary = stray_revisions(plan_for(spec_at(spec, Stage.CANARY)), install)

    assert after_wave_1 == (StrayRevision("pay", "Deployment", "api", NEW, "1.40.0"),)
    assert after_wave_2 == (), "every workload restarts back"
    assert after_canary == (), "the tag never moved"


def test_the_final_message_names_the_pods_left_on_the_new_revision_and_how_to_move_them(make_rig, capsys):
    from rollout import console

    rig = make_rig(gate=VersionGate({"wave 1": "failed"}))
    _pods_follow_the_stage(rig)
    state = rig.run()

    console.print_result(state, seconds=1.0)

    printed = capsys.readouterr().out
    assert "rolled back" in printed
    assert "left on the revision the moved tag injected" in printed
    assert "pay/api-2 (1-40-0): `kubectl rollout restart deployment/api -n pay` moves them back" in printed
