"""What the sidecar supervisor writes as a kubelet would: expanded args, downward-API files, the Sidecar."""

from __future__ import annotations

from localcluster.sidecars import APP_PORT, INGRESS_PORT, downward_api_file, expand_references, sidecar_resource


def test_args_expand_env_references_as_the_kubelet_does() -> None:
    env = {"POD_NAMESPACE": "shop", "X": "1"}
    assert expand_references("--domain=$(POD_NAMESPACE).svc.cluster.local", env) == "--domain=shop.svc.cluster.local"
    assert expand_references("$$(POD_NAMESPACE) $(UNKNOWN) $(X)$(X)", env) == "$(POD_NAMESPACE) $(UNKNOWN) 11"


def test_downward_api_files_quote_values_one_key_a_line() -> None:
    text = downward_api_file({"app": "web", "security.istio.io/tlsMode": "istio", "note": 'say "hi"'})
    assert text.splitlines() == ['app="web"', 'note="say \\"hi\\""', 'security.istio.io/tlsMode="istio"']


def test_the_sidecar_binds_an_inbound_listener_without_capture_to_the_pod_ip_app() -> None:
    ingress = sidecar_resource("shop")["spec"]["ingress"][0]
    assert ingress["captureMode"] == "NONE" and ingress["port"]["number"] == INGRESS_PORT
    assert ingress["defaultEndpoint"] == f"0.0.0.0:{APP_PORT}"  # 0.0.0.0: Istio forwards to the pod's own IP
