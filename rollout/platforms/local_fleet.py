"""The rehearsal's "what already runs": workloads someone else deployed, as the API server would show them.

The local platform does not declare workloads any more than a cluster does: it
starts from a fleet (`FleetWorkload`, replicas and pod template included) and
realizes each stage's plan on it: pods restart onto the revision their wave
says, canaries are clones of a fleet workload (its labels, `canaryReplicas`
pods). What the orchestrator reads of it is shaped like the API server's JSON,
so the same inventory and cleanup decisions run on it as on a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from checks.kube import PROXY_CONTAINER, STATUS_ANNOTATION

PROXY_IMAGE = "localmesh/envoy"  # tagged with the Envoy version standing in for the Istio version


@dataclass
class FleetWorkload:
    namespace: str
    name: str
    replicas: int
    kind: str = "Deployment"
    image: str = "local/app:1"
    labels: dict[str, str] = field(default_factory=dict)  # the workload object's own labels

    @property
    def selector(self) -> dict[str, str]:
        return {"app": self.name}

    def to_object(self) -> dict[str, Any]:
        """The workload as `kubectl get -o json` would print it, rolled out: the local platform
        starts a stage's pods (and waits for their proxies to be ready) before `apply` returns."""
        replicas = self.replicas
        return {
            "apiVersion": "apps/v1",
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels),
                         "generation": 1},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": replicas, "availableReplicas": replicas},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": self.selector},
                "template": {
                    "metadata": {"labels": dict(self.selector)},
                    "spec": {"containers": [{"name": self.name, "image": self.image}]},
                },
            },
        }


def pod_object(*, namespace: str, name: str, owner: str, labels: dict[str, str], revision: str,
               version: str, app_image: str) -> dict[str, Any]:
    """A running injected pod as the API server returns it (the fields the cleanup guard reads)."""
    kind, _, owner_name = owner.partition("/")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {STATUS_ANNOTATION: json.dumps({"containers": [PROXY_CONTAINER],
                                                                   "revision": revision})},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name, "controller": True}],
        },
        "spec": {"containers": [{"name": name.rsplit("-", 1)[0], "image": app_image},
                                {"name": PROXY_CONTAINER, "image": f"{PROXY_IMAGE}:{version}"}]},
        "status": {"phase": "Running"},
    }
