"""Live workloads as the Kubernetes provider returns them from a read: the API server's objects.

Shaped like `kubectl get deployment -o json` on a real cluster for objects a
team installed with Helm (managedFields of `helm`, the defaulted fields the API
server adds, status). The mocks answer `Deployment.get` / `StatefulSet.get`
with these, so the program clones exactly what a cluster would hand it. The
same cluster answers the program's read of Helm's release records (a takeover's
installed values), in the shape of `kubectl get secret -o json`.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from typing import Any

PROXY_CONFIG = "proxy.istio.io/config"


def live_workload(namespace: str, name: str, *, kind: str = "Deployment", replicas: int = 3,
                  image: str | None = None, port: int = 8080, proxy_config: str | None = None,
                  labels: dict[str, str] | None = None) -> dict[str, Any]:
    """One Deployment or StatefulSet of a Helm release named after it."""
    pod_labels = {"app": name, "version": "v1", **(labels or {})}
    annotations = {"prometheus.io/scrape": "true"}
    if proxy_config is not None:
        annotations[PROXY_CONFIG] = proxy_config
    spec: dict[str, Any] = {
        "replicas": replicas,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": name, "version": "v1"}},
        "template": {
            "metadata": {"creationTimestamp": None, "labels": pod_labels, "annotations": annotations},
            "spec": {
                "serviceAccountName": name,
                "containers": [{
                    "name": name,
                    "image": image or f"registry.example.com/{namespace}/{name}:2.14.0",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
            },
        },
    }
    if kind == "Deployment":
        spec.update({
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        })
        status = {"observedGeneration": 4, "replicas": replicas, "readyReplicas": replicas,
                  "updatedReplicas": replicas, "availableReplicas": replicas}
    else:
        spec.update({
            "serviceName": f"{name}-headless",
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "volumeClaimTemplates": [{
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        })
        spec["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        status = {"observedGeneration": 4, "replicas": replicas, "readyReplicas": replicas,
                  "currentReplicas": replicas, "updatedReplicas": replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"00000000-0000-4000-8000-{abs(hash((namespace, name))) % 10**12:012d}",
            "resourceVersion": "48213",
            "generation": 4,
            "creationTimestamp": "2026-11-21T09:58:01Z",
            "labels": {"app": name, "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": f"{name}-2.14.0"},
            "annotations": {"deployment.kubernetes.io/revision": "4", "meta.helm.sh/release-name": name,
                            "meta.helm.sh/release-namespace": namespace},
            "managedFields": [{
                "manager": "helm", "operation": "Update", "apiVersion": "apps/v1",
                "time": "2026-11-21T09:58:01Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}},
            }],
        },
        "spec": spec,
        "status": status,
    }


def helm_record(name: str, namespace: str, version: int, config: dict[str, Any], status: str = "deployed",
                chart_values: dict[str, Any] | None = None) -> dict:
    """A `sh.helm.release.v1.<name>.v<N>` Secret as the API server returns it (data: base64 of Helm's base64)."""
    record = {"name": name, "namespace": namespace, "version": version, "config": config, "info": {"status": status},
              "chart": {"metadata": {"name": "gateway"}, "values": chart_values or {}}}
    helm = base64.b64encode(gzip.compress(json.dumps(record).encode())).decode()
    return {"metadata": {"name": f"sh.helm.release.v1.{name}.v{version}", "namespace": namespace,
                         "labels": {"owner": "helm", "name": name, "status": status, "version": str(version)}},
            "data": {"release": base64.b64encode(helm.encode()).decode()}}


class Cluster:
    """What runs: `(kind, "namespace/name") -> object`, answered to the program's reads.

    Also the program's cluster reader (`rollout.preflight.live_reader`, replaced for each run by
    tests.components.program): Helm's release records by `(namespace, release)`, each read kept in
    `helm_reads`, the config of each reader built in `readers`; `fail_with` makes every read fail.
    """

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], f"{o['metadata']['namespace']}/{o['metadata']['name']}"): o for o in objects}
        self.helm_secrets: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.helm_reads: list[tuple[str, str]] = []
        self.readers: list[dict[str, Any]] = []
        self.fail_with: Exception | None = None

    def helm_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        self.helm_reads.append((namespace, release))
        if self.fail_with is not None:
            raise self.fail_with
        return copy.deepcopy(self.helm_secrets.get((namespace, release), []))

    def installed(self, namespace: str, release: str, values: dict[str, Any], **record: Any) -> None:
        """A release Helm installed (revision 1) with `values`."""
        self.helm_secrets[(namespace, release)] = [helm_record(release, namespace, 1, values, **record)]

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        kind = resource_type.rsplit(":", 1)[-1]
        try:
            return copy.deepcopy(self.objects[(kind, resource_id)])
        except KeyError:
            # What the provider says when a read finds nothing.
            raise LookupError(f"resource '{resource_id}' does not exist") from None

    def inventory(self, *namespaces: str) -> dict[str, list[dict[str, Any]]]:
        """`meshlift:inventory` as meshlift records it from this cluster."""
        from meshmodel.clone import inventory_entry

        return {namespace: [inventory_entry(o) for (_, key), o in self.objects.items()
                            if key.split("/")[0] == namespace]
                for namespace in namespaces}


def example_cluster() -> Cluster:
    """The workloads the example stacks and the small test configs select."""
    return Cluster(
        live_workload("shop", "frontend", replicas=2),
        live_workload("shop", "cart", replicas=1),
        live_workload("shop", "web", replicas=2, proxy_config="tracing:\n  sampling: 5.0\n"),
        live_workload("payments", "payments-api", replicas=2, port=9000),
        live_workload("payments", "ledger", kind="StatefulSet", replicas=3),
        live_workload("payments", "payments-ledger", kind="StatefulSet", replicas=3),
        live_workload("internal-tools", "status-page"),
        live_workload("catalog", "catalog-api", replicas=6),
        live_workload("team-0", "svc-0"),
    )



def with_field(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with the dotted `path` (`spec.template.spec.hostNetwork`) set to `value`."""
    obj = copy.deepcopy(obj)
    node = obj
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return obj
