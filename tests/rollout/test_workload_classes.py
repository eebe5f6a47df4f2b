"""Workloads as their controllers run them: classified at the start, paced, evicted, unstuck, churn survived.

The orchestrator on the Kubernetes platform over the recording engine; what runs
comes from a fake cluster answering API-server-shaped objects, which a test can
move between polls (a controller making pods again, a team deleting a workload,
the API server answering 503).
"""

from __future__ import annotations


import pytest

from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout.errors import PlatformError, exit_code_for
from rollout.phases import Phase
from rollout.rollouts import RolloutBudget
from tests.components.cluster import live_workload, with_field
from tests.rollout.doubles import FakeCluster, ScriptedGate, mesh_config

NEW = "1-40-0"


def on_delete(name: str, replicas: int = 2) -> dict:
    return with_field(live_workload("pay", name, kind="StatefulSet", replicas=replicas), "spec.updateStrategy",
                {"type": "OnDelete"})


def pod_of(obj: dict, ordinal: int, *, annotation: str | None = None, ready: bool = True,
           revision: str = "rev-1") -> dict:
    metadata = obj["metadata"]
    return {
        "metadata": {"name": f"{metadata['name']}-{ordinal}", "namespace": metadata["namespace"],
                     "labels": {**obj["spec"]["selector"]["matchLabels"], "controller-revision-hash": revision},
                     "annotations": {} if annotation is None else {"meshlift.io/proxy-revision": annotation},
                     "ownerReferences": [{"kind": obj["kind"], "name": metadata["name"], "uid": metadata["uid"],
                                          "controller": True}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _restarts(rig) -> dict[str, str | None]:
    """What the last applied config restarts: workload -> meshlift's annotation value."""
    spec = load_spec({**rig.config, **rig.engine.named("set_config")[-1]})
    return {w.name: w.restart_revision for w in plan_for(spec).workloads}


def test_every_class_is_recorded_and_only_what_moves_is_patched_and_gated(make_rig):
    rig = make_rig(config=mesh_config(**{"meshlift:restarts": {"paused": "skip"}}))
    web, api = rig.cluster.objects
    rig.cluster.objects += [
        on_delete("ledger"),
        with_field(live_workload("pay", "queue", kind="StatefulSet"), "spec.updateStrategy.rollingUpdate.partition", 1),
        with_field(live_workload("pay", "batch"), "spec.paused", True),
        with_field(live_workload("pay", "agent"), "spec.template.spec.hostNetwork", True),
        with_field(live_workload("pay", "legacy"), "spec.template.metadata.annotations", {"sidecar.istio.io/inject": "false"}),
        with_field(live_workload("pay", "hello"), "metadata.ownerReferences",
             [{"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": "hello-1", "controller": True}]),
        with_field(live_workload("pay", "reports"), "spec.strategy", {"type": "Recreate"}),
    ]
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure

    inventory = next(d for k, d in rig.reporter.events if k == "inventory")
    classes = {row["workload"]: (row["movement"], row["action"]) for row in inventory["classes"]}
    assert classes == {
        "Deployment/web": ("rolls", "restarts"), "Deployment/api": ("rolls", "restarts"),
        "StatefulSet/ledger": ("onDelete", "leaves"), "StatefulSet/queue": ("partitioned", "leaves"),
        "Deployment/batch": ("paused", "leaves"), "Deployment/agent": ("outsideMesh", "skips"),
        "Deployment/legacy": ("outsideMesh", "skips"), "Deployment/hello": ("owned", "leaves"),
        "Deployment/reports": ("rolls", "restarts"),
    }
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert any("Deployment/reports" in w and "Recreate strategy" in w for w in warnings)
    # Patched: only what moves; not in the mesh: not even planned.
    assert _restarts(rig) == {"web": NEW, "api": NEW, "ledger": None, "queue": None, "batch": None,
                              "hello": None, "reports": NEW}
    wave_2 = next(c for c in rig.gate.calls if c[0] == "wave 2")
    assert wave_2[1] == ["shop/web", "pay/api", "pay/reports"], "what will not move is in no wave gate"


def test_a_paused_deployment_is_refused_with_its_name_before_anything_changes(rig):
    rig.cluster.objects.append(with_field(live_workload("pay", "batch"), "spec.paused", True))
    with pytest.raises(Exception) as raised:
        rig.run()
    message = str(raised.value)
    assert "paused in namespace 'pay': Deployment/batch" in message
    assert "meshlift:restarts.paused: skip" in message and exit_code_for(raised.value) == 2
    assert rig.engine.named("up") == []


def test_a_wave_where_nothing_moves_is_still_gated_on_the_waves_before_it(make_rig):
    config = mesh_config()
    config["meshlift:namespaces"][1]["workloads"] = [{"name": "ledger", "kind": "StatefulSet"}]
    rig = make_rig(config=config)
    rig.cluster.objects = [live_workload("shop", "web", replicas=2), on_delete("ledger")]
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure
    assert [c[0] for c in rig.gate.calls] == ["canary", "wave 1", "wave 2", "verify"]
    assert next(c for c in rig.gate.calls if c[0] == "wave 2")[1] == ["shop/web"], "wave 2 judges wave 1's pods"
    assert not [d for k, d in rig.reporter.events if k == "gate" and d.get("status") == "skipped"]


def test_a_mesh_where_nothing_moves_skips_its_wave_gate(make_rig):
    config = mesh_config()
    config["meshlift:namespaces"] = [{"name": "pay", "revision": "stable", "wave": 1}]
    rig = make_rig(config=config)
    rig.cluster.objects = [on_delete("ledger")]
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure
    skipped = [d for k, d in rig.reporter.events if k == "gate" and d.get("status") == "skipped"]
    assert [d["gate"] for d in skipped] == ["canary", "wave 1", "verify"]
    assert "no canary, gateway or moved workload" in skipped[1]["message"]
    assert rig.gate.calls == [], "nothing was sampled: there was nothing to sample"


# ---------------------------------------------------------------- OnDelete, evicted one by one


def _controller(cluster: FakeCluster) -> None:
    """The StatefulSet controller: every missing ordinal comes back from the current template (the new one)."""
    for obj in cluster.objects:
        if obj["kind"] != "StatefulSet":
            continue
        names = {p["metadata"]["name"] for p in cluster.pod_list}
        for ordinal in range(obj["spec"]["replicas"]):
            if f"{obj['metadata']['name']}-{ordinal}" not in names:
                cluster.pod_list.append(pod_of(obj, ordinal, annotation=NEW))


def test_ondelete_pods_are_evicted_one_by_one_when_asked_and_the_workload_is_gated(make_rig):
    config = mesh_config(**{"meshlift:restarts": {"onDelete": "evict"}})
    config["meshlift:namespaces"][1]["workloads"] = [{"name": "ledger", "kind": "StatefulSet"}]
    rig = make_rig(config=config)
    ledger = on_delete("ledger", replicas=3)
    rig.cluster.objects = [live_workload("shop", "web", replicas=2), ledger]
    rig.cluster.pod_list = [pod_of(ledger, i) for i in range(3)]
    rig.cluster.refuse_evictions = 1  # a PodDisruptionBudget says "not now" once
    rig.cluster.on_poll = _controller
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure
    assert rig.cluster.evictions == ["pay/ledger-2", "pay/ledger-1", "pay/ledger-0"]
    assert {p["metadata"]["annotations"]["meshlift.io/proxy-revision"] for p in rig.cluster.pod_list} == {NEW}
    assert _restarts(rig)["ledger"] == NEW
    assert "pay/ledger" in next(c for c in rig.gate.calls if c[0] == "wave 2")[1]
    done = [d for k, d in rig.reporter.events if k == "rollout" and d["status"] == "done"]
    assert done[-1]["evicted"] == ["pay/ledger-2", "pay/ledger-1", "pay/ledger-0"]


def test_an_evicting_restart_waits_for_every_pod_to_be_ready_before_the_next_eviction():
    from rollout.pod_restarts import eviction_step

    ledger = on_delete("ledger", replicas=2)
    pods = [pod_of(ledger, 0), pod_of(ledger, 1, annotation=NEW, ready=False)]
    step = eviction_step(ledger, pods, NEW)
    assert not step.done and step.evict is None and "waiting for 1 of 2 pods" in step.detail
    pods[1]["status"]["conditions"][0]["status"] = "True"
    assert eviction_step(ledger, pods, NEW).evict == "ledger-0"
    pods[0]["metadata"]["annotations"] = {"meshlift.io/proxy-revision": NEW}
    assert eviction_step(ledger, pods, NEW).done


# ---------------------------------------------------------------- forced rollback


def _stuck_rollback_rig(make_rig, **cluster_options):
    config = mesh_config()
    config["meshlift:namespaces"][1]["workloads"] = [{"name": "ledger", "kind": "StatefulSet"}]
    rig = make_rig(config=config, gate=ScriptedGate({"wave 2": "failed"}))
    ledger = live_workload("pay", "ledger", kind="StatefulSet", replicas=2)
    rig.cluster.objects = [live_workload("shop", "web", replicas=2), ledger]
    for key, value in cluster_options.items():
        setattr(rig.cluster, key, value)
    reverting = with_field(ledger, "metadata.generation", 6)
    reverting["status"] = {"observedGeneration": 6, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 1,
                           "currentRevision": "rev-2", "updateRevision": "rev-1"}
    polls = {"n": 0}

    def controller(cluster: FakeCluster) -> None:
        if not any(c[0] == "wave 2" for c in rig.gate.calls):
            return  # until the wave gate failed, ledger is healthy
        polls["n"] += 1
        names = {p["metadata"]["name"] for p in cluster.pod_list}
        if polls["n"] == 1:  # the rollback starts: ledger-1 stuck on the broken revision, never ready
            cluster.pod_list = [pod_of(ledger, 0, revision="rev-1"), pod_of(ledger, 1, revision="rev-2", ready=False)]
            cluster.objects[1] = reverting
        elif "ledger-1" not in names:  # deleted: the controller makes it from the reverted template
            cluster.pod_list.append(pod_of(ledger, 1, revision="rev-1"))
            cluster.objects[1] = ledger

    rig.cluster.on_poll = controller
    return rig


def test_a_rollback_deletes_a_statefulset_pod_stuck_on_the_reverted_revision_and_ends_rolled_back(make_rig):
    rig = _stuck_rollback_rig(make_rig)
    state = rig.run()
    assert state.phase is Phase.ROLLED_BACK, state.rollback
    assert rig.cluster.deleted == ["pay/ledger-1"]
    unstuck = [d for k, d in rig.reporter.events if k == "rollout" and d["status"] == "unstuck"]
    assert unstuck[0]["pods"] == ["pay/ledger-1"] and "67250" in unstuck[0]["message"]


def test_a_stuck_pod_meshlift_may_not_delete_is_named_with_the_command(make_rig):
    rig = _stuck_rollback_rig(make_rig, forbid_delete=True)
    state = rig.run()
    assert state.phase is Phase.FAILED
    assert "pod ledger-1 is stuck on the reverted revision" in state.rollback["error"]
    assert "kubectl delete pod ledger-1 -n pay" in state.rollback["error"]


# ---------------------------------------------------------------- churn


def test_the_api_server_failing_while_a_wave_rolls_out_does_not_roll_it_back(rig):
    answers = iter([None, None, None, "down", "down", "down", None])

    def flaky(cluster: FakeCluster) -> None:
        answer = next(answers, None)
        cluster.fail_with = PlatformError("cannot list what runs in the cluster: 503 Service Unavailable") \
            if answer else None

    rig.cluster.on_poll = flaky
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure


def test_a_workload_deleted_before_its_wave_is_skipped_and_reported(rig):
    def delete_api_once_wave_1_is_gated(cluster: FakeCluster) -> None:
        if any(c[0] == "wave 1" for c in rig.gate.calls):
            cluster.objects = [o for o in cluster.objects if o["metadata"]["name"] != "api"]

    rig.cluster.on_poll = delete_api_once_wave_1_is_gated
    config = mesh_config()
    config["meshlift:namespaces"][1]["workloads"] = []
    rig.config = config
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED, state.failure
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert "deleted since the run started, skipped in wave 2: Deployment pay/api" in warnings
    assert "api" not in _restarts(rig)


def test_a_workload_deleted_while_it_restarts_is_skipped_not_failed(rig):
    def delete_web_after_its_patch(cluster: FakeCluster) -> None:
        waiting = [d for k, d in rig.reporter.events if k == "rollout" and d["status"] == "waiting"]
        if waiting:
            cluster.objects = [o for o in cluster.objects if o["metadata"]["name"] != "web"]

    rig.cluster.on_poll = delete_web_after_its_patch
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED and state.failure is None
    done = [d for k, d in rig.reporter.events if k == "rollout" and d["status"] == "done"]
    assert done[0]["gone"] == ["Deployment shop/web"]
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert "deleted while restarting, skipped: Deployment shop/web" in warnings


# ---------------------------------------------------------------- deadlines and progress


def test_each_workload_gets_a_deadline_from_its_replicas_and_a_deployment_its_progress_deadline():
    budget = RolloutBudget(base_s=120, per_replica_s=30)
    assert budget.seconds(live_workload("pay", "ledger", kind="StatefulSet", replicas=30)) == 120 + 30 * 30
    assert budget.seconds(live_workload("shop", "web", replicas=2)) == 600, "its progressDeadlineSeconds"
    slow = with_field(live_workload("shop", "web", replicas=40), "spec.progressDeadlineSeconds", 300)
    assert budget.seconds(slow) == 120 + 30 * 40
    daemon = {"kind": "DaemonSet", "spec": {}, "status": {"desiredNumberScheduled": 5}}
    assert budget.seconds(daemon) == 120 + 5 * 30
    assert RolloutBudget(fixed_s=7).seconds(daemon) == 7


def test_the_budget_is_a_config_key():
    spec = load_spec(mesh_config(**{"meshlift:restarts": {"budget": "10m", "perReplica": "90s"}}))
    assert (spec.restarts.budget, spec.restarts.per_replica) == (600, 90)


def test_a_wait_says_what_is_pending_while_it_waits(rig):
    from tests.rollout.test_rollouts import Scripted, rolling

    pending = rolling(live_workload("shop", "web", replicas=2), replicas=2, updatedReplicas=1, availableReplicas=1)
    healthy = live_workload("shop", "web", replicas=2)
    rig.cluster = Scripted([healthy, healthy, healthy, pending, pending, pending, healthy])
    state = rig.run(rollout_progress_s=0)
    assert state.phase is Phase.SUCCEEDED
    progress = [d["pending"] for k, d in rig.reporter.events if k == "rollout" and d["status"] == "progress"]
    assert progress and progress[0] == ["Deployment shop/web: 1 of 2 replicas updated"]


# ---------------------------------------------------------------- cleanup guard


def test_cleanup_waits_for_a_cronjob_pinned_to_the_old_revision_and_resumes_once_it_is_not(rig):
    from rollout.errors import CleanupRefused

    cronjob = {"kind": "CronJob", "metadata": {"name": "report", "namespace": "batch"},
               "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"istio.io/rev": "1-39-3"}}}}}}}
    rig.cluster.sources = {"namespaces": [{"metadata": {"name": "batch"}}], "templates": [cronjob], "gateways": []}
    with pytest.raises(CleanupRefused) as raised:
        rig.run()
    assert "CronJob batch/report: its pod template pins istio.io/rev=1-39-3" in str(raised.value)
    assert rig.journal.load().phase is Phase.CLEANING_UP
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] = "stable"
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED


# ---------------------------------------------------------------- canary clones


@pytest.mark.parametrize("change, expected", [
    (lambda cluster: cluster.objects.append(live_workload("shop", "web-canary")),
     "a Deployment 'web-canary' already runs in namespace 'shop': the canary clone would take it over"),
    (lambda cluster: cluster.objects.__setitem__(0, with_field(cluster.objects[0], "spec.template.spec.volumes",
                                                         [{"name": "d", "persistentVolumeClaim": {"claimName": "web-rwo"}}])),
     "mounts the claim(s) web-rwo directly"),
    (lambda cluster: cluster.objects.__setitem__(0, with_field(cluster.objects[0], "spec.template.spec.hostNetwork", True)),
     "is not in the mesh (hostNetwork"),
], ids=["name taken by a running workload", "mounts a claim", "not in the mesh"])
def test_a_canary_that_cannot_be_cloned_safely_is_refused_before_anything_changes(rig, change, expected):
    change(rig.cluster)
    with pytest.raises(Exception) as raised:
        rig.run()
    assert expected in str(raised.value) and "workloads[0].canary" in str(raised.value)
    assert exit_code_for(raised.value) == 2 and rig.engine.named("up") == []


def test_an_autoscaler_targeting_a_canaried_workload_is_warned_about(rig):
    rig.cluster.hpas = [{"kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}]
    state = rig.run()
    assert state.phase is Phase.SUCCEEDED
    warnings = [d["message"] for k, d in rig.reporter.events if k == "warning"]
    assert any("HorizontalPodAutoscaler/web targets it" in w and "canary clone's pods" in w for w in warnings)


# ---------------------------------------------------------------- gate targets found again


def test_gate_targets_are_discovered_again_for_the_gate_to_replace_a_pod_that_ended(monkeypatch):
    from meshmodel.spec import GateSettings
    from rollout.gates import ChecksGate
    from rollout.platforms.base import GateScope
    from rollout.platforms.kubernetes import KubernetesPlatform
    from tests.rollout.doubles import FakeTarget, RecordingEngine

    pods = [["shop/web-1", "shop/web-2"], ["shop/web-1", "shop/web-3"]]  # web-2 ended; web-3 replaced it
    calls = []

    def discover(selectors):
        calls.append([s.label_selector for s in selectors])
        return [FakeTarget(name, "canary") for name in pods[min(len(calls) - 1, 1)]]

    config = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
                            "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "promote",
                                                 "promotedWaves": 1},
                            "meshlift:inventory": {"shop": [{"kind": "Deployment", "name": "web",
                                                             "selector": {"app": "web"}}],
                                                   "pay": [{"kind": "Deployment", "name": "api"}]}})
    platform = KubernetesPlatform(RecordingEngine("dev", config=config), discover=discover, live=FakeCluster())
    targets = platform.targets(plan_for(load_spec(config)), GateScope("wave", (1,)))
    seen = {}

    async def run_gate(canary, settings, *, retarget=None, **kwargs):
        seen["first"] = [t.name for t in canary]
        seen["again"] = [t.name for t in retarget()[0]]
        return type("Result", (), {"outcome": "passed", "message": "ok", "failing_checks": ()})()

    monkeypatch.setattr("checks.gate.run_gate", run_gate)
    verdict = ChecksGate()("wave 1", targets, GateSettings())
    assert verdict.passed
    assert seen == {"first": ["shop/web-1", "shop/web-2"], "again": ["shop/web-1", "shop/web-3"]}
    assert calls[0] == calls[1] == ["app=web,!meshlift.io/canary-of"], "the same selectors, found again"


def test_match_expressions_reach_the_gates_selectors():
    config = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
                            "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "promote",
                                                 "promotedWaves": 1},
                            "meshlift:inventory": {"shop": [{"kind": "Deployment", "name": "web", "selector": {},
                                                             "selectorExpressions": [
                                                                 {"key": "app", "operator": "In", "values": ["web", "www"]},
                                                                 {"key": "legacy", "operator": "DoesNotExist"}]}],
                                                   "pay": [{"kind": "Deployment", "name": "api"}]}})
    from rollout.platforms.base import GateScope
    from rollout.platforms.scope import selectors_for
    from tests.label_selectors import selects_text

    [selector] = [s for s in selectors_for(plan_for(load_spec(config)), GateScope("wave", (1,))) if s.name == "web"]
    assert selector.label_selector == "app in (web,www),!legacy,!meshlift.io/canary-of"
    assert selects_text(selector.label_selector, {"app": "www"})
    assert not selects_text(selector.label_selector, {"app": "www", "legacy": "1"})
