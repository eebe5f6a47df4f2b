"""The canary clone and the template fingerprint, on live objects as the API server returns them."""

from __future__ import annotations

import json

from meshmodel.clone import clone_spec, holding_proxy_config, inventory_entry, template_hash
from meshmodel.plan import CANARY_OF_LABEL, PROXY_REVISION_ANNOTATION, TRACK_LABEL
from tests.components.cluster import Cluster, live_workload
from tests.components.configs import minimal
from tests.components.program import run_program, with_rollout


def test_a_deployment_clone_keeps_the_pod_template_and_changes_only_what_makes_it_a_canary():
    live = live_workload("shop", "web", replicas=5, proxy_config="tracing:\n  sampling: 5.0\n")
    clone = clone_spec(live["spec"], kind="Deployment", workload="web", revision="1-31-0", replicas=1)
    assert set(clone) == {"replicas", "selector", "template", "strategy", "progressDeadlineSeconds"}
    assert clone["replicas"] == 1 and clone["strategy"] == live["spec"]["strategy"]
    assert clone["template"]["spec"] == live["spec"]["template"]["spec"]
    assert clone["selector"] == {"matchLabels": {CANARY_OF_LABEL: "web", TRACK_LABEL: "canary"}}
    assert not set(live["spec"]["selector"]["matchLabels"].items()) <= set(clone["selector"]["matchLabels"].items())
    proxy = json.loads(clone["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
    assert proxy == {"holdApplicationUntilProxyStarts": True, "tracing": {"sampling": 5.0}}, \
        "the workload's own proxy settings stay"
    assert "creationTimestamp" not in clone["template"]["metadata"]
    assert live["spec"]["template"]["metadata"]["labels"] == {"app": "web", "version": "v1"}, "the input is untouched"


def test_a_statefulset_clone_joins_neither_its_governing_service_nor_its_storage():
    live = live_workload("pay", "ledger", kind="StatefulSet", replicas=3)
    clone = clone_spec(live["spec"], kind="StatefulSet", workload="ledger", revision="1-31-0", replicas=1)
    assert "serviceName" not in clone, "no DNS names among the peers under the headless Service"
    assert "volumeClaimTemplates" not in clone, "no claims of its own that outlive it"
    assert clone["template"]["spec"]["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert clone["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}], "gone with the pod"
    assert "volumes" not in live["spec"]["template"]["spec"], "the input is untouched"


def test_unreadable_proxy_config_is_replaced_by_one_that_holds_the_application():
    assert json.loads(holding_proxy_config("tracing: [unclosed")) == {"holdApplicationUntilProxyStarts": True}
    assert json.loads(holding_proxy_config('{"holdApplicationUntilProxyStarts": false}')) == {
        "holdApplicationUntilProxyStarts": True}


def test_the_fingerprint_ignores_meshlifts_annotation_and_sees_everything_else():
    template = live_workload("shop", "web")["spec"]["template"]
    restarted = json.loads(json.dumps(template))
    restarted["metadata"]["annotations"][PROXY_REVISION_ANNOTATION] = "1-31-0"
    assert template_hash(restarted) == template_hash(template)
    redeployed = json.loads(json.dumps(template))
    redeployed["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:2.15.0"
    assert template_hash(redeployed) != template_hash(template)


def test_the_inventory_records_the_annotation_a_past_upgrade_left():
    live = live_workload("shop", "web")
    assert "proxyRevision" not in inventory_entry(live)
    live["spec"]["template"]["metadata"]["annotations"][PROXY_REVISION_ANNOTATION] = "1-30-3"
    entry = inventory_entry(live)
    assert entry["proxyRevision"] == "1-30-3" and entry["selector"] == {"app": "web", "version": "v1"}


def test_a_statefulset_canary_reads_a_statefulset_and_a_daemonset_restarts_by_its_kind():
    cluster = Cluster(live_workload("shop", "web"), live_workload("shop", "ledger", kind="StatefulSet"))
    workloads = [{"name": "web"}, {"name": "ledger", "kind": "StatefulSet", "canary": True, "canaryReplicas": 2},
                 {"name": "agent", "kind": "DaemonSet"}]
    config = minimal(namespaces=[{"name": "shop", "revision": "stable", "workloads": workloads}])
    canary = run_program(with_rollout(config, stage="canary"), cluster=cluster)
    assert [(r.type, r.id) for r in canary.reads] == [("kubernetes:apps/v1:StatefulSet", "shop/ledger")]
    clone = canary.named("shop.ledger-canary-statefulset")
    assert clone.type == "kubernetes:apps/v1:StatefulSet"
    assert clone.inputs["spec"]["replicas"] == 2 and "serviceName" not in clone.inputs["spec"]
    cleanup = run_program(with_rollout(config, stage="cleanup"), cluster=cluster)
    assert cleanup.restart_kinds() == {
        ("shop", "web"): "Deployment", ("shop", "ledger"): "StatefulSet", ("shop", "agent"): "DaemonSet",
    }
    assert cleanup.reads == [], "restarts need no read: the patch names the object"
