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


def test_an_istiod_flag_is_replaced_in_either_spelling() -> None:
    from localcluster.istiod import with_flag

    flag = "--keepaliveMaxServerConnectionAge"
    assert with_flag(["discovery", flag, "30m", "--x=1"], flag, "15s") == ["discovery", "--x=1", f"{flag}=15s"]
    assert with_flag([f"{flag}=30m"], flag, "15s") == [f"{flag}=15s"]
    assert with_flag(["discovery"], flag, "15s") == ["discovery", f"{flag}=15s"]


def test_the_supervisor_makes_its_log_directory_and_removes_its_working_root(tmp_path) -> None:
    from localcluster.sidecars import IstioSidecars

    sidecars = IstioSidecars(core_v1=None, custom=None, agent_for_revision={}, envoy_for_revision={},
                             bootstrap_for_revision={}, apps=None, workdir=tmp_path / "logs" / "sidecars")
    assert sidecars.workdir.is_dir()
    root = sidecars._root
    assert root.is_dir() and len(str(root / "999" / "etc/istio/proxy/XDS")) < 107  # a Unix socket path fits
    sidecars.close()
    assert not root.exists()
