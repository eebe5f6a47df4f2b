"""The gates' Kubernetes discovery and port-forwards on a real API server (kwok nodes).

Pods are created through the API the way the injector leaves them (an
`istio-proxy` container, the `sidecar.istio.io/status` annotation, no
`istio.io/rev` label); each pod's port 15000 is forwarded by kwok to a real
Envoy admin interface on loopback. No container image runs.
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from checks.kube import api_for, discover_pods, kube_targets
from localcluster.cluster import merged_kubeconfig
from localcluster.portforward import forward_pod
from rollout.platforms.kubernetes import KubeDiscovery
from rollout.platforms.scope import PodSelector
from tests.e2e.kube import Kube, eventually

REVISION = "1-31-0"


def injected_pod(name: str, *, app: str, revision: str = REVISION, labels: dict[str, str] | None = None) -> dict:
    status = {"initContainers": ["istio-init"], "containers": ["istio-proxy"], "revision": revision}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, **(labels or {})},
                     "annotations": {"sidecar.istio.io/status": json.dumps(status)}},
        "spec": {"containers": [{"name": app, "image": f"example/{app}:1"},
                                {"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{revision.replace('-', '.')}"}]},
    }


def create_running(kube: Kube, namespace: str, pods: list[dict]) -> None:
    try:
        kube.core.create_namespace({"metadata": {"name": namespace}})
    except Exception:  # noqa: BLE001 - already there from an earlier test of this module
        pass
    for pod in pods:
        kube.core.create_namespaced_pod(namespace, pod)
    names = {p["metadata"]["name"] for p in pods}
    eventually(lambda: {p.metadata.name for p in kube.core.list_namespaced_pod(namespace).items
                        if p.status.phase == "Running"} >= names, what=f"pods running in {namespace}")


def forwarded_pods(kube: Kube, app: str, count: int, envoy) -> None:
    """`count` running pods of `app` in the namespace of that name, each one's port 15000 forwarded to `envoy`."""
    pods = [injected_pod(f"{app}-{i}", app=app) for i in range(count)]
    create_running(kube, app, pods)
    for pod in pods:
        forward_pod(kube.custom, app, pod["metadata"]["name"], {15000: envoy.admin_port})


@pytest.fixture(scope="module")
def two_clusters(clusters):
    return clusters.start("east"), clusters.start("west")


@pytest.fixture(scope="module")
def envoy():
    """A real Envoy whose admin interface stands in for the pods' istio-proxy port 15000."""
    import localmesh as lm

    with lm.Upstream(name="api") as upstream, lm.start_proxy(lm.target_envoy(), upstream, name="api") as proxy:
        yield proxy


def test_discovery_finds_pods_by_the_revision_that_injected_them(two_clusters) -> None:
    east, _ = two_clusters
    kube = Kube.of(east)
    create_running(kube, "reviews", [
        injected_pod("reviews-a", app="reviews"),
        injected_pod("reviews-old", app="reviews", revision="1-30-3"),
        # Pinned by its own label but injected by 1.30.3: the annotation decides.
        injected_pod("reviews-pinned", app="reviews", revision="1-30-3", labels={"istio.io/rev": REVISION}),
    ])
    found = discover_pods(kube.core, namespace="reviews", selector="app=reviews", revision=REVISION)
    assert [p.metadata.name for p in found] == ["reviews-a"]
    assert "istio.io/rev" not in (found[0].metadata.labels or {}), "a real injected pod carries no revision label"


def test_gates_judge_the_stacks_cluster_not_the_current_context(two_clusters, tmp_path) -> None:
    east, west = two_clusters
    create_running(Kube.of(east), "shop", [injected_pod("web-east", app="web")])
    create_running(Kube.of(west), "shop", [injected_pod("web-west", app="web")])
    # One kubeconfig with both clusters, west current: the stack names east.
    kubeconfig = merged_kubeconfig([east, west], tmp_path / "kubeconfig", current=west.context)
    selector = PodSelector("shop", "web", {"app": "web"}, "canary")
    discovery = KubeDiscovery(kubeconfig=str(kubeconfig), context=east.context)
    try:
        assert [t.name for t in discovery([selector])] == ["shop/web-east"]
    finally:
        discovery.close()
    # And the current context is what a discovery that names none would have used.
    assert [p.metadata.name for p in discover_pods(api_for(kubeconfig=str(kubeconfig)), namespace="shop")] == ["web-west"]


def test_hundreds_of_concurrent_port_forwarded_reads_leave_discovery_working(two_clusters, envoy) -> None:
    east, _ = two_clusters
    forwarded_pods(Kube.of(east), "api", 8, envoy)
    core = api_for(kubeconfig=str(east.kubeconfig), context=east.context)
    with kube_targets(core, namespace="api", selector="app=api", revision=REVISION) as targets:
        assert len(targets) == 8

        def read(index: int) -> int:
            target = targets[index % len(targets)]
            # A new connection each time: every read is a port-forward stream of its own.
            with httpx.Client(timeout=30) as client:
                return client.get(f"{target.admin_url}/server_info").status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            reads = pool.map(read, range(240))
            # Discovery on the same client while the streams run.
            during = [len(discover_pods(core, namespace="api", selector="app=api", revision=REVISION)) for _ in range(20)]
            statuses = list(reads)
    assert statuses.count(200) == 240, {s: statuses.count(s) for s in set(statuses)}
    assert during == [8] * 20


def test_port_forwards_work_when_the_process_holds_more_than_1024_file_descriptors(two_clusters, envoy) -> None:
    """A gate over a few hundred pods holds a socket or two per forward and per connection; the
    client library's own port-forward multiplexes with select(), which cannot take a descriptor
    numbered past 1,023. Here every new socket is numbered past it, as at that scale."""
    import os

    east, _ = two_clusters
    forwarded_pods(Kube.of(east), "many", 4, envoy)
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert min(held[-10:]) > 1024
        core = api_for(kubeconfig=str(east.kubeconfig), context=east.context)
        with kube_targets(core, namespace="many", selector="app=many", revision=REVISION) as targets:
            with httpx.Client(timeout=30) as client:
                statuses = [client.get(f"{t.admin_url}/server_info").status_code for t in targets for _ in range(3)]
    finally:
        for fd in held:
            os.close(fd)
    assert statuses == [200] * 12
