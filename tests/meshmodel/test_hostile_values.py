"""Hostile values in a stack config are refused with their key path, by Kubernetes' own rules.

Every case goes through `load_spec`, the one way a config becomes a `MeshSpec`,
and must raise `SpecError` naming the exact key and why, never anything else
(an OverflowError or a value Kubernetes would refuse later is exit 70 or a
half-applied stage). The valid edge of each bound is accepted, so a test that
refused everything would fail too.
"""

from __future__ import annotations

import pytest

from meshmodel.fields import INT32_MAX, INT64_MAX, MAX_ITEMS
from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from tests.rollout.doubles import mesh_config

NAMESPACES = mesh_config()["meshlift:namespaces"]


def _shop(**fields):
    return [{**NAMESPACES[0], **fields}, NAMESPACES[1]]


def _web(**fields):
    return _shop(workloads=[{"name": "web", "canary": True, **fields}])


def _gateway(**fields):
    return [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable", **fields}]


def _gates(**fields):
    return {**mesh_config()["meshlift:gates"], **fields}


REFUSED = {
    "gateway replicas past int32": (
        {"meshlift:gateways": _gateway(replicas=INT32_MAX + 1)}, "meshlift:gateways[0].replicas", "less than or equal"),
    "gateway replicas far past int32": (
        {"meshlift:gateways": _gateway(replicas=10**30)}, "meshlift:gateways[0].replicas", "less than or equal"),
    "negative canary replicas": (
        {"meshlift:namespaces": _web(canaryReplicas=-1)}, "meshlift:namespaces[0].workloads[0].canaryReplicas",
        "greater than 0"),
    "canary replicas past int32": (
        {"meshlift:namespaces": _web(canaryReplicas=2**40)}, "meshlift:namespaces[0].workloads[0].canaryReplicas",
        "less than or equal"),
    "wave past int32": (
        {"meshlift:namespaces": _shop(wave=INT32_MAX + 1)}, "meshlift:namespaces[0].wave", "less than or equal"),
    "negative promoted waves": (
        {"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
         "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "promote", "promotedWaves": -1}},
        "meshlift:rollout.promotedWaves", "greater than or equal to 0"),
    "min requests past int32": (
        {"meshlift:gates": _gates(minRequests=INT32_MAX + 1)}, "meshlift:gates.minRequests", "less than or equal"),
    "memory cap past int64": (
        {"meshlift:gates": _gates(maxMemoryBytes=INT64_MAX + 1)}, "meshlift:gates.maxMemoryBytes",
        "less than or equal"),
    "overload heap past int64": (
        {"meshlift:proxyProfile": {"overload": {"maxHeapBytes": 2**64}}},
        "meshlift:proxyProfile.overload.maxHeapBytes", "less than or equal"),
    "infinite window": (
        {"meshlift:gates": _gates(window=float("inf"))}, "meshlift:gates.window", "at most 30 days"),
    "NaN window": (
        {"meshlift:gates": _gates(window=float("nan"))}, "meshlift:gates.window", "must be positive"),
    "window of a million hours": (
        {"meshlift:gates": _gates(window="1000000h")}, "meshlift:gates.window", "at most 30 days"),
    "NaN success rate": (
        {"meshlift:gates": _gates(minSuccessRate=float("nan"))}, "meshlift:gates.minSuccessRate", "finite number"),
    "service port past 65535": (
        {"meshlift:gateways": _gateway(service={"ports": [{"name": "http", "port": 70000}]})},
        "meshlift:gateways[0].service.ports[0].port", "less than or equal to 65535"),
    "namespace name with capitals": (
        {"meshlift:namespaces": _shop(name="Shop")}, "meshlift:namespaces[0].name", "not a valid Kubernetes name"),
    "namespace name of 64 characters": (
        {"meshlift:namespaces": _shop(name="a" * 64)}, "meshlift:namespaces[0].name", "at most 63 characters"),
    "namespace name ending in a dash": (
        {"meshlift:namespaces": _shop(name="shop-")}, "meshlift:namespaces[0].name", "not a valid Kubernetes name"),
    "workload name with a slash": (
        {"meshlift:namespaces": _web(name="web/../x")}, "meshlift:namespaces[0].workloads[0].name",
        "not a valid Kubernetes name"),
    "label key with a space": (
        {"meshlift:namespaces": _shop(labels={"team name": "a"})}, "meshlift:namespaces[0].labels",
        "'team name' is not a valid label key"),
    "label key of 64 characters": (
        {"meshlift:namespaces": _shop(labels={"k" * 64: "a"})}, "meshlift:namespaces[0].labels",
        "not a valid label key"),
    "label key with an empty name after its prefix": (
        {"meshlift:namespaces": _shop(labels={"example.com/": "a"})}, "meshlift:namespaces[0].labels",
        "not a valid label key"),
    "label key prefix with capitals": (
        {"meshlift:namespaces": _shop(labels={"Example.com/team": "a"})}, "meshlift:namespaces[0].labels",
        "must be a DNS subdomain"),
    "label value of 64 characters": (
        {"meshlift:namespaces": _shop(labels={"team": "v" * 64})}, "meshlift:namespaces[0].labels",
        "not a valid label value"),
    "label value with a space": (
        {"meshlift:namespaces": _shop(labels={"team": "a b"})}, "meshlift:namespaces[0].labels",
        "'a b' is not a valid label value"),
    "selection label key Kubernetes refuses": (
        {"meshlift:namespaces": _shop(select={"matchLabels": {"-app": "web"}})},
        "meshlift:namespaces[0].select.matchLabels", "not a valid label key"),
    "gateway annotation key Kubernetes refuses": (
        {"meshlift:gateways": _gateway(service={"annotations": {"a b/c": "x"}})},
        "meshlift:gateways[0].service.annotations", "must be a DNS subdomain"),
    "tag value that is no revision name": (
        {"meshlift:tags": {"stable": "1-39-3 "}}, "meshlift:tags.stable", "not a valid Kubernetes name"),
    "gateway revision reference Kubernetes refuses": (
        {"meshlift:gateways": _gateway(revision="a" * 100)}, "meshlift:gateways[0].revision",
        "at most 63 characters"),
    "version whose revision name is too long": (
        {"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0-" + "a" * 60}]},
        "meshlift:revisions[1].version", "revision name Kubernetes refuses"),
    "version whose revision name ends in a dot": (
        {"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0-rc."}]},
        "meshlift:revisions[1].version", "revision name Kubernetes refuses"),
    "too many namespaces": (
        {"meshlift:namespaces": [{"name": f"ns-{i}", "revision": "stable"} for i in range(MAX_ITEMS + 1)]},
        "meshlift:namespaces", "at most 10000 items"),
    "too many revisions": (
        {"meshlift:revisions": [{"version": f"1.39.{i}"} for i in range(17)]},
        "meshlift:revisions", "at most 16 items"),
    "too many labels": (
        {"meshlift:namespaces": _shop(labels={f"k{i}": "v" for i in range(MAX_ITEMS + 1)})},
        "meshlift:namespaces[0].labels", "at most 10000 items"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_hostile_value_is_refused_with_its_key_path_and_reason(case):
    overrides, key, reason = REFUSED[case]
    with pytest.raises(SpecError) as raised:
        load_spec(mesh_config(**overrides))
    found = {str(p.key): p.reason for p in raised.value.problems}
    assert key in found, f"{case}: {found}"
    assert reason in found[key], f"{case}: {found[key]}"


ACCEPTED = {
    "replicas at int32's top": {"meshlift:gateways": _gateway(replicas=INT32_MAX)},
    "memory cap past int32 (bytes are int64)": {"meshlift:gates": _gates(maxMemoryBytes=8 * 1024**3)},
    "window of 30 days": {"meshlift:gates": _gates(window="720h")},
    "name of 63 characters": {"meshlift:namespaces": _shop(name="a" * 63)},
    "prefixed label keys and empty values": {"meshlift:namespaces": _shop(
        labels={"example.com/team": "", "app.kubernetes.io/part-of": "Shop_1.x", "K" * 63: "v" * 63})},
    "pre-release version": {"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0-rc.1"}]},
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_a_value_at_the_edge_of_its_bound_is_accepted(case):
    spec = load_spec(mesh_config(**ACCEPTED[case]))
    assert spec.revisions
