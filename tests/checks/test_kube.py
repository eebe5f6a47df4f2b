"""Kubernetes discovery through the real `kubernetes` client: only its HTTP layer is fake.

The fixture is a PodList in the API server's JSON shape (Istio-injected
bookinfo pods: classic sidecar with and without holdApplicationUntilProxyStarts,
a native sidecar, a pending pod, a pod without a proxy); it is fed to
`CoreV1Api` through its urllib3 pool manager, so deserialisation, query
building and our selection all run as they do against a cluster.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from kubernetes import client as k8s

from checks import Status, Target
from checks.context import Context
from checks.kube import discover_pods, kube_targets, pod_facts
from checks.observe import Observation, Read
from checks.rules_kube import app_started_after_proxy
from meshmodel.spec import GateSettings

PODS = Path(__file__).parent / "fixtures" / "pods_bookinfo_1-40-0.json"


class RecordedApiServer:
    """Stands in for urllib3.PoolManager inside the client's RESTClientObject."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **kwargs: object) -> urllib3.HTTPResponse:
        self.calls.append((method, url))
        return urllib3.HTTPResponse(
            body=io.BytesIO(self.body), status=self.status, preload_content=False,
            headers={"Content-Type": "application/json"}, reason="OK" if self.status == 200 else "Forbidden",
        )

    def clear(self) -> None:
        pass


@pytest.fixture
def api() -> tuple[k8s.CoreV1Api, RecordedApiServer]:
    configuration = k8s.Configuration(host="https://kube.test:6443")
    api_client = k8s.ApiClient(configuration)
    server = RecordedApiServer(PODS.read_bytes())
    api_client.rest_client.pool_manager = server
    return k8s.CoreV1Api(api_client), server


def test_discovery_selects_by_namespace_and_injected_revision(api) -> None:
    core, server = api
    pods = discover_pods(core, namespace="bookinfo", selector="app in (reviews,ratings,details)", revision="1-40-0")
    method, url = server.calls[0]
    parts = urlsplit(url)
    assert method == "GET" and parts.path == "/api/v1/namespaces/bookinfo/pods"
    # The revision is not a label selector: the injector stopped labelling pods with it.
    assert parse_qs(parts.query)["labelSelector"] == ["app in (reviews,ratings,details)"]
    # Running pods with an istio-proxy only: the pending pod and the proxy-less mysql are gone.
    assert [p.metadata.name for p in pods] == [
        "details-v1-6f7b8c9d4-klmno", "ratings-v1-5c9d7b8f4-fghij", "reviews-v1-7d8f9c6b5-abcde",
    ]


def test_discovery_across_namespaces_without_selector(api) -> None:
    core, server = api
    discover_pods(core)
    assert urlsplit(server.calls[0][1]).path == "/api/v1/pods"
    assert "labelSelector" not in parse_qs(urlsplit(server.calls[0][1]).query)


def test_api_errors_surface_as_the_clients_exception(api) -> None:
    core, server = api
    server.status, server.body = 403, json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}).encode()
    with pytest.raises(k8s.ApiException) as info:
        discover_pods(core, namespace="bookinfo")
    assert info.value.status == 403


def test_pod_facts_from_status_and_spec(api) -> None:
    core, _ = api
    facts = {p.metadata.name.split("-")[0]: pod_facts(p) for p in discover_pods(core, namespace="bookinfo")}
    reviews, ratings, details = facts["reviews"], facts["ratings"], facts["details"]
    assert reviews.revision == "1-40-0"
    assert reviews.proxy.waits_for_proxy and reviews.hold_application
    assert reviews.proxy.started_at == datetime(2026, 11, 21, 9, 58, 3, tzinfo=timezone.utc)
    assert [c.name for c in reviews.apps] == ["reviews"]  # istio-init is not an app
    assert not ratings.proxy.waits_for_proxy and ratings.hold_application is None
    assert details.proxy.native_sidecar and [c.name for c in details.apps] == ["details"]


def test_pod_facts_carry_the_teams_own_proxy_log_levels(api) -> None:
    core, server = api
    pods = json.loads(PODS.read_bytes())
    reviews = next(p for p in pods["items"] if p["metadata"]["name"].startswith("reviews-"))
    reviews["metadata"]["annotations"].update({"sidecar.istio.io/logLevel": "debug",
                                               "sidecar.istio.io/componentLogLevel": "rbac:debug"})
    server.body = json.dumps(pods).encode()
    facts = {p.metadata.name.split("-")[0]: pod_facts(p) for p in discover_pods(core, namespace="bookinfo")}
    assert (facts["reviews"].log_level, facts["reviews"].component_log_level) == ("debug", "rbac:debug")
    assert (facts["ratings"].log_level, facts["ratings"].component_log_level) == (None, None)


@pytest.mark.parametrize(
    ("pod", "status", "fragment"),
    [
        ("reviews", Status.PASS, "holdApplicationUntilProxyStarts"),
        ("details", Status.PASS, "native sidecar"),
        ("ratings", Status.FAIL, "ratings started before istio-proxy"),
    ],
)
def test_app_started_after_proxy_from_pod_status(api, pod: str, status: Status, fragment: str) -> None:
    core, _ = api
    found = {p.metadata.name.split("-")[0]: pod_facts(p) for p in discover_pods(core, namespace="bookinfo")}
    facts = found[pod]
    target = Target(f"bookinfo/{pod}", "http://127.0.0.1:1", pod=facts)
    ctx = Context(target=target, settings=GateSettings(), obs=Observation(target.name, 0.0, {Read.POD: facts}),
                  now=datetime.now(timezone.utc))
    verdict = app_started_after_proxy(ctx)
    assert verdict.status is status and fragment in verdict.message


def test_kube_targets_carry_labels_pod_facts_and_expectations(api) -> None:
    core, _ = api
    with kube_targets(core, namespace="bookinfo", revision="1-40-0", role="canary",
                      expected_version="1.40.0", forward=False) as targets:
        names = [t.name for t in targets]
        first = targets[0]
    assert names == ["bookinfo/details-v1-6f7b8c9d4-klmno", "bookinfo/ratings-v1-5c9d7b8f4-fghij",
                     "bookinfo/reviews-v1-7d8f9c6b5-abcde"]
    assert first.role == "canary" and first.expected_version == "1.40.0"
    assert first.labels["istio.io/rev"] == "1-40-0" and first.pod is not None
    assert first.admin_url == "http://10.244.1.17:15000"


def test_kube_targets_open_a_port_forward_listener_per_pod(api) -> None:
    core, _ = api
    with kube_targets(core, namespace="bookinfo", revision="1-40-0") as targets:
        urls = [t.admin_url for t in targets]
        assert all(u.startswith("http://127.0.0.1:") for u in urls) and len(set(urls)) == 3


def test_gate_discovery_lists_each_namespace_once_forwards_only_the_sample_and_reports_it(api) -> None:
    from rollout.platforms.kubernetes import KubeDiscovery
    from rollout.platforms.scope import PodSelector

    core, server = api
    discovery = KubeDiscovery(core)
    try:
        targets = discovery([
            PodSelector("bookinfo", "reviews", {"app": "reviews"}, "canary", "1.40.0"),
            PodSelector("bookinfo", "details", {"app": "details"}, "baseline", "1.39.3", sample=2),
            PodSelector("bookinfo", "ratings", {"app": "ratings"}, "baseline", "1.39.3", sample=0),
        ])
        # One list of the namespace; each selector keeps its running proxies (the pending reviews pod,
        # the proxy-less mysql and everything of other apps are not theirs).
        assert [urlsplit(url).path for _, url in server.calls] == ["/api/v1/namespaces/bookinfo/pods"]
        assert "labelSelector" not in parse_qs(urlsplit(server.calls[0][1]).query)
        assert [(t.name, t.role) for t in targets] == [("bookinfo/reviews-v1-7d8f9c6b5-abcde", "canary"),
                                                       ("bookinfo/details-v1-6f7b8c9d4-klmno", "baseline")]
        assert [s.to_dict() for s in discovery.sampled] == [
            {"workload": "bookinfo/reviews", "role": "canary", "pods": ["reviews-v1-7d8f9c6b5-abcde"], "of": 1},
            {"workload": "bookinfo/details", "role": "baseline", "pods": ["details-v1-6f7b8c9d4-klmno"], "of": 1},
            {"workload": "bookinfo/ratings", "role": "baseline", "pods": [], "of": None},  # left out: not read
        ]
        assert all(t.admin_url.startswith("http://127.0.0.1:") for t in targets)
    finally:
        discovery.close()


class FramedWebsocket:
    """The API server's side of a port-forward websocket, as recorded messages (aiohttp's shape)."""

    def __init__(self, messages: list[tuple[str, bytes]]) -> None:
        from aiohttp import WSMessage, WSMsgType

        self.messages = [WSMessage(WSMsgType[kind], data, None) for kind, data in messages]
        self.sent: list[bytes] = []

    async def __aiter__(self):
        for message in self.messages:
            yield message

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


async def test_the_port_forward_stream_skips_the_port_frames_and_strips_the_channel_byte() -> None:
    from checks.portforward import ChannelWebsocket

    port = (15000).to_bytes(2, "little")
    websocket = FramedWebsocket([("BINARY", b"\x00" + port), ("BINARY", b"\x01" + port), ("PING", b""),
                                 ("BINARY", b"\x00HTTP/1.1 200 OK\r\n"), ("BINARY", b"\x00"),
                                 ("BINARY", b"\x00\r\nLIVE"), ("CLOSE", b""), ("BINARY", b"\x00never read")])
    stream = ChannelWebsocket(websocket)
    await stream.send(b"GET /ready HTTP/1.1\r\n\r\n")
    assert websocket.sent == [b"\x00GET /ready HTTP/1.1\r\n\r\n"]
    assert [payload async for payload in stream] == [b"HTTP/1.1 200 OK\r\n", b"\r\nLIVE"]
    assert stream.error == ""


async def test_an_error_from_the_pod_side_ends_the_stream_and_is_kept() -> None:
    from checks.portforward import ChannelWebsocket

    port = (15000).to_bytes(2, "little")
    stream = ChannelWebsocket(FramedWebsocket([
        ("BINARY", b"\x00" + port), ("BINARY", b"\x01" + port),
        ("BINARY", b"\x01error forwarding port 15000: connection refused"), ("BINARY", b"\x00never read")]))
    assert [payload async for payload in stream] == []
    assert stream.error == "error forwarding port 15000: connection refused"
