"""Workloads the way real controllers run them, on the real engine: classified, left alone, and cleaned up after.

One namespace (`data`, enrolled through the tag `stable`) holds what a lived-in
cluster holds and a plain restart wave gets wrong: an OnDelete StatefulSet, a
partitioned StatefulSet, a paused Deployment, a hostNetwork DaemonSet, a
Deployment opted out of injection, a Deployment another object owns (an
`ownerReferences` entry with `controller: true`) and a bare ReplicaSet (what an
Argo Rollout leaves, without the Rollout). A CronJob in a namespace without an
injection label pins its pods to the old revision by their `istio.io/rev` label
(in an enrolled namespace the namespace's label would win, and it would pin
nothing). kube-controller-manager runs the real controllers, and the pods are
injected by each revision's real istiod.

`meshlift plan` shows each class before anything changes. `meshlift upgrade`
then patches none of them (nothing in `data` moves, so there is no proxy a gate
could judge, and none is sampled), and cleanup is refused, naming the pods still
on the old revision with what to do for each, and the CronJob. Once the pods
are replaced as the refusal says, cleanup is still refused for the CronJob
alone; once its template no longer pins the old revision, cleanup proceeds.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from checks.kube import injected_revision
from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.kube import Kube, eventually
from tests.e2e.stacks import FROM_REV, TO, TO_REV, mesh_stack

STACK = "e2e"
NAMESPACE = "data"
INJECTED = ("ledger-0", "ledger-1", "queue-0", "queue-1", "reports-", "hello-", "canary-rs-")  # pod name prefixes


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("classes", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def _pod_template(app: str, **extra) -> dict:
    return {"metadata": {"labels": {"app": app, **extra.pop("labels", {})}, **extra.pop("metadata", {})},
            "spec": {"containers": [{"name": app, "image": f"registry.example.com/data/{app}:1"}], **extra}}


def _workload(kind: str, name: str, *, replicas: int | None = 1, **spec) -> dict:
    template = spec.pop("template", None) or _pod_template(name)
    body = {"selector": {"matchLabels": {"app": name}}, "template": template, **spec}
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": body}


def create_the_lived_in_namespace(kube: Kube) -> None:
    apps, core = kube.apps, kube.core
    create = {"StatefulSet": apps.create_namespaced_stateful_set, "Deployment": apps.create_namespaced_deployment,
              "DaemonSet": apps.create_namespaced_daemon_set, "ReplicaSet": apps.create_namespaced_replica_set}
    owner = core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "hello-operator"}},
                                              field_manager=TEAM_MANAGER)
    objects = [
        _workload("StatefulSet", "ledger", replicas=2, serviceName="ledger", updateStrategy={"type": "OnDelete"}),
        _workload("StatefulSet", "queue", replicas=2, serviceName="queue",
                  updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}),
        _workload("Deployment", "reports"),
        _workload("DaemonSet", "node-agent", replicas=None, template=_pod_template("node-agent", hostNetwork=True)),
        _workload("Deployment", "legacy-db",
                  template=_pod_template("legacy-db", labels={"sidecar.istio.io/inject": "false"})),
        {**_workload("Deployment", "hello"), "metadata": {
            "name": "hello", "namespace": NAMESPACE, "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "hello-operator", "uid": owner.metadata.uid,
                "controller": True}]}},
        _workload("ReplicaSet", "canary-rs"),
    ]
    for obj in objects:
        create[obj["kind"]](NAMESPACE, obj, field_manager=TEAM_MANAGER)
    eventually(lambda: kube.apps.read_namespaced_deployment("reports", NAMESPACE).status.available_replicas,
               what="reports available")
    apps.patch_namespaced_deployment("reports", NAMESPACE, {"spec": {"paused": True}}, field_manager=TEAM_MANAGER)

    core.create_namespace({"metadata": {"name": "batch"}}, field_manager=TEAM_MANAGER)
    client.BatchV1Api(apps.api_client).create_namespaced_cron_job("batch", {
        "metadata": {"name": "report"},
        "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"app": "report", "istio.io/rev": FROM_REV}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "report", "image": "example/report:1"}]}}}}},
    }, field_manager=TEAM_MANAGER)


def injected(kube: Kube) -> dict[str, str | None]:
    return {p.metadata.name: injected_revision(p) for p in kube.core.list_namespaced_pod(NAMESPACE).items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp}


def test_each_class_is_planned_left_where_it_is_and_named_until_cleanup_may_proceed(project, cluster,
                                                                                   chart_repository) -> None:
    kube = Kube.of(cluster)
    # The prerequisites read the kubeconfig the CLI would (KUBECONFIG), not the stack's file.
    env = {"KUBECONFIG": str(cluster.kubeconfig)}
    kube.core.create_namespace({"metadata": {"name": NAMESPACE}}, field_manager=TEAM_MANAGER)
    config = mesh_stack(cluster, chart_repository, stage="install",
                        namespaces=[{"name": NAMESPACE, "revision": "stable", "wave": 1, "create": False}])
    config["meshlift:revisions"] = [{"version": "1.30.3"}]
    config["meshlift:gateways"] = []
    del config["meshlift:rollout"]
    project.write_stack(STACK, config)
    project.init_stack(STACK)
    first = project.up(STACK, label="pulumi up: the mesh before the upgrade (workload classes)")
    assert first.returncode == 0, first.output

    create_the_lived_in_namespace(kube)
    eventually(lambda: all(any(name.startswith(prefix) for name, revision in injected(kube).items()
                               if revision == FROM_REV) for prefix in INJECTED),
               timeout=120, what=f"the data namespace's pods injected by {FROM_REV}")
    pods = injected(kube)
    assert all(r is None for n, r in pods.items() if n.startswith(("node-agent", "legacy-db"))), pods

    # Before anything changes: the plan shows each class; a paused Deployment makes the upgrade refuse.
    plan = project.meshlift("plan", "-s", STACK, "--to", TO, "--json", env=env, label="meshlift plan (workload classes)")
    assert plan.returncode == 0, plan.output
    rows = {row["workload"]: row for row in json.loads(plan.stdout)["workloads"]}
    assert {name: (row["movement"], row["action"]) for name, row in rows.items()} == {
        "StatefulSet/ledger": ("onDelete", "leaves"), "StatefulSet/queue": ("partitioned", "leaves"),
        "Deployment/reports": ("paused", "refuses"), "DaemonSet/node-agent": ("outsideMesh", "skips"),
        "Deployment/legacy-db": ("outsideMesh", "skips"), "Deployment/hello": ("owned", "leaves"),
    }
    assert "owned by ConfigMap/hello-operator" in rows["Deployment/hello"]["detail"]
    refused = project.meshlift("upgrade", "-s", STACK, "--to", TO, env=env, label="meshlift upgrade (paused refused)")
    assert refused.returncode == 2, refused.output[-3000:]
    assert "Deployment/reports" in refused.output and "meshlift:restarts.paused: skip" in refused.output
    assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{FROM_REV}"}, "nothing changed"

    config = project.stack_config(STACK)
    config["meshlift:restarts"] = {"paused": "skip"}
    project.write_stack(STACK, config)
    human = project.meshlift("plan", "-s", STACK, "--to", TO, env=env, label="meshlift plan (paused skipped)")
    assert human.returncode == 0 and "will not move" in human.output and "not in the mesh" in human.output

    before = {p.metadata.uid for p in kube.core.list_namespaced_pod(NAMESPACE).items}
    upgrade = project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json", env=env, label="meshlift upgrade (cleanup refused)")
    assert upgrade.returncode == 2, upgrade.output[-4000:]
    assert {p.metadata.uid for p in kube.core.list_namespaced_pod(NAMESPACE).items} == before, "nothing restarted"
    read = {"ledger": kube.apps.read_namespaced_stateful_set, "queue": kube.apps.read_namespaced_stateful_set,
            "node-agent": kube.apps.read_namespaced_daemon_set}
    for workload in ("ledger", "queue", "reports", "hello", "node-agent", "legacy-db"):
        obj = read.get(workload, kube.apps.read_namespaced_deployment)(workload, NAMESPACE)
        assert "meshlift.io/proxy-revision" not in (obj.spec.template.metadata.annotations or {}), workload
    message = upgrade.output
    assert "CronJob batch/report: its pod template pins istio.io/rev=1-30-3" in message
    assert "ReplicaSet/canary-rs has no Deployment" in message, "a bare ReplicaSet is named as what it is"
    assert "OnDelete" in message and "kubectl delete pod ledger-" in message
    assert "partition 1 keeps a restart from the ordinals below it" in message
    assert "kubectl rollout resume deployment/reports -n data" in message
    assert "restart it through ConfigMap/hello-operator, which owns Deployment/hello" in message
    assert "node-agent" not in message and "legacy-db" not in message

    # Do what the refusal says for the pods: each comes back on the new revision (the tag moved).
    old_pods = [n for n, r in injected(kube).items() if r == FROM_REV]
    for name in old_pods:
        kube.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    eventually(lambda: not [n for n, r in injected(kube).items() if r == FROM_REV]
               and len([r for r in injected(kube).values() if r == TO_REV]) >= len(old_pods),
               timeout=120, what=f"the data namespace's pods replaced on {TO_REV}")
    still = project.meshlift("upgrade", "-s", STACK, "--to", TO, env=env, label="meshlift upgrade (the CronJob alone)")
    assert still.returncode == 2, still.output[-3000:]
    assert "CronJob batch/report" in still.output and f"{NAMESPACE}/" not in still.output.split("Cleanup refused")[1]

    client.BatchV1Api(kube.apps.api_client).patch_namespaced_cron_job("report", "batch", {"spec": {"jobTemplate": {"spec": {"template": {
        "metadata": {"labels": {"istio.io/rev": "stable"}}}}}}}, field_manager=TEAM_MANAGER)
    done = project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json", env=env, label="meshlift upgrade (cleanup proceeds)")
    assert done.returncode == 0, done.output[-4000:]
    assert json.loads(done.stdout)["phase"] == "Succeeded"
    assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{TO_REV}"}
