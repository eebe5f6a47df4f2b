"""Parsing a recorded Envoy 1.40 /config_dump, and the name normalisation diffs rely on (shape only;
the behaviour on live proxies is proven in test_parity_envoy.py and test_inspect_envoy.py)."""

from __future__ import annotations

import pytest

from checks.config_dump import normalise, parse_config_dump
from checks.rules_parity import missing, peer_key
from checks.target import PodFacts, Target
from meshmodel.parity_allow import allowed, validate_allow_entry

from .recorded import fixture


@pytest.mark.parametrize(("name", "normalised"), [
    ("outbound|15012||istiod-1-30-3.istio-system.svc.cluster.local",
     "outbound|15012||istiod-<rev>.istio-system.svc.cluster.local"),
    ("istiod-1-31-0", "istiod-<rev>"),
    ("istio-proxy-1.30.3", "istio-proxy-<ver>"),
    ("10.96.0.1_443", "10.96.0.1_443"),
    ("0.0.0.0_15001", "0.0.0.0_15001"),
    ("outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080|v1|reviews.default.svc.cluster.local"),
])
def test_revisions_and_versions_in_names_are_normalised_addresses_are_not(name, normalised) -> None:
    assert normalise(name) == normalised


def test_the_recorded_dump_gives_the_inventory_and_facts_of_a_localmesh_proxy() -> None:
    snapshot = parse_config_dump(fixture("config_dump.json"))
    assert snapshot.inventory["listener"] == {"http", "https"}
    assert snapshot.inventory["route"] == {"http/local_route/all/status", "http/local_route/all/default",
                                           "https/local_route/all/status", "https/local_route/all/default"}
    assert snapshot.inventory["cluster"] == {"upstream"}
    assert [(s.name, s.state) for s in snapshot.listeners] == [("http", "active"), ("https", "active")]
    assert set(snapshot.overload_actions) == {"envoy.overload_actions.disable_http_keepalive",
                                              "envoy.overload_actions.stop_accepting_requests"}
    assert snapshot.xds_cluster is None and snapshot.cluster_keepalive == {"upstream": None}


def test_a_dump_without_configs_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'configs' list"):
        parse_config_dump({"configs": "nope"})


def test_missing_leaves_out_allowlisted_keys_and_what_the_candidate_adds() -> None:
    reference = {"route": frozenset({"a/rc/vh/x", "a/rc/vh/y"}), "cluster": frozenset({"c1"})}
    candidate = {"route": frozenset({"a/rc/vh/x", "a/rc/vh/z"}), "cluster": frozenset()}
    assert missing(reference, candidate) == {"route": ["a/rc/vh/y"], "cluster": ["c1"]}
    assert missing(reference, candidate, ["cluster:c*"]) == {"route": ["a/rc/vh/y"]}
    assert allowed("route", "a/rc/vh/y", ["route:*/y"]) and not allowed("cluster", "a/rc/vh/y", ["route:*/y"])
    with pytest.raises(ValueError, match="unknown kind 'routes'"):
        validate_allow_entry("routes:*")


def test_a_canary_and_its_baseline_share_a_peer_key_by_pod_labels_or_rehearsal_workload() -> None:
    pod = PodFacts(namespace="shop", name="web-canary-7f", revision="1-31-0")
    kube = Target(name="shop/web-canary-7f", admin_url="http://127.0.0.1:1", labels={"app": "web"}, pod=pod)
    local = Target(name="shop/web-canary-0", admin_url="http://127.0.0.1:2",
                   labels={"namespace": "shop", "workload": "web-canary"})
    assert peer_key(kube) == peer_key(local) == ("shop", "web")
    assert peer_key(Target.from_url("127.0.0.1:3")) == (None, None)
