"""Stack configs for the real engine: the cluster rehearsal's mesh, mid-upgrade or with other namespaces."""

from __future__ import annotations

from typing import Any

from localcluster.charts import ChartRepository
from localcluster.cluster import LocalCluster
from rollout.cluster_rehearsal import FROM, FROM_REV, TO, TO_REV, stack_config

__all__ = ["FROM", "FROM_REV", "TO", "TO_REV", "mesh_stack", "takeover_stack"]


def mesh_stack(cluster: LocalCluster, repository: ChartRepository, *, stage: str = "install",
               namespaces: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Both revisions installed and `meshlift:rollout` at `stage`; by default two namespaces meshlift creates."""
    config = stack_config(cluster.kubeconfig, cluster.context, repository.url)
    config["meshlift:revisions"] = [{"version": FROM}, {"version": TO}]
    config["meshlift:namespaces"] = namespaces if namespaces is not None else [
        {"name": "shop", "revision": "stable", "wave": 1},
        {"name": "payments", "revision": "stable", "wave": 2},
    ]
    config["meshlift:rollout"] = {"from": FROM, "to": TO, "stage": stage}
    for key, value in extra.items():
        config[f"meshlift:{key}"] = value
    return config


def takeover_stack(cluster: LocalCluster, repository: ChartRepository, *, gateway: dict[str, Any] | None = None,
                   mesh_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mesh as meshlift declares it over an Istio installed with Helm per Istio's docs; `gateway`
    and `mesh_config` state what the installation runs with (the adopted gateway's keys, the mesh
    config the unrevisioned istiod's pods keep on meshlift's revision)."""
    config = stack_config(cluster.kubeconfig, cluster.context, repository.url)
    config["meshlift:gateways"] = [{"name": "istio-ingress", "namespace": "istio-ingress", "revision": "stable",
                                    "replicas": 1, "service": {"type": "ClusterIP"}, **(gateway or {})}]
    if mesh_config is not None:
        for revision in config["meshlift:revisions"]:
            revision["values"] = {**revision.get("values", {}), "meshConfig": mesh_config}
    config["meshlift:adopt"] = ["istio-system/istio-base", "istio-ingress/istio-ingress"]
    return config
