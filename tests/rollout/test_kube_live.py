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


def _client(url: str, **options) -> KubeLive:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0  # a refused connection fails at once (urllib3 retries 3 times by default)
    return KubeLive(configuration, **{"retry_s": 0, **options})


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


# ---------------------------------------------------------------- churn: retries, pages, writes


@pytest.fixture
def scripted_server():
    """An API endpoint answering each path from a queue of (status, body) replies; the last one repeats."""
    script: dict[str, list[tuple[int, dict]]] = {}
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, path, query if self.command == "GET" else self.rfile.read(length).decode()))
            replies = script.get(path) or [(404, {"kind": "Status", "code": 404})]
            status, body = replies.pop(0) if len(replies) > 1 else replies[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script, seen
    server.shutdown()
    server.server_close()


def _status(code: int) -> tuple[int, dict]:
    return code, {"kind": "Status", "apiVersion": "v1", "code": code}


def _quick(url: str, retry_s: float = 30.0) -> KubeLive:
    """A reader that retries transient answers without really sleeping: its clock moves by what it waits."""
    waits: list[float] = []
    live = _client(url, retry_s=retry_s, sleep=waits.append, clock=lambda: sum(waits))
    live.waits = waits  # type: ignore[attr-defined]
    return live


def test_transient_answers_are_retried_until_the_api_answers(scripted_server):
    url, script, seen = scripted_server
    script["/api/v1/pods"] = [_status(429), _status(503), _status(500), (200, PODS)]
    live = _quick(url)
    assert live.pods() == PODS["items"]
    assert len(seen) == 4 and live.waits == [0.5, 1.0, 2.0], "backed off between attempts"


def test_a_transient_answer_that_outlasts_the_retry_budget_is_a_platform_error(scripted_server):
    url, script, _ = scripted_server
    script["/api/v1/pods"] = [_status(503)]
    clock = iter(range(0, 1000, 2))
    live = _client(url, retry_s=10, sleep=lambda s: None, clock=lambda: next(clock))
    with pytest.raises(PlatformError, match="503"):
        live.pods()


def test_a_forbidden_list_is_not_retried(scripted_server):
    url, script, seen = scripted_server
    script["/api/v1/pods"] = [_status(403), (200, PODS)]
    with pytest.raises(PlatformError, match="403"):
        _quick(url).pods()
    assert len(seen) == 1


def test_a_refused_connection_is_retried_like_an_api_server_restarting(scripted_server):
    url, script, _ = scripted_server
    live = _quick("http://127.0.0.1:9", retry_s=3)
    with pytest.raises(PlatformError, match="cannot list"):
        live.pods()
    assert live.waits == [0.5, 1.0], "a refused connection is retried while the budget lasts"


def test_lists_are_read_page_by_page(scripted_server):
    url, script, seen = scripted_server
    first, second = PODS["items"][:2], PODS["items"][2:]
    script["/api/v1/pods"] = [(200, {"kind": "PodList", "metadata": {"continue": "page-2"}, "items": first}),
                              (200, {"kind": "PodList", "metadata": {}, "items": second})]
    assert _quick(url).pods() == PODS["items"]
    queries = [query for _, _, query in seen]
    assert "limit=500" in queries[0] and "continue" not in queries[0]
    assert "continue=page-2" in queries[1]


def test_an_expired_continue_token_restarts_the_list_once(scripted_server):
    url, script, seen = scripted_server
    script["/api/v1/pods"] = [(200, {"kind": "PodList", "metadata": {"continue": "old"}, "items": PODS["items"][:1]}),
                              _status(410), (200, PODS)]
    assert _quick(url).pods() == PODS["items"], "nothing listed twice, nothing lost"
    assert len(seen) == 3


def test_revision_sources_list_every_kind_and_no_gateways_without_the_crd(scripted_server):
    url, script, seen = scripted_server
    cronjob = {"metadata": {"name": "report", "namespace": "batch"},
               "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"istio.io/rev": "1-30-3"}}}}}}}
    script["/api/v1/namespaces"] = [(200, {"items": [{"metadata": {"name": "batch"}}]})]
    script["/apis/batch/v1/cronjobs"] = [(200, {"items": [cronjob]})]
    for path in ("/apis/apps/v1/deployments", "/apis/apps/v1/statefulsets", "/apis/apps/v1/daemonsets",
                 "/apis/apps/v1/replicasets", "/apis/batch/v1/jobs"):
        script[path] = [(200, {"items": []})]
    sources = _quick(url).revision_sources()
    assert sources["namespaces"] == [{"metadata": {"name": "batch"}}]
    assert [(t["kind"], t["metadata"]["name"]) for t in sources["templates"]] == [("CronJob", "report")]
    assert sources["gateways"] == []
    assert ("GET", "/apis/gateway.networking.k8s.io/v1/gateways") in [(m, p) for m, p, _ in seen]


def test_an_eviction_a_disruption_budget_refuses_is_not_an_error(scripted_server):
    url, script, seen = scripted_server
    path = "/api/v1/namespaces/data/pods/ledger-0/eviction"
    script[path] = [_status(429), (201, {"kind": "Status", "code": 201})]
    live = _quick(url)
    assert live.evict("data", "ledger-0") is False
    assert live.evict("data", "ledger-0") is True
    method, called, body = seen[0]
    assert (method, called) == ("POST", path)
    assert json.loads(body)["metadata"] == {"name": "ledger-0", "namespace": "data"}


def test_deleting_a_pod_that_is_gone_already_is_done(scripted_server):
    url, script, seen = scripted_server
    script["/api/v1/namespaces/data/pods/ledger-1"] = [_status(404)]
    _quick(url).delete_pod("data", "ledger-1")
    script["/api/v1/namespaces/data/pods/ledger-2"] = [_status(403)]
    with pytest.raises(PlatformError, match="delete pod data/ledger-2: 403"):
        _quick(url).delete_pod("data", "ledger-2")
