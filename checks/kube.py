"""Kubernetes targets: find the Istio proxies of a revision, and reach their admin port.

Discovery lists pods with the official `kubernetes` client (`CoreV1Api.list_namespaced_pod`
or `list_pod_for_all_namespaces`), narrowed by the caller's label selector, and
keeps those of an Istio revision by what a running pod really carries: the
injector's `sidecar.istio.io/status` annotation names the revision that injected
it. The pod label `istio.io/rev` is not set by the injector since Istio 1.10
(sidecars) and 1.18 (gateways); it only counts when a pod carries no status
annotation (a pod pinned to a revision by its own label, not yet injected).
`service.istio.io/canonical-revision` is the *workload's* revision, not Istio's,
so it is never used to select. Only pods that run an `istio-proxy` container (a
classic sidecar, a native sidecar in `initContainers`, or a gateway) and are
Running are kept.

The API client comes from an explicit kubeconfig and context (`api_for`), the
stack's `kubernetes:kubeconfig` / `kubernetes:context`, never from whatever
context happens to be current.

Reaching the admin interface: Istio binds Envoy's admin port 15000 to
127.0.0.1 inside the pod, so the API server's *pod proxy*
(`/api/v1/namespaces/<ns>/pods/<pod>:15000/proxy/`) cannot reach it; only a
**port-forward** can (it connects from inside the pod's network namespace).
`PortForward` (`checks.portforward`) opens one local listener per pod on 127.0.0.1
and, for each connection to it, a port-forward stream to the pod's 15000 through
the API server (`pods/portforward`, the same as `kubectl port-forward`).
Ports 15020 (merged Prometheus stats, `/healthz/ready`), 15021 (health) and
15090 (Envoy Prometheus) listen on the pod IP and *are* reachable through the
API-server pod proxy, but they expose stats only, not /server_info, /certs or
/config_dump, so every check here uses 15000 via port-forward.

Pod-level facts (container start times, native sidecar, the
`pilot-agent wait` postStart hook of holdApplicationUntilProxyStarts) come
from the same pod objects and feed the `app-started-after-proxy` check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from .portforward import ADMIN_PORT, PortForward
from .target import ContainerFacts, PodFacts, Target

__all__ = [
    "discover_pods", "pod_facts", "pod_targets", "pod_revision", "injected_revision", "revision_in_status", "PortForward", "kube_targets", "api_for", "kubeconfig_is_text",
    "ADMIN_PORT", "PROXY_CONTAINER", "STATUS_ANNOTATION",
]

PROXY_CONTAINER = "istio-proxy"
STATUS_ANNOTATION = "sidecar.istio.io/status"
REVISION_LABEL = "istio.io/rev"
_HOLD = re.compile(r"holdApplicationUntilProxyStarts\"?\s*:\s*\"?true", re.IGNORECASE)


def kubeconfig_is_text(kubeconfig: str) -> bool:
    """Whether `kubernetes:kubeconfig` holds the kubeconfig itself (YAML or JSON), not a path to it."""
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith(("apiVersion", "{"))


def api_for(*, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A CoreV1Api for `context` of `kubeconfig` (a path, or the kubeconfig's own text, as Pulumi accepts).

    Without a kubeconfig the default loading rules apply (KUBECONFIG, ~/.kube/config),
    but the context is still the one named, when one is.
    """
    from kubernetes import client, config

    if kubeconfig and kubeconfig_is_text(kubeconfig):
        import yaml

        api_client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig), context=context)
    else:
        api_client = config.new_client_from_config(config_file=kubeconfig or None, context=context)
    return client.CoreV1Api(api_client)


def revision_in_status(annotations: Mapping[str, str]) -> str | None:
    """The revision named in a pod's `sidecar.istio.io/status` annotation (None: not injected, or unreadable).

    The one parser of the injector's annotation, whichever shape the pod comes in.
    """
    status = annotations.get(STATUS_ANNOTATION)
    if not status:
        return None
    try:
        revision = json.loads(status).get("revision")
    except (ValueError, AttributeError):
        return None
    return str(revision) if revision else None


def injected_revision(pod: Any) -> str | None:
    """The Istio revision that injected the pod (a `V1Pod`): the revision in its `sidecar.istio.io/status` annotation."""
    meta = pod.metadata
    return revision_in_status((meta.annotations or {}) if meta else {})


def pod_revision(pod: Any) -> str | None:
    """The Istio revision that injected the pod, else its own `istio.io/rev` label (a pod pinned, not yet injected)."""
    meta = pod.metadata
    return injected_revision(pod) or ((meta.labels or {}) if meta else {}).get(REVISION_LABEL)


def discover_pods(
    core_v1: Any,
    *,
    namespace: str | None = None,
    selector: str | None = None,
    revision: str | None = None,
    timeout: float = 10.0,
) -> list[Any]:
    """Running pods with an istio-proxy (of `revision`, when given), as `V1Pod` objects, sorted by namespace/name."""
    kwargs: dict[str, Any] = {"_request_timeout": timeout}
    if selector:
        kwargs["label_selector"] = selector
    if namespace:
        pods = core_v1.list_namespaced_pod(namespace, **kwargs)
    else:
        pods = core_v1.list_pod_for_all_namespaces(**kwargs)
    keep = [
        p for p in pods.items
        if (p.status and p.status.phase == "Running")
        and not (p.metadata and p.metadata.deletion_timestamp)
        and _proxy_spec(p) is not None
        and (revision is None or pod_revision(p) == revision)
    ]
    return sorted(keep, key=lambda p: (p.metadata.namespace, p.metadata.name))


def _proxy_spec(pod: Any) -> tuple[Any, bool] | None:
    """(container spec, native sidecar?) of the pod's istio-proxy, if any."""
    spec = pod.spec
    for container in (spec.containers or []) if spec else []:
        if container.name == PROXY_CONTAINER:
            return container, False
    for container in (spec.init_containers or []) if spec else []:
        if container.name == PROXY_CONTAINER:
            return container, getattr(container, "restart_policy", None) == "Always"
    return None


def _waits_for_proxy(container: Any) -> bool:
    hook = container.lifecycle.post_start if container.lifecycle and container.lifecycle.post_start else None
    # The generated model calls `exec` `var_exec` (pydantic models) or `_exec` (older clients).
    action = (getattr(hook, "var_exec", None) or getattr(hook, "_exec", None)) if hook is not None else None
    command = action.command if action is not None else None
    return bool(command) and "wait" in command


def pod_facts(pod: Any) -> PodFacts:
    """What the `app-started-after-proxy` check needs, from one `V1Pod`."""
    meta, status = pod.metadata, pod.status
    found = _proxy_spec(pod)
    proxy_spec, native = found if found else (None, False)
    waits = proxy_spec is not None and _waits_for_proxy(proxy_spec)
    annotations = meta.annotations or {}
    hold = bool(_HOLD.search(annotations.get("proxy.istio.io/config", ""))) or None
    containers: list[ContainerFacts] = []
    statuses = [(s, False) for s in (status.container_statuses or [])]
    statuses += [(s, True) for s in (status.init_container_statuses or [])]
    for cs, is_init in statuses:
        is_proxy = cs.name == PROXY_CONTAINER
        if is_init and not is_proxy:
            continue  # istio-init and friends run to completion before anything else
        running = cs.state.running if cs.state else None
        containers.append(
            ContainerFacts(
                name=cs.name,
                started_at=running.started_at if running else None,
                ready=bool(cs.ready),
                is_proxy=is_proxy,
                native_sidecar=is_proxy and native,
                waits_for_proxy=is_proxy and waits,
            )
        )
    return PodFacts(
        namespace=meta.namespace,
        name=meta.name,
        revision=pod_revision(pod),
        containers=tuple(containers),
        hold_application=hold,
        log_level=annotations.get("sidecar.istio.io/logLevel") or None,
        component_log_level=annotations.get("sidecar.istio.io/componentLogLevel") or None,
    )


@contextmanager
def kube_targets(
    core_v1: Any,
    *,
    namespace: str | None = None,
    selector: str | None = None,
    revision: str | None = None,
    role: str = "proxy",
    expected_version: str | None = None,
    forward: bool = True,
) -> Iterator[list[Target]]:
    """Targets for the selected pods, each reached through its own port-forward while open.

    With `forward=False` (tests, or a caller that reaches pods another way) the
    admin URL is the pod IP's 15000, which only works from inside the pod.
    """
    pods = discover_pods(core_v1, namespace=namespace, selector=selector, revision=revision)
    with pod_targets(core_v1, pods, role=role, expected_version=expected_version, forward=forward) as targets:
        yield targets


@contextmanager
def pod_targets(
    core_v1: Any,
    pods: list[Any],
    *,
    role: str = "proxy",
    expected_version: str | None = None,
    forward: bool = True,
) -> Iterator[list[Target]]:
    """Targets for these pods (`V1Pod`s already discovered), each with its port-forward while open."""
    with ExitStack() as stack:
        targets: list[Target] = []
        for pod in pods:
            facts = pod_facts(pod)
            if forward:
                url = stack.enter_context(PortForward(core_v1.api_client.configuration, facts.namespace, facts.name)).url
            else:
                url = f"http://{pod.status.pod_ip or '127.0.0.1'}:{ADMIN_PORT}"
            targets.append(
                Target(
                    name=f"{facts.namespace}/{facts.name}",
                    admin_url=url,
                    role=role,  # type: ignore[arg-type]
                    expected_version=expected_version,
                    labels=dict(pod.metadata.labels or {}),
                    pod=facts,
                )
            )
        yield targets


def describe_selection(namespace: str | None, selector: str | None, revision: str | None) -> str:
    where = f"namespace {namespace}" if namespace else "all namespaces"
    parts = [p for p in (f"pods matching {selector}" if selector else None,
                         f"injected by revision {revision}" if revision else None) if p]
    return ", ".join([where, *parts])


