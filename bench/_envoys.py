"""Real Envoys for the benchmarks: a many-cluster proxy, raw admin reads, process ids.

localmesh proxies carry one cluster; a real sidecar carries one per service port.
`ManyClustersProxy` is a localmesh `Proxy` whose cluster set (its CDS file) has
`clusters` STATIC clusters, all pointing at the proxy's upstream endpoint, so
its admin output has the size of a 500-service mesh (~6 MB of Prometheus text).
"""

from __future__ import annotations

import http.client
from typing import Any

import localmesh as lm
from localmesh._bootstrap import static_cluster


class ManyClustersProxy(lm.Proxy):
    """A localmesh Proxy with `clusters` extra static clusters besides its own `upstream`."""

    def __init__(self, spec: lm.ProxySpec, *, clusters: int, **kw: Any) -> None:
        self._extra_clusters = clusters
        super().__init__(spec, **kw)

    def clusters(self) -> list[dict[str, Any]]:
        own = super().clusters()
        port = own[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"]
        return own + [static_cluster(name=f"service_{i}", port=port)
                      for i in range(self._extra_clusters)]


def start_many_clusters(binary: lm.EnvoyBinary, upstream: lm.Upstream, *, clusters: int = 500,
                        name: str = "many-clusters") -> ManyClustersProxy:
    """Start (and wait LIVE for) a proxy with `clusters` + 1 clusters."""
    spec = lm.ProxySpec(binary=binary, name=name)
    proxy = ManyClustersProxy(spec, clusters=clusters, upstream=upstream.endpoint(name))
    proxy.start(timeout_s=60)
    # The CDS file is read after LIVE is possible: wait until every cluster is in.
    lm.wait_until(lambda: proxy.stat("cluster_manager.active_clusters") >= clusters + 1,
                  timeout_s=30, what=f"{clusters + 1} active clusters")
    return proxy


def admin_get(port: int, path: str, *, timeout: float = 10.0) -> bytes:
    """One GET of the admin interface of a local proxy; raises OSError unless 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"GET {path} answered {resp.status}: {body[:200]!r}")
        return body
    finally:
        conn.close()


def pid_of(proxy: lm.Proxy) -> int | None:
    """The Envoy process id of a running proxy (localmesh exposes it on `proxy.process`)."""
    return proxy.process.pid
