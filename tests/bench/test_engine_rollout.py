"""The rollout benchmark's reading of Pulumi's event log."""

from __future__ import annotations

import json

from bench._engine_rollout import slowest_resources


def event(ts: int, kind: str, urn: str, type_: str, op: str = "create") -> str:
    return json.dumps({"timestamp": ts, kind: {"metadata": {"urn": urn, "type": type_, "op": op}}})


def test_the_slowest_steps_are_objects_not_the_stack_or_components_spanning_them(tmp_path):
    stack = "urn:pulumi:s::meshlift::pulumi:pulumi:Stack::meshlift-s"
    istiod = "urn:pulumi:s::meshlift::meshlift:index:ControlPlaneRevision$kubernetes:helm.sh/v3:Release::istiod-release"
    component = "urn:pulumi:s::meshlift::meshlift:index:ControlPlaneRevision::istiod"
    base = "urn:pulumi:s::meshlift::kubernetes:helm.sh/v3:Release::istio-base-release"
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join([
        event(100, "resourcePreEvent", stack, "pulumi:pulumi:Stack"),
        event(101, "resourcePreEvent", component, "meshlift:index:ControlPlaneRevision"),
        event(101, "resourcePreEvent", istiod, "kubernetes:helm.sh/v3:Release"),
        event(102, "resourcePreEvent", base, "kubernetes:helm.sh/v3:Release", op="same"),
        "not json",
        event(120, "resOutputsEvent", istiod, "kubernetes:helm.sh/v3:Release"),
        event(121, "resOutputsEvent", component, "meshlift:index:ControlPlaneRevision"),
        event(130, "resOutputsEvent", stack, "pulumi:pulumi:Stack"),
    ]))
    assert slowest_resources(log) == [("istiod-release", 19)]
