"""The listing adapter with the real `kubernetes` client against an API endpoint on loopback.

The endpoint answers the list calls with recorded API-server JSON (the bookinfo
pod list, Helm-installed Deployments); what the adapter hands back must be that
JSON, untouched, with each list item's `kind` filled in.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rollout.errors import PlatformError
from rollout.platforms.kube_live import KubeLive
from tests.components.cluster import live_workload

PODS = json.loads((Path(__file__).parents[1] / "checks" / "fixtures" / "pods_bookinfo_1-40-0.json").read_text())


def _list(kind: str, items: list[dict]) -> dict:
    stripped = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return {"kind": f"{kind}List", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "48250"},
            "items": stripped}


ROUTES = {
    "/apis/apps/v1/namespaces/shop/deployments": _list("Deployment", [live_workload("shop", "web")]),
    "/apis/apps/v1/namespaces/shop/statefulsets": _list("StatefulSet", [live_workload("shop", "db", kind="StatefulSet")]),
    "/apis/apps/v1/namespaces/shop/daemonsets": _list("DaemonSet", []),
    "/api/v1/pods": PODS,
}


@pytest.fixture
def api_server():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            seen.append(path)
            body = json.dumps(ROUTES[path]).encode() if path in ROUTES else b'{"kind":"Status","code":403}'
            self.send_response(200 if path in ROUTES else 403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _client(url: str) -> KubeLive:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0  # a refused connection fails at once (urllib3 retries 3 times by default)
    return KubeLive(configuration)


def test_workloads_of_a_namespace_come_back_as_the_api_servers_json_with_their_kind(api_server):
    url, seen = api_server
    found = _client(url).workloads("shop")
    assert [(o["kind"], o["metadata"]["name"]) for o in found] == [("Deployment", "web"), ("StatefulSet", "db")]
    assert found[0]["spec"] == live_workload("shop", "web")["spec"], "camelCase, exactly as served"
    assert seen == list(ROUTES)[:3]


def test_pods_are_listed_cluster_wide_whatever_their_phase(api_server):
    url, _ = api_server
    pods = _client(url).pods()
    assert pods == PODS["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running", "Pending"}


def test_a_refused_or_unreachable_api_is_a_platform_error(api_server):
    url, _ = api_server
    with pytest.raises(PlatformError, match="cannot list what runs"):
        _client(url).workloads("payments")  # 403
    with pytest.raises(PlatformError, match="cannot list what runs"):
        _client("http://127.0.0.1:9").pods()  # nothing listens on the discard port


def test_the_stacks_context_is_used_and_never_swapped_for_another_cluster(tmp_path, api_server):
    url, seen = api_server
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "someone-elses",
        "clusters": [{"name": "stack", "cluster": {"server": url}},
                     {"name": "other", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "kind-meshlift-dev", "context": {"cluster": "stack", "user": "u"}},
                     {"name": "someone-elses", "context": {"cluster": "other", "user": "u"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    assert KubeLive(context="kind-meshlift-dev", kubeconfig=str(path)).pods() == PODS["items"]
    inline = KubeLive(context="kind-meshlift-dev", kubeconfig=json.dumps(kubeconfig))
    assert inline.pods() == PODS["items"], "kubernetes:kubeconfig may hold the kubeconfig itself"
    with pytest.raises(PlatformError, match="no Kubernetes configuration"):
        KubeLive(context="missing", kubeconfig=str(path)).pods()
