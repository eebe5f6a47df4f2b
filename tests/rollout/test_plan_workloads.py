"""`meshlift plan` lists what runs in the stack's cluster and says what the upgrade will do with each workload.

The stack names its cluster by an inline kubeconfig pointing at an API endpoint
on loopback that answers the list calls with API-server JSON.
"""

from __future__ import annotations

import json

import yaml

from rollout import cli
from rollout.entry import run
from tests.components.cluster import live_workload, with_field
from tests.rollout.doubles import mesh_config
from tests.rollout.test_kube_live import scripted_server  # noqa: F401 - a fixture

PAUSED = with_field(live_workload("pay", "batch"), "spec.paused", True)


def _cluster_stack(tmp_path, monkeypatch, url: str, **overrides) -> None:
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "stack",
                  "clusters": [{"name": "c", "cluster": {"server": url}}], "users": [{"name": "u", "user": {}}],
                  "contexts": [{"name": "stack", "context": {"cluster": "c", "user": "u"}}]}
    config = {**mesh_config(**overrides), "kubernetes:kubeconfig": json.dumps(kubeconfig),
              "kubernetes:context": "stack"}
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))


def _serve(script, shop: list[dict], pay: list[dict], hpas: list[dict] = ()) -> None:
    for namespace, objects in (("shop", shop), ("pay", pay)):
        for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
            items = [o for o in objects if o["kind"] == kind]
            script[f"/apis/apps/v1/namespaces/{namespace}/{plural}"] = [(200, {"items": items})]
        script[f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"] = [
            (200, {"items": [h for h in hpas if h["metadata"]["namespace"] == namespace]})]


def test_plan_shows_each_workloads_class_before_anything_changes(tmp_path, monkeypatch, scripted_server, capsys):  # noqa: F811
    url, script, seen = scripted_server
    ledger = live_workload("pay", "ledger", kind="StatefulSet")
    ledger["spec"]["updateStrategy"] = {"type": "OnDelete"}
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}
    _serve(script, [live_workload("shop", "web")], [live_workload("pay", "api"), ledger], [hpa])
    _cluster_stack(tmp_path, monkeypatch, url)

    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {row["workload"]: row for row in document["workloads"]}
    assert {name: row["label"] for name, row in rows.items()} == {
        "Deployment/web": "moves on patch", "Deployment/api": "moves on patch",
        "StatefulSet/ledger": "moves only if its pods are deleted"}
    assert "will not move" in rows["StatefulSet/ledger"]["detail"]
    assert "HorizontalPodAutoscaler/web" in rows["Deployment/web"]["warnings"][0]
    changes = "\n".join(c for stage in document["stages"] for c in stage["changes"])
    assert "ledger" not in changes, "the stages restart what the run would: not the OnDelete StatefulSet"
    assert all(method == "GET" for method, _, _ in seen), "plan only reads"

    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0"]) == 0
    out = capsys.readouterr().out
    assert "moves only if its pods are deleted" in out and "HorizontalPodAutoscaler/web" in out


def test_plan_names_the_paused_deployment_an_upgrade_would_refuse(tmp_path, monkeypatch, scripted_server, capsys):  # noqa: F811
    url, script, _ = scripted_server
    _serve(script, [live_workload("shop", "web")], [live_workload("pay", "api"), PAUSED])
    _cluster_stack(tmp_path, monkeypatch, url)
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0"]) == 0
    out = capsys.readouterr().out
    assert "would refuse to start" in out and "Deployment/batch" in out and "kubectl rollout resume" in out


def test_plan_without_a_cluster_in_the_stack_lists_nothing_and_says_so(tmp_path, monkeypatch, capsys):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": mesh_config()}))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["workloads"] == [] and "names no cluster" in document["workloads_note"]
