"""What a takeover would replace in the installation it adopts, read from Helm's own release records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshmodel.spec_check import load_spec
from rollout.adopted_values import adopted_value_problems, release_values
from rollout.errors import PlatformUnavailable
from rollout.preflight import check_takeover
from tests.components.cluster import helm_record
from tests.components.configs import minimal
from tests.rollout.doubles import FakeCluster

GATEWAY = {"name": "istio-ingress", "namespace": "istio-ingress", "revision": "stable", "replicas": 2}


def test_the_newest_deployed_record_holds_the_values():
    secrets = [helm_record("gw", "ns", 1, {"a": 1}, status="superseded"), helm_record("gw", "ns", 2, {"a": 2})]
    assert release_values(secrets) == {"a": 2}
    assert release_values([]) is None


def test_a_release_record_that_is_not_helms_is_refused_naming_the_secret(monkeypatch):
    import rollout.preflight
    from rollout.errors import PlatformError

    garbled = helm_record("gw", "ns", 3, {"a": 3})
    garbled["data"]["release"] = "bm90IGd6aXA="  # base64 of "not gzip"
    with pytest.raises(PlatformError, match=r"Helm's release record sh\.helm\.release\.v1\.gw\.v3 cannot be read"):
        release_values([garbled])
    config = {**minimal(adopt=["istio-system/istio-base"])}
    cluster = FakeCluster()
    cluster.helm_secrets[("istio-system", "istiod")] = [garbled]
    monkeypatch.setattr(rollout.preflight, "live_reader", lambda config, **kw: cluster)
    with pytest.raises(PlatformUnavailable, match="cannot read the Helm releases this stack adopts"):
        check_takeover(load_spec(config), config, stack="prod")


def test_an_adopted_gateway_installed_with_an_hpa_3_replicas_and_an_internal_lb_is_refused_naming_each():
    cluster = FakeCluster()
    cluster.helm_secrets[("istio-ingress", "istio-ingress")] = [helm_record("istio-ingress", "istio-ingress", 1, {
        "autoscaling": {"enabled": True, "minReplicas": 3},
        "service": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"},
                    "loadBalancerIP": "10.0.0.7"},
    })]
    spec = load_spec(minimal(gateways=[GATEWAY], adopt=["istio-ingress/istio-ingress"]))
    [problem] = adopted_value_problems(spec, cluster)
    assert problem.key == "meshlift:gateways[0]"
    assert "autoscaling.enabled: true -> false" in problem.reason
    assert "autoscaling.minReplicas: 3 -> the chart's default" in problem.reason
    assert 'service.annotations.networking.gke.io/load-balancer-type: "Internal" -> the chart\'s default' \
        in problem.reason
    assert 'service.loadBalancerIP: "10.0.0.7"' in problem.reason


def test_a_gateway_whose_values_the_stack_states_is_taken_over():
    cluster = FakeCluster()
    installed = {"autoscaling": {"enabled": True, "minReplicas": 3},
                 "service": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"}, "type": "ClusterIP"}}
    cluster.helm_secrets[("istio-ingress", "istio-ingress")] = [
        helm_record("istio-ingress", "istio-ingress", 1, installed)]
    stated = {**GATEWAY, "service": {"type": "ClusterIP",
                                     "annotations": {"networking.gke.io/load-balancer-type": "Internal"}},
              "values": {"autoscaling": {"enabled": True, "minReplicas": 3}}}
    spec = load_spec(minimal(gateways=[stated], adopt=["istio-ingress/istio-ingress"]))
    assert adopted_value_problems(spec, cluster) == []


def test_the_unrevisioned_istiods_mesh_config_must_be_carried_into_each_revision():
    cluster = FakeCluster()
    mesh = {"meshConfig": {"trustDomain": "corp.example", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
            "pilot": {"replicaCount": 5}}
    cluster.helm_secrets[("istio-system", "istiod")] = [helm_record("istiod", "istio-system", 1, mesh)]
    problems = adopted_value_problems(load_spec(minimal()), cluster)
    # Both revisions have the same (no) values: one problem, which names the other.
    assert [p.key for p in problems] == ["meshlift:revisions[0].values"]
    assert "(so does revisions[1], which has the same values)" in problems[0].reason
    assert 'meshConfig.trustDomain: "corp.example" -> the chart\'s default' in problems[0].reason
    assert "pilot.replicaCount" not in problems[0].reason  # istiod's own sizing moves nobody's pods
    carried = [{"version": v, "values": {"meshConfig": mesh["meshConfig"]}} for v in ("1.30.3", "1.31.0")]
    assert adopted_value_problems(load_spec(minimal(revisions=carried)), cluster) == []


def test_a_gateway_taken_over_already_is_the_stacks_to_change():
    cluster = FakeCluster()
    ours = {"replicaCount": 2, "podAnnotations": {"meshlift.io/proxy-revision": "1-30-3"}}
    cluster.helm_secrets[("istio-ingress", "istio-ingress")] = [helm_record("istio-ingress", "istio-ingress", 2, ours)]
    spec = load_spec(minimal(gateways=[{**GATEWAY, "replicas": 4}], adopt=["istio-ingress/istio-ingress"]))
    assert adopted_value_problems(spec, cluster) == []


# What istio/gateway 1.30's values.yaml holds, in part: Istio's charts nest their defaults under this key.
GATEWAY_CHART_VALUES = {"_internal_defaults_do_not_set": {
    "replicaCount": None,
    "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5},
    "service": {"type": "LoadBalancer", "annotations": {}, "ports": [
        {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
        {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]},
    "podDisruptionBudget": {},
}}


def adopted_gateway(installed: dict[str, Any], stated: dict[str, Any]) -> list:
    cluster = FakeCluster()
    cluster.helm_secrets[("istio-ingress", "istio-ingress")] = [helm_record(
        "istio-ingress", "istio-ingress", 1, installed, chart_values=GATEWAY_CHART_VALUES)]
    spec = load_spec(minimal(gateways=[{**GATEWAY, **stated}], adopt=["istio-ingress/istio-ingress"]))
    return adopted_value_problems(spec, cluster)


def test_the_charts_own_hpa_is_not_turned_off_unless_the_stack_states_it():
    # Installed with no values at all: the chart's HPA (on by default) runs; meshlift's default is off.
    [problem] = adopted_gateway({}, {})
    assert ('autoscaling.enabled: true (the chart\'s default) -> false [state it in values.autoscaling.enabled]'
            in problem.reason), problem.reason
    assert problem.reason.count(" -> ") == 1, problem.reason  # the chart's Service and ports are meshlift's too
    assert adopted_gateway({}, {"values": {"autoscaling": {"enabled": True}}}) == []


def test_each_difference_names_the_stack_key_that_states_it():
    installed = {"replicaCount": 3, "autoscaling": {"enabled": False},
                 "service": {"type": "ClusterIP", "annotations": {"cloud.google.com/neg": "{}"},
                             "loadBalancerSourceRanges": ["10.0.0.0/8"]}}
    [problem] = adopted_gateway(installed, {})
    assert "replicaCount: 3 -> 2 [state it in replicas]" in problem.reason
    assert 'service.type: "ClusterIP" -> "LoadBalancer" [state it in service.type]' in problem.reason
    assert "[state it in service.annotations]" in problem.reason
    assert ('service.loadBalancerSourceRanges: ["10.0.0.0/8"] -> the chart\'s default '
            '[state it in values.service.loadBalancerSourceRanges]') in problem.reason
    stated = {"replicas": 3, "service": {"type": "ClusterIP", "annotations": {"cloud.google.com/neg": "{}"}},
              "values": {"autoscaling": {"enabled": False},
                         "service": {"loadBalancerSourceRanges": ["10.0.0.0/8"]}}}
    assert adopted_gateway(installed, stated) == []


def test_a_name_and_revision_label_meshlift_sets_itself_are_not_asked_for():
    # Validation refuses both keys in a stack; meshlift names the Deployment after the release and
    # labels it with the gateway's revision, so the adopted values are reproduced without them.
    installed = {"name": "istio-ingress", "labels": {"istio.io/rev": "1-30-3", "team": "edge"},
                 "autoscaling": {"enabled": False}}
    [problem] = adopted_gateway(installed, {})
    assert 'labels.team: "edge" -> the chart\'s default [state it in values.labels.team]' in problem.reason
    assert "istio.io/rev" not in problem.reason and "values.name" not in problem.reason
    assert adopted_gateway(installed, {"values": {"autoscaling": {"enabled": False}, "labels": {"team": "edge"}}}) == []


def test_a_release_whose_deployment_has_another_name_is_refused_not_renamed():
    [problem] = adopted_gateway({"name": "edge-gateway", "autoscaling": {"enabled": False}}, {})
    assert problem.key == "meshlift:gateways[0]"
    assert "names its Deployment 'edge-gateway' (values.name)" in problem.reason
    assert "replace Deployment 'edge-gateway' with a new one" in problem.reason


def test_service_ports_compare_with_the_api_servers_defaults():
    # A platform's extra port written without protocol or targetPort is the port meshlift sends with both.
    ports = [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
             {"name": "http2", "port": 80, "targetPort": 8080},
             {"name": "tcp", "port": 31400},
             {"name": "http3", "port": 443, "protocol": "UDP"}]
    installed = {"autoscaling": {"enabled": False}, "service": {"type": "ClusterIP", "ports": ports}}
    stated_ports = [{"name": "status-port", "port": 15021}, {"name": "http2", "port": 80, "targetPort": 8080},
                    {"name": "tcp", "port": 31400}, {"name": "http3", "port": 443, "protocol": "UDP"}]
    stated = {"replicas": 2, "service": {"type": "ClusterIP", "ports": stated_ports},
              "values": {"autoscaling": {"enabled": False}}}
    assert adopted_gateway(installed, stated) == []
    [problem] = adopted_gateway(installed, {**stated, "service": {"type": "ClusterIP", "ports": stated_ports[:2]}})
    assert problem.reason.count("service.ports: ") == 1 and "[state it in service.ports]" in problem.reason


def test_each_revision_with_values_of_its_own_is_judged_on_them():
    cluster = FakeCluster()
    mesh = {"meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    cluster.helm_secrets[("istio-system", "istiod")] = [helm_record("istiod", "istio-system", 1, mesh)]
    revisions = [{"version": "1.30.3", "values": mesh}, {"version": "1.31.0", "values": {"pilot": {"replicaCount": 3}}}]
    [problem] = adopted_value_problems(load_spec(minimal(revisions=revisions)), cluster)
    assert problem.key == "meshlift:revisions[1].values" and "so does" not in problem.reason


def test_the_programs_check_fails_closed_on_a_cluster_it_cannot_reach_naming_it(tmp_path, monkeypatch):
    # The real reader (rollout.preflight.live_reader, a KubeLive) of a stack whose API server is away.
    import rollout.platforms.kube_live

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "prod", "cluster": {"server": "http://127.0.0.1:9"}}],  # nothing listens there
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "u"}}]}))
    monkeypatch.setattr(rollout.platforms.kube_live, "RETRY_S", 0.0)  # fail at once, not after 15 s
    config = {**minimal(adopt=["istio-system/istio-base"]), "kubernetes:context": "prod",
              "kubernetes:kubeconfig": str(kubeconfig)}
    with pytest.raises(PlatformUnavailable) as refused:
        check_takeover(load_spec(config), config, stack="prod")
    assert str(refused.value).startswith(
        f"cannot read the Helm releases this stack adopts from context 'prod' of kubeconfig {kubeconfig}: "
        "cannot list what runs in the cluster: "), refused.value
    assert str(refused.value).endswith("so it is not applied unchecked; nothing changed")
    assert "127.0.0.1" in str(refused.value)  # the API server it tried
