"""Stack configs for the real engine: the example stacks' shape, on a local cluster and chart repository."""

from __future__ import annotations

from typing import Any

from localcluster.charts import ChartRepository
from localcluster.cluster import LocalCluster

FROM, TO = "1.30.3", "1.31.0"
FROM_REV, TO_REV = "1-30-3", "1-31-0"


def mesh_stack(cluster: LocalCluster, repository: ChartRepository, *, stage: str = "install",
               namespaces: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kubernetes:kubeconfig": str(cluster.kubeconfig),
        "kubernetes:context": cluster.context,
        "meshlift:chartRepository": repository.url,
        "meshlift:istioNamespace": "istio-system",
        "meshlift:revisions": [{"version": FROM}, {"version": TO}],
        "meshlift:defaultRevision": FROM_REV,
        "meshlift:tags": {"stable": FROM_REV},
        "meshlift:gateways": [{
            "name": "istio-ingressgateway", "namespace": "istio-ingress", "revision": "stable", "replicas": 2,
            "service": {"type": "ClusterIP"},
        }],
        "meshlift:namespaces": namespaces if namespaces is not None else [
            {"name": "shop", "revision": "stable", "wave": 1},
            {"name": "payments", "revision": "stable", "wave": 2},
        ],
        "meshlift:rollout": {"from": FROM, "to": TO, "stage": stage},
        "meshlift:gates": {"window": "10s", "interval": "1s", "consecutivePasses": 2, "minRequests": 1},
    }
    for key, value in extra.items():
        config[f"meshlift:{key}"] = value
    return config
