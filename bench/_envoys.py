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
