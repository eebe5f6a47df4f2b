"""Each live workload is classified by how its controller answers a template patch, from its API object."""

from __future__ import annotations

import copy

import pytest

from meshmodel.clone import inventory_entry
from meshmodel.workload_class import classify
from tests.components.cluster import live_workload, with_field


DEPLOYMENT = live_workload("data", "web")
STATEFUL = live_workload("data", "ledger", kind="StatefulSet")
DAEMON = {**copy.deepcopy(DEPLOYMENT), "kind": "DaemonSet",
          "spec": {**copy.deepcopy(DEPLOYMENT["spec"]), "updateStrategy": {"type": "RollingUpdate"}}}


@pytest.mark.parametrize("obj, movement, note", [
    (DEPLOYMENT, "rolls", ""),
    (STATEFUL, "rolls", ""),
    (with_field(STATEFUL, "spec.updateStrategy", {"type": "OnDelete"}), "onDelete", "updateStrategy OnDelete"),
    (with_field(DAEMON, "spec.updateStrategy", {"type": "OnDelete"}), "onDelete", "updateStrategy OnDelete"),
    (with_field(STATEFUL, "spec.updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
     "partitioned", "partition 2: ordinals below it stay"),
    (with_field(DEPLOYMENT, "spec.paused", True), "paused", "spec.paused: true"),
    (with_field(DAEMON, "spec.template.spec.hostNetwork", True), "outsideMesh", "hostNetwork: Istio never injects it"),
    (with_field(DEPLOYMENT, "spec.template.metadata.labels", {"app": "web", "sidecar.istio.io/inject": "false"}),
     "outsideMesh", 'sidecar.istio.io/inject: "false" label'),
    (with_field(DEPLOYMENT, "spec.template.metadata.annotations", {"sidecar.istio.io/inject": "False"}),
     "outsideMesh", 'sidecar.istio.io/inject: "false" annotation'),
    (with_field(DEPLOYMENT, "metadata.ownerReferences",
           [{"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": "hello-00001", "controller": True}]),
     "owned", "owned by Revision/hello-00001"),
], ids=["deployment", "statefulset", "ondelete statefulset", "ondelete daemonset", "partition", "paused",
        "hostnetwork", "opted out by label", "opted out by annotation", "owned"])
def test_each_class_is_read_from_the_live_object(obj, movement, note):
    found = classify(obj)
    assert (found.movement, found.note) == (movement, note)


def test_the_injection_label_wins_over_the_annotation_as_in_istio():
    labelled_in = with_field(DEPLOYMENT, "spec.template.metadata.labels", {"sidecar.istio.io/inject": "true"})
    both = with_field(labelled_in, "spec.template.metadata.annotations", {"sidecar.istio.io/inject": "false"})
    assert classify(both).movement == "rolls"


def test_a_non_controller_owner_reference_does_not_make_it_owned():
    obj = with_field(DEPLOYMENT, "metadata.ownerReferences", [{"kind": "ConfigMap", "name": "x", "controller": False}])
    assert classify(obj).movement == "rolls"


def test_a_recreate_deployment_rolls_but_is_flagged():
    found = classify(with_field(DEPLOYMENT, "spec.strategy", {"type": "Recreate"}))
    assert found.movement == "rolls" and found.recreate and "all pods stop" in found.note


def test_the_inventory_records_the_class_claims_expressions_and_autoscalers_only_when_they_say_something():
    plain = inventory_entry(DEPLOYMENT)
    assert set(plain) == {"kind", "name", "labels", "selector", "templateHash"}, "defaults cost no bytes"
    obj = with_field(STATEFUL, "spec.updateStrategy", {"type": "OnDelete"})
    obj = with_field(obj, "spec.selector", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["ledger"]}]})
    obj = with_field(obj, "spec.template.spec.volumes", [{"name": "shared", "persistentVolumeClaim": {"claimName": "ledger-rwo"}}])
    entry = inventory_entry(obj, ["HorizontalPodAutoscaler/ledger"])
    assert entry["movement"] == "onDelete" and entry["note"] == "updateStrategy OnDelete"
    assert entry["selector"] == {}
    assert entry["selectorExpressions"] == [{"key": "app", "operator": "In", "values": ["ledger"]}]
    assert entry["claims"] == ["ledger-rwo"] and entry["autoscalers"] == ["HorizontalPodAutoscaler/ledger"]
