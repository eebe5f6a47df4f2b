"""One Pulumi resource per namespace for all of its restarts: meshlift's own provider.

A restart is one pod-template annotation, `meshlift.io/proxy-revision`, written by
server-side apply under meshlift's field manager on a team's Deployment,
StatefulSet or DaemonSet. Declared as one `DeploymentPatch` per workload, a mesh
of 1,000 workloads held 1,000 resources, and Pulumi's file backend rewrites the
whole state after every step, so each upgrade stage cost grew with the square of
the workloads. Here a namespace's restarts are one resource (`NamespaceRestarts`)
whose input is the map `<Kind>/<name> -> revision`; a Python dynamic provider
(`pulumi.dynamic`, run by the Pulumi CLI's bundled `pulumi-resource-pulumi-python`)
applies the difference:

- an entry added or changed: apply `{spec.template.metadata.annotations:
  {meshlift.io/proxy-revision: <rev>}}` under field manager `meshlift-restart`.
  Nothing else is sent, so no other field is taken; `force` is not set, so an
  annotation another manager owns is a conflict, never taken over. The one
  exception is the manager of meshlift's earlier per-workload patches
  (`meshlift`), so a stack moves to this resource without restarting anything:
  that manager's claim on the annotation is taken, and deleting the old patch
  afterwards leaves the annotation in place;
- an entry removed (a rollback through the stack history, or the resource
  deleted): an empty configuration under the same manager, so the API server
  drops meshlift's annotation and the template returns to what its owner wrote;
- a workload that no longer exists (its team deleted it during the run) is
  skipped and listed in the `missing` output; the orchestrator reports it.

The provider never waits for pods: the orchestrator polls each wave's rollouts
(rollout.rollouts). Transient API errors (429, 5xx, a dropped connection) are
retried for a minute; anything else fails the resource with the API's message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from meshmodel.plan import PROXY_REVISION_ANNOTATION

FIELD_MANAGER = "meshlift-restart"
# The manager of the per-workload patch resources earlier meshlift releases declared.
LEGACY_FIELD_MANAGER = "meshlift"
RESTARTS = "restarts"
MISSING = "missing"
PARALLEL_REQUESTS = 8
RETRY_SECONDS = 60.0
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


def restart_key(kind: str, name: str) -> str:
    """`<Kind>/<name>`: one entry of a namespace's restart map (a workload name has no slash)."""
    return f"{kind}/{name}"


def split_key(key: str) -> tuple[str, str]:
    kind, _, name = key.partition("/")
    return kind, name


def apply_body(kind: str, name: str, namespace: str, revision: str | None) -> dict[str, Any]:
    """The whole configuration meshlift applies: its annotation, or nothing (which drops it)."""
    body: dict[str, Any] = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    if revision is not None:
        body["spec"] = {"template": {"metadata": {"annotations": {PROXY_REVISION_ANNOTATION: revision}}}}
    return body


def conflicting_managers(error: Any) -> set[str]:
    """The field managers a 409 from server-side apply names (its `details.causes`)."""
    try:
        causes = json.loads(error.body).get("details", {}).get("causes") or []
    except (TypeError, ValueError, AttributeError):
        return set()
    managers = set()
    for cause in causes:
        message = cause.get("message") or ""
        if message.startswith('conflict with "'):
            managers.add(message.split('"')[1])
    return managers


class KubeApply:
    """Server-side apply and existence checks of apps/v1 workloads, with the transient errors retried."""

    def __init__(self, cluster: Mapping[str, Any]) -> None:
        from kubernetes import client, config

        kubeconfig, context = cluster.get("kubeconfig") or None, cluster.get("context") or None
        if kubeconfig and not _is_path(kubeconfig):
            import yaml

            api_client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig), context=context)
        else:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.apps = client.AppsV1Api(api_client)

    def _call(self, kind: str, verb: str) -> Callable[..., Any]:
        snake = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}[kind]
        return getattr(self.apps, f"{verb}_namespaced_{snake}")

    def apply(self, body: dict[str, Any], *, force: bool = False) -> None:
        meta = body["metadata"]
        self._call(body["kind"], "patch")(meta["name"], meta["namespace"], body, field_manager=FIELD_MANAGER,
                                          force=force, _content_type="application/apply-patch+yaml",
                                          _request_timeout=30)

    def exists(self, kind: str, name: str, namespace: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(kind, "read")(name, namespace, _request_timeout=30)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


def _transient(error: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, (ConnectionError, TimeoutError, OSError)) or type(error).__module__.startswith("urllib3")


def _retrying(action: Callable[[], Any]) -> Any:
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

    for attempt in Retrying(retry=retry_if_exception(_transient), stop=stop_after_delay(RETRY_SECONDS),
                            wait=wait_exponential(multiplier=0.5, max=8), reraise=True):
        with attempt:
            return action()


def converge(api: Any, namespace: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Make the live annotations follow `new` where they followed `old`; the keys of workloads that are gone."""
    from kubernetes.client.exceptions import ApiException

    work = [(key, revision) for key, revision in sorted(new.items()) if old.get(key) != revision]
    work += [(key, None) for key in sorted(old) if key not in new]

    def one(item: tuple[str, str | None]) -> str | None:
        key, revision = item
        kind, name = split_key(key)
        body = apply_body(kind, name, namespace, revision)
        try:
            _retrying(lambda: api.apply(body))
        except ApiException as error:
            if error.status == 409 and conflicting_managers(error) == {LEGACY_FIELD_MANAGER}:
                _retrying(lambda: api.apply(body, force=True))
            elif error.status in (404, 422) and not _retrying(lambda: api.exists(kind, name, namespace)):
                return key  # apply would create it: the team deleted it during the run
            else:
                raise RestartError(f"{kind} {namespace}/{name}: {_reason(error)}") from error
        return None

    with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
        return [key for key in pool.map(one, work) if key is not None]


def _reason(error: Any) -> str:
    try:
        return json.loads(error.body).get("message") or str(error)
    except (TypeError, ValueError, AttributeError):
        return str(error)


class RestartError(RuntimeError):
    """A workload the API server would not restart (its message, the workload named)."""


class RestartsProvider(dynamic.ResourceProvider):
    """Applies a namespace's restart map; holds no state (it is pickled into the stack by reference)."""

    serialize_as_secret_always = False

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [key for key in ("namespace", RESTARTS) if olds.get(key) != news.get(key)]
        return dynamic.DiffResult(changes=bool(changed), replaces=["namespace"] if "namespace" in changed else [],
                                  delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        missing = converge(KubeApply(props["cluster"]), props["namespace"], {}, props[RESTARTS])
        return dynamic.CreateResult(props["namespace"], {**props, MISSING: missing})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        missing = converge(KubeApply(news["cluster"]), news["namespace"], olds.get(RESTARTS) or {}, news[RESTARTS])
        return dynamic.UpdateResult({**news, MISSING: missing})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        converge(KubeApply(props["cluster"]), props["namespace"], props.get(RESTARTS) or {}, {})


class NamespaceRestarts(dynamic.Resource, module="meshlift", name="NamespaceRestarts"):
    """A namespace's restarts: `restarts` maps `<Kind>/<name>` to the revision its pods restart onto."""

    def __init__(self, name: str, *, namespace: str, restarts: Mapping[str, str], cluster: Mapping[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        kubeconfig = cluster.get("kubeconfig")
        inline = bool(kubeconfig) and not _is_path(kubeconfig)
        props = {
            "namespace": namespace,
            RESTARTS: dict(sorted(restarts.items())),
            # The provider runs outside the program: it is told which cluster the stack's provider talks to.
            # A kubeconfig given inline holds credentials, so it is kept as a secret in the state.
            "cluster": {"kubeconfig": pulumi.Output.secret(kubeconfig) if inline else kubeconfig,
                        "context": cluster.get("context")},
            MISSING: None,
        }
        super().__init__(RestartsProvider(), name, props, opts)


def _is_path(kubeconfig: str) -> bool:
    return "\n" not in kubeconfig and not kubeconfig.lstrip().startswith(("apiVersion", "{"))
