"""Reading what the real engine left in the cluster, through the Kubernetes API."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client

from localcluster.cluster import LocalCluster
from tests.label_selectors import selects

T = TypeVar("T")


@dataclass
class Kube:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    admission: client.AdmissionregistrationV1Api
    custom: client.CustomObjectsApi

    @classmethod
    def of(cls, cluster: LocalCluster) -> Kube:
        api = cluster.api_client()
        return cls(client.CoreV1Api(api), client.AppsV1Api(api), client.AdmissionregistrationV1Api(api),
                   client.CustomObjectsApi(api))

    def helm_releases(self, namespace: str) -> dict[str, dict[str, Any]]:
        """name -> the deployed Helm release record (chart metadata, values, status), as Helm stores it."""
        secrets = self.core.list_namespaced_secret(namespace, label_selector="owner=helm").items
        releases: dict[str, dict[str, Any]] = {}
        for secret in secrets:
            record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret.data["release"]))))
            if record["info"]["status"] == "deployed":
                releases[record["name"]] = record
        return releases

    def namespace_labels(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespace(name).metadata.labels or {})

    def mutating_webhooks(self) -> dict[str, Any]:
        return {w.metadata.name: w for w in self.admission.list_mutating_webhook_configuration().items}

    def validating_webhooks(self) -> dict[str, Any]:
        return {w.metadata.name: w for w in self.admission.list_validating_webhook_configuration().items}

    def deployment_revisions(self, namespace: str) -> dict[str, str | None]:
        """Deployment name -> its own `istio.io/rev` label (None without): the revision whose `istioctl analyze`
        reads it (an unlabelled one is read by every revision's)."""
        return {d.metadata.name: (d.metadata.labels or {}).get("istio.io/rev")
                for d in self.apps.list_namespaced_deployment(namespace).items}

    def fields_of(self, namespace: str, deployment: str, manager: str) -> str:
        """The fields `manager` owns on the Deployment (its managedFields' fieldsV1, as JSON; "" when none)."""
        entries = self.apps.read_namespaced_deployment(deployment, namespace).metadata.managed_fields or []
        return "".join(json.dumps(e.fields_v1, sort_keys=True) for e in entries if e.manager == manager)

    def available(self, namespace: str, name: str) -> bool:
        deployment = self.apps.read_namespaced_deployment(name, namespace)
        return (deployment.status.available_replicas or 0) >= (deployment.spec.replicas or 0)


def eventually(probe: Callable[[], T], *, timeout: float = 60, every: float = 0.5, what: str = "condition") -> T:
    """`probe()`'s first truthy value within `timeout`; else fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s (last: {last!r})")


def label_selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    """A V1LabelSelector judged against labels as the API server does."""
    return selects(client.ApiClient().sanitize_for_serialization(selector) if selector is not None else None, labels)


def injecting_webhooks(kube: Kube, namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> list[str]:
    """Names of the sidecar-injector webhooks whose selectors match a new pod with these labels."""
    matched = []
    for configuration in kube.mutating_webhooks().values():
        for webhook in configuration.webhooks or []:
            if not webhook.name.endswith("sidecar-injector.istio.io"):
                continue
            if label_selector_matches(webhook.namespace_selector, namespace_labels) and \
                    label_selector_matches(webhook.object_selector, pod_labels):
                matched.append(f"{configuration.metadata.name}/{webhook.name}")
    return matched


def act_once(found: Callable[[], Any], act: Callable[[Any], Any], *, timeout: float, every: float) -> threading.Thread:
    """A thread that calls `act(x)` once `found()` returns something (x); `.done` and `.result` tell what it did."""
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                thread.result, thread.done = act(value), True
                return
            time.sleep(every)

    thread = threading.Thread(target=watch, daemon=True)
    thread.result, thread.done = None, False
    thread.start()
    return thread
