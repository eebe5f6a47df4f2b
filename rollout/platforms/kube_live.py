"""What runs in the cluster, as the API server says it: workloads and pods, read-only.

A small adapter over the official `kubernetes` client, in the style of
`checks.kube`: it lists, and nothing else; every decision on what it returns is
pure and lives elsewhere (`meshmodel.clone.inventory_entry`,
`rollout.leftovers`). Objects are returned as the API server's own JSON
(`_preload_content=False`, camelCase keys, exactly what `kubectl get -o json`
prints), not as the client's snake_case models, so the same decisions run on
recorded API objects in tests and on a live cluster here.

It talks to the stack's cluster, never to whatever the current context is: the
platform passes the stack's `kubernetes:context` and `kubernetes:kubeconfig`
(a path, or the kubeconfig itself, as the provider accepts it); tests and the
end-to-end suite may hand it a ready `kubernetes.client.Configuration`. Each
call gets its own `ApiClient` from that one configuration: the client's stream
helpers patch an `ApiClient` in place (see ISTIO_K8S_FACTS.md), and nothing
here must share one with a port-forward.

RBAC: `list` on deployments, statefulsets, daemonsets (apps) in the enrolled
namespaces, and on pods cluster-wide.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.errors import PlatformError

# kind -> the AppsV1Api list call for one namespace
_LISTS = {
    "Deployment": "list_namespaced_deployment",
    "StatefulSet": "list_namespaced_stateful_set",
    "DaemonSet": "list_namespaced_daemon_set",
}
REQUEST_TIMEOUT_S = 30.0


class KubeLive:
    """Lists workloads and pods of one cluster."""

    def __init__(self, configuration: Any = None, *, context: str | None = None,
                 kubeconfig: str | None = None) -> None:
        self._configuration = configuration  # a loaded kubernetes.client.Configuration, if given
        self.context = context
        self.kubeconfig = kubeconfig

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Deployments, StatefulSets and DaemonSets of `namespace` (each with its `kind`)."""
        from kubernetes import client

        found: list[dict[str, Any]] = []
        with client.ApiClient(self._config()) as api:
            apps = client.AppsV1Api(api)
            for kind, call in _LISTS.items():
                for item in self._items(getattr(apps, call), namespace):
                    item.setdefault("kind", kind)  # list items omit it
                    item.setdefault("apiVersion", "apps/v1")
                    found.append(item)
        return found

    def pods(self) -> list[dict[str, Any]]:
        """Every pod of the cluster, whatever its phase (finished pods included)."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            return self._items(client.CoreV1Api(api).list_pod_for_all_namespaces)

    @staticmethod
    def _items(call: Any, *args: Any) -> list[dict[str, Any]]:
        try:
            response = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S)
            return list(json.loads(response.data).get("items") or [])
        except Exception as error:  # unreachable, RBAC, garbled: nothing can be decided
            raise PlatformError(f"cannot list what runs in the cluster: {error}") from error

    def _config(self) -> Any:
        if self._configuration is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                self._load(config, configuration)
            except Exception as error:
                raise PlatformError(f"no Kubernetes configuration to list what runs: {error}") from error
            self._configuration = configuration
        return self._configuration

    def _load(self, config: Any, configuration: Any) -> None:
        import os

        import yaml

        if self.kubeconfig and not os.path.exists(self.kubeconfig):  # the kubeconfig itself, inline
            config.load_kube_config_from_dict(yaml.safe_load(self.kubeconfig), context=self.context,
                                              client_configuration=configuration)
            return
        try:
            config.load_kube_config(config_file=self.kubeconfig, context=self.context,
                                    client_configuration=configuration)
        except config.ConfigException:
            if self.context or self.kubeconfig:
                raise  # the stack names a cluster: never fall back to another one
            config.load_incluster_config(client_configuration=configuration)
