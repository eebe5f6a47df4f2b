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

Lists are paginated (`limit`/`continue`, restarted if the continue token
expires), and transient answers (429 from API Priority and Fairness, 5xx, a
refused or reset connection while the API server restarts) are retried with
backoff for `retry_s` seconds before they count as a failure.

Besides listing, two writes, both on pods and both only where meshlift must act
on a pod itself: evicting one pod (the eviction API, which a PodDisruptionBudget
may refuse with 429: the caller retries later) and deleting one pod (a
StatefulSet pod stuck on a reverted revision, which its controller never
replaces: kubernetes/kubernetes#67250).

RBAC: `list` on deployments, statefulsets, daemonsets (apps) and
horizontalpodautoscalers in the enrolled namespaces; `list` cluster-wide on
pods, namespaces, deployments, statefulsets, daemonsets, replicasets, jobs,
cronjobs and gateways.gateway.networking.k8s.io (the cleanup guard) and on
Istio's config kinds (`get` too: a pinned object's label patch is created only
once the object is read); `list` on the Secrets of adopted releases' namespaces
(Helm's release records); `create`
on pods/eviction and `delete` on pods in the enrolled namespaces (only used
with `meshlift:restarts.onDelete: evict` and for a stuck StatefulSet pod).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rollout.errors import PlatformError

# kind -> the AppsV1Api list call for one namespace
_LISTS = {
    "Deployment": "list_namespaced_deployment",
    "StatefulSet": "list_namespaced_stateful_set",
    "DaemonSet": "list_namespaced_daemon_set",
}
# kind -> (API group client, cluster-wide list call): every kind whose pod template can ask for a revision
_TEMPLATE_LISTS = {
    "Deployment": ("AppsV1Api", "list_deployment_for_all_namespaces"),
    "StatefulSet": ("AppsV1Api", "list_stateful_set_for_all_namespaces"),
    "DaemonSet": ("AppsV1Api", "list_daemon_set_for_all_namespaces"),
    "ReplicaSet": ("AppsV1Api", "list_replica_set_for_all_namespaces"),
    "Job": ("BatchV1Api", "list_job_for_all_namespaces"),
    "CronJob": ("BatchV1Api", "list_cron_job_for_all_namespaces"),
}
GATEWAY_API = ("gateway.networking.k8s.io", "v1", "gateways")
REQUEST_TIMEOUT_S = 30.0
PAGE_SIZE = 500
RETRY_S = 15.0  # how long transient answers are retried before a call fails
TRANSIENT_STATUS = (429, 500, 502, 503, 504)


class KubeLive:
    """Lists workloads and pods of one cluster; evicts or deletes one pod when asked."""

    def __init__(self, configuration: Any = None, *, context: str | None = None,
                 kubeconfig: str | None = None, timeout_s: float = REQUEST_TIMEOUT_S, retry_s: float = RETRY_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self._configuration = configuration  # a loaded kubernetes.client.Configuration, if given
        self.context = context
        self.kubeconfig = kubeconfig
        self.timeout_s = timeout_s  # each request's; `meshlift plan` asks briefly, a run waits longer
        self.retry_s = retry_s
        self._sleep, self._clock = sleep, clock

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Deployments, StatefulSets and DaemonSets of `namespace` (each with its `kind`)."""
        from kubernetes import client

        found: list[dict[str, Any]] = []
        with client.ApiClient(self._config()) as api:
            apps = client.AppsV1Api(api)
            for kind, call in _LISTS.items():
                for item in self._items(getattr(apps, call), namespace):
                    found.append(_with_kind(item, kind, "apps/v1"))
        return found

    def autoscalers(self, namespace: str) -> list[dict[str, Any]]:
        """The HorizontalPodAutoscalers of `namespace` (each with its `kind`)."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            calls = client.AutoscalingV2Api(api)
            # Only a warning rests on them: without the right to list them, there are none to warn about.
            return [_with_kind(item, "HorizontalPodAutoscaler", "autoscaling/v2")
                    for item in self._optional_items(calls.list_namespaced_horizontal_pod_autoscaler, namespace,
                                                     absent=(403, 404))]

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        """Every pod of the cluster (or of `namespace`, matching `selector`), whatever its phase."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            core = client.CoreV1Api(api)
            extra = {"label_selector": selector} if selector else {}
            if namespace is None:
                return self._items(core.list_pod_for_all_namespaces, **extra)
            return self._items(core.list_namespaced_pod, namespace, **extra)

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        """What can still ask for a revision, cluster-wide: `namespaces`, `templates` (every kind with a pod
        template, each with its `kind`) and Gateway API `gateways` (none where the CRD is not installed)."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            namespaces = self._items(client.CoreV1Api(api).list_namespace)
            templates: list[dict[str, Any]] = []
            for kind, (group, call) in _TEMPLATE_LISTS.items():
                api_version = "batch/v1" if group == "BatchV1Api" else "apps/v1"
                templates += [_with_kind(item, kind, api_version)
                              for item in self._items(getattr(getattr(client, group)(api), call))]
            gateways = self._optional_items(client.CustomObjectsApi(api).list_custom_object_for_all_namespaces,
                                            *GATEWAY_API)
        return {"namespaces": namespaces, "templates": templates,
                "gateways": [_with_kind(item, "Gateway", f"{GATEWAY_API[0]}/{GATEWAY_API[1]}") for item in gateways]}

    def namespaces(self) -> list[dict[str, Any]]:
        """Every namespace of the cluster, with its labels, annotations and managedFields."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            return self._items(client.CoreV1Api(api).list_namespace)

    def helm_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        """Helm's release records of one release (Secrets labelled owner=helm, name=<release>)."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            return self._items(client.CoreV1Api(api).list_namespaced_secret, namespace,
                               label_selector=f"owner=helm,name={release}")

    def custom_objects(self, group: str, version: str, plural: str, *, label_selector: str) -> list[dict[str, Any]]:
        """Custom objects of one kind in every namespace; none when the cluster does not serve the kind."""
        from kubernetes import client

        with client.ApiClient(self._config()) as api:
            return self._optional_items(client.CustomObjectsApi(api).list_cluster_custom_object, group, version,
                                        plural, label_selector=label_selector)

    def custom_object(self, group: str, version: str, plural: str, namespace: str,
                      name: str) -> dict[str, Any] | None:
        """One custom object; None when it (or its kind) does not exist."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with client.ApiClient(self._config()) as api:
            calls = client.CustomObjectsApi(api)
            try:
                response = self._retrying(lambda: calls.get_namespaced_custom_object(
                    group, version, namespace, plural, name, _preload_content=False,
                    _request_timeout=self.timeout_s), what=f"read {plural}.{group} {namespace}/{name}")
            except PlatformError as error:
                if isinstance(error.__cause__, ApiException) and error.__cause__.status == 404:
                    return None
                raise
        return json.loads(response.data)

    def evict(self, namespace: str, pod: str) -> bool:
        """Ask the API server to evict one pod; False when a PodDisruptionBudget does not allow it now."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
        with client.ApiClient(self._config()) as api:
            try:
                self._retrying(lambda: client.CoreV1Api(api).create_namespaced_pod_eviction(
                    pod, namespace, body, _request_timeout=REQUEST_TIMEOUT_S), what=f"evict pod {namespace}/{pod}",
                    transient=(500, 502, 503, 504))
            except PlatformError as error:
                cause = error.__cause__
                if isinstance(cause, ApiException) and cause.status == 429:
                    return False  # the budget allows no disruption now
                if isinstance(cause, ApiException) and cause.status == 404:
                    return True  # gone already
                raise
        return True

    def delete_pod(self, namespace: str, pod: str) -> None:
        """Delete one pod (its controller makes it again); PlatformError if the stack's identity may not."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with client.ApiClient(self._config()) as api:
            try:
                self._retrying(lambda: client.CoreV1Api(api).delete_namespaced_pod(
                    pod, namespace, _request_timeout=REQUEST_TIMEOUT_S), what=f"delete pod {namespace}/{pod}")
            except PlatformError as error:
                if isinstance(error.__cause__, ApiException) and error.__cause__.status == 404:
                    return
                raise

    # ------------------------------------------------------------------ listing

    def _items(self, call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a list call, page by page; a continue token that expired (410) restarts it once."""
        from kubernetes.client.exceptions import ApiException

        for attempt in range(2):
            items: list[dict[str, Any]] = []
            token: str | None = None
            try:
                while True:
                    page = self._retrying(lambda: self._page(call, args, kwargs, token))
                    items += page.get("items") or []
                    token = (page.get("metadata") or {}).get("continue") or None
                    if token is None:
                        return items
            except PlatformError as error:
                expired = isinstance(error.__cause__, ApiException) and error.__cause__.status == 410
                if not (expired and token is not None and attempt == 0):
                    raise
        raise AssertionError("unreachable")

    def _optional_items(self, call: Any, *args: Any, absent: tuple[int, ...] = (404,),
                        **kwargs: Any) -> list[dict[str, Any]]:
        """Like `_items`, but a resource the cluster does not serve (404: its CRD is absent) lists nothing."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._items(call, *args, **kwargs)
        except PlatformError as error:
            if isinstance(error.__cause__, ApiException) and error.__cause__.status in absent:
                return []
            raise

    def _page(self, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any], token: str | None) -> dict[str, Any]:
        options = {**kwargs, "limit": PAGE_SIZE}
        if token:
            options["_continue"] = token
        response = call(*args, **options, _preload_content=False, _request_timeout=self.timeout_s)
        return json.loads(response.data)

    def _retrying(self, action: Callable[[], Any], *, what: str = "list what runs in the cluster",
                  transient: tuple[int, ...] = TRANSIENT_STATUS) -> Any:
        """`action()`, retried with backoff while the API answers transiently, for `retry_s` at most."""
        deadline = self._clock() + self.retry_s
        wait = 0.5
        while True:
            try:
                return action()
            except Exception as error:  # unreachable, RBAC, garbled: translated once, here
                if not _transient(error, transient) or self._clock() + wait > deadline:
                    raise PlatformError(f"cannot {what}: {_short(error)}") from error
            self._sleep(wait)
            wait = min(wait * 2, 5.0)

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


def _with_kind(item: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    item.setdefault("kind", kind)  # list items omit it
    item.setdefault("apiVersion", api_version)
    return item


def _transient(error: Exception, statuses: tuple[int, ...]) -> bool:
    """A 429/5xx answer, or a connection refused, reset or timed out (an API server restarting)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(error, ApiException):
        return error.status in statuses
    return isinstance(error, (HTTPError, OSError))


def _short(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return str(error)
