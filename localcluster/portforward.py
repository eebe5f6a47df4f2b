"""Point a pod's port at a local address: kwok `PortForward` objects.

`kubectl port-forward` (the API server's `pods/portforward`) reaches the node's
kubelet endpoint, which on a kwok node is the kwok controller; kwok forwards the
stream to the address the pod's `PortForward` names. A local Envoy's admin port
thus becomes the pod's port 15000 for every client that port-forwards, meshlift's
own discovery included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "portforwards"


def forward_pod(custom: Any, namespace: str, pod: str, ports: Mapping[int, int], *, address: str = "127.0.0.1") -> None:
    """Forward each `pod port -> local port` of `ports` (creates or replaces the pod's PortForward)."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"forwards": [{"ports": [pod_port], "target": {"port": local, "address": address}}
                              for pod_port, local in sorted(ports.items())]},
    }
    from kubernetes.client.exceptions import ApiException

    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except ApiException as error:
        if error.status != 409:
            raise
        current = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pod)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pod, body)


def unforward_pod(custom: Any, namespace: str, pod: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pod)
    except ApiException as error:
        if error.status != 404:
            raise
