"""The Kubernetes platform: each stage is "set config, `pulumi up`" on this project's stack.

- apply:   `set_config(meshlift:rollout = {stage, promotedWaves, ...})`, then `up`
           (with MESHLIFT_GATED set, so the program's resource hook knows the
           orchestrator gates this update itself).
- history: the stack's update history (`pulumi stack history`).
- reapply: the `meshlift:*` config recorded with an earlier update is set again
           (keys it did not have are removed; secret values, which history does
           not reveal, keep their current value), then `up`.
- targets: pods found by the checks' Kubernetes discovery, chosen by the plan
           (canary clones, the waves promoted so far, or everything), in the
           cluster the stack deploys to: its `kubernetes:kubeconfig` and
           `kubernetes:context`, not the kubeconfig's current context.
- live_workloads / pods: listed by `rollout.platforms.kube_live`; the first
           promotion also compares the canaried workloads' templates with the
           inventory and reports a change as a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from meshmodel.plan import MeshPlan
from meshmodel.spec import CONFIG_NAMESPACE, MeshSpec
from rollout.engine import StackEngine
from rollout.errors import PlatformError
from rollout.history import HistoryEntry
from rollout.platforms.base import Applied, GateScope, GateTargets, Log, StageChange
from rollout.platforms.scope import PodSelector, promotion_warnings, selectors_for

Discover = Callable[[Sequence[PodSelector]], list[Any]]  # selectors -> checks.Target list


class KubernetesPlatform:
    name = "kubernetes"

    def __init__(self, engine: StackEngine, *, discover: Discover | None = None, live: Any = None) -> None:
        self.engine = engine
        self._discover = discover
        self._live = live  # a KubeLive (or a test double with the same two methods)

    def open(self, current: MeshSpec) -> None:
        return None  # the cluster is already there; nothing to restore

    def close(self) -> None:
        closer = getattr(self._discover, "close", None)
        if callable(closer):
            closer()

    def apply(self, change: StageChange, *, log: Log) -> Applied:
        from rollout.orchestrator import gated_env

        self.engine.set_config(change.config)
        result = self.engine.up(message=change.message, on_output=log, env=gated_env())
        if result.result != "succeeded":
            raise PlatformError(f"pulumi up for '{change.message}' ended {result.result}")
        warnings = tuple(promotion_warnings(change.spec, self.live_workloads))
        for warning in warnings:
            log(f"warning: {warning}")
        return Applied(update=result.version, changes=dict(result.changes), warnings=warnings)

    def live_workloads(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        live = self._live_reader()
        return {namespace: live.workloads(namespace) for namespace in namespaces}

    def pods(self) -> list[dict[str, Any]]:
        return self._live_reader().pods()

    def autoscalers(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        live = self._live_reader()
        return {namespace: live.autoscalers(namespace) for namespace in namespaces}

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        return self._live_reader().revision_sources()

    def pinned_config(self, revision: str) -> list[dict[str, str]]:
        from rollout.pinned_config import pinned_objects, pinned_records

        return pinned_records(pinned_objects(self._live_reader(), revision))

    def namespaces(self) -> list[dict[str, Any]]:
        return self._live_reader().namespaces()

    def workload_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._live_reader().pods(namespace, selector)

    def evict(self, namespace: str, pod: str) -> bool:
        return self._live_reader().evict(namespace, pod)

    def delete_pod(self, namespace: str, pod: str) -> None:
        self._live_reader().delete_pod(namespace, pod)

    def _live_reader(self) -> Any:
        if self._live is None:
            from rollout.platforms.kube_live import KubeLive

            config = self.engine.get_config()  # the stack's cluster, as the provider reaches it
            self._live = KubeLive(context=_text(config.get("kubernetes:context")),
                                  kubeconfig=_text(config.get("kubernetes:kubeconfig")))
        return self._live

    def targets(self, plan: MeshPlan, scope: GateScope) -> GateTargets:
        """The pods to judge; `refresh` discovers them again (their forwards replace these)."""
        selectors = selectors_for(plan, scope)

        def discover() -> GateTargets:
            discovery = self._discovery()
            found = discovery(selectors)
            return GateTargets(canary=[t for t in found if t.role == "canary"],
                               baseline=[t for t in found if t.role == "baseline"], refresh=discover,
                               sampled=list(getattr(discovery, "sampled", [])))

        return discover()

    def history(self) -> list[HistoryEntry]:
        return self.engine.history()

    def reapply(self, entry: HistoryEntry, *, log: Log) -> Applied:
        from rollout.orchestrator import gated_env

        wanted = {k: v for k, v in entry.decoded_config().items() if k not in entry.secret_keys}
        current = self.engine.get_config()
        stale = [key for key in current
                 if key.startswith(CONFIG_NAMESPACE + ":") and key not in wanted and key not in entry.secret_keys]
        self.engine.remove_config(stale)
        self.engine.set_config(wanted)
        result = self.engine.up(message=f"meshlift: rollback to update {entry.version} ({entry.describe()})",
                                on_output=log, env=gated_env())
        if result.result != "succeeded":
            raise PlatformError(f"pulumi up re-applying update {entry.version} ended {result.result}")
        return Applied(update=result.version, changes=dict(result.changes))

    def _discovery(self) -> Discover:
        if self._discover is None:
            self._discover = KubeDiscovery(**stack_cluster(self.engine.get_config()))
        return self._discover


def stack_cluster(config: dict[str, Any]) -> dict[str, str | None]:
    """The cluster a stack's Kubernetes provider talks to, from its `kubernetes:*` config."""
    return {"kubeconfig": config.get("kubernetes:kubeconfig") or None,
            "context": config.get("kubernetes:context") or None}


class KubeDiscovery:
    """Targets from the checks' Kubernetes discovery, one port-forward per pod.

    Each namespace's pods are listed once and matched against its selectors here
    (`PodSelector.selects`): a wave gate names a selector per workload, and one
    list call per selector took 11 s at 1,000 workloads.

    The forwards of one gate stay open until the next `targets` call (the pods
    change between stages) or `close()`. A selector with a `sample` is read
    through that many of its pods (`checks.sampling.choose`), and only those are
    forwarded; `sampled` tells, per selector, which pods were chosen of how many.
    """

    def __init__(self, core_v1: Any = None, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        self._core_v1 = core_v1
        self.kubeconfig, self.context = kubeconfig, context
        self._open = ExitStack()
        self.sampled: list[Any] = []

    def __call__(self, selectors: Sequence[PodSelector]) -> list[Any]:
        from checks.kube import discover_pods, pod_targets
        from checks.sampling import Sampled, choose

        self._open.close()
        self._open = ExitStack()
        self.sampled = []
        core_v1 = self._client()
        targets: list[Any] = []
        try:
            listed: dict[str, list[Any]] = {}
            for selector in selectors:
                if selector.sample == 0:  # left out of a wave gate's baseline sample: not even listed
                    self.sampled.append(Sampled(selector.workload, selector.role, (), None))
                    continue
                if selector.namespace not in listed:
                    listed[selector.namespace] = discover_pods(core_v1, namespace=selector.namespace)
                pods = [pod for pod in listed[selector.namespace] if selector.selects(pod.metadata.labels or {})]
                chosen = choose(pods, selector.sample, name=lambda pod: pod.metadata.name)
                self.sampled.append(Sampled(selector.workload, selector.role,
                                            tuple(pod.metadata.name for pod in chosen), len(pods)))
                found = self._open.enter_context(pod_targets(
                    core_v1, chosen, role=selector.role, expected_version=selector.expected_version))
                targets += [replace(t, expected_version=selector.version_for(t.pod.revision if t.pod else None))
                            for t in found] if selector.also_runs else found
        except Exception as error:  # API unreachable, RBAC, a pod gone: the gate cannot judge
            self._open.close()
            raise PlatformError(f"cannot discover the proxies to gate: {error}") from error
        return targets

    def close(self) -> None:
        self._open.close()

    def _client(self) -> Any:
        if self._core_v1 is None:
            from kubernetes import client, config

            from checks.kube import api_for

            try:
                self._core_v1 = api_for(kubeconfig=self.kubeconfig, context=self.context)
            except config.ConfigException:
                if self.kubeconfig or self.context:
                    raise  # the stack names a cluster: never fall back to another one
                config.load_incluster_config()
                self._core_v1 = client.CoreV1Api()
        return self._core_v1


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
