"""Test doubles: a Pulumi stack that records every call, a scripted gate, a list reporter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollout.engine import OnOutput, UpResult
from rollout.errors import PlatformError
from rollout.gates import GateVerdict
from rollout.history import HistoryEntry
from rollout.platforms.base import GateTargets


class RecordingEngine:
    """A StackEngine with no Pulumi CLI: config in a dict, history appended by `up`.

    `calls` lists every call in order as (name, payload); `fail_up_on` makes the
    n-th `up` (1-based) fail like a failed `pulumi up`.
    """

    def __init__(self, stack: str = "dev", config: Mapping[str, Any] | None = None,
                 history: list[HistoryEntry] | None = None) -> None:
        self.stack = stack
        self.config: dict[str, Any] = dict(config or {})
        self.entries: list[HistoryEntry] = list(history or [])
        self.calls: list[tuple[str, Any]] = []
        self.fail_up_on: set[int] = set()
        self.ups = 0

    def get_config(self) -> dict[str, Any]:
        self.calls.append(("get_config", None))
        return dict(self.config)

    def set_config(self, values: Mapping[str, Any]) -> None:
        self.calls.append(("set_config", json.loads(json.dumps(dict(values)))))
        self.config.update(values)

    def remove_config(self, keys: list[str]) -> None:
        self.calls.append(("remove_config", list(keys)))
        for key in keys:
            self.config.pop(key, None)

    def up(self, *, message: str, on_output: OnOutput | None = None,
           env: Mapping[str, str] | None = None) -> UpResult:
        self.ups += 1
        self.calls.append(("up", {"message": message, "env": sorted((env or {}).keys())}))
        version = max((e.version for e in self.entries), default=0) + 1
        failed = self.ups in self.fail_up_on
        config = {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in self.config.items()}
        self.entries.append(HistoryEntry(version=version, kind="update",
                                         result="failed" if failed else "succeeded",
                                         config=config, message=message))
        if on_output:
            on_output(f"Updating ({self.stack}) {message}\n")
        if failed:
            raise PlatformError(f"pulumi up failed: update {version}")
        return UpResult(version=version, result="succeeded", changes={"update": 1})

    def history(self, *, page_size: int | None = None) -> list[HistoryEntry]:
        self.calls.append(("history", page_size))
        newest = sorted(self.entries, key=lambda e: e.version, reverse=True)
        return newest[:page_size] if page_size else newest

    def refresh(self) -> None:
        self.calls.append(("refresh", None))

    def cancel(self) -> None:
        self.calls.append(("cancel", None))

    def named(self, name: str) -> list[Any]:
        return [payload for call, payload in self.calls if call == name]


class ScriptedGate:
    """A gate whose verdicts are scripted per gate name ("canary", "wave 2", ...); default pass."""

    def __init__(self, outcomes: Mapping[str, str] | None = None, *, interrupt_on: str | None = None) -> None:
        self.outcomes = dict(outcomes or {})
        self.interrupt_on = interrupt_on
        self.calls: list[tuple[str, list[str], list[str]]] = []

    def __call__(self, gate: str, targets: GateTargets, settings: Any, *, on_sample: Any = None) -> GateVerdict:
        self.calls.append((gate, [t.name for t in targets.canary], [t.name for t in targets.baseline]))
        if self.interrupt_on == gate:
            self.interrupt_on = None
            raise KeyboardInterrupt
        if on_sample:
            on_sample({"gate": gate, "sample": 1})
        outcome = self.outcomes.get(gate, "passed")
        message = f"{gate} passed" if outcome == "passed" else f"Halt {gate} advancement: success rate 50.00% < 99%"
        return GateVerdict(gate, outcome, message, failing_checks=[] if outcome == "passed" else ["success-rate"])


class ListReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.samples: list[tuple[str, Any]] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def sample(self, gate: str, sample: Any) -> None:
        self.samples.append((gate, sample))

    def phases(self) -> list[str]:
        return [data["to"] for kind, data in self.events if kind == "phase"]


class FakeTarget:
    def __init__(self, name: str, role: str, expected_version: str | None = None, running: str | None = None) -> None:
        self.name, self.role, self.expected_version = name, role, expected_version
        self.running = running  # the version its proxy reports (PodDiscovery's targets)


def fake_discovery(selectors: Any) -> list[FakeTarget]:
    return [FakeTarget(f"{s.namespace}/{s.name}", s.role, s.expected_version) for s in selectors]


VERSIONS = {"1-39-3": "1.39.3", "1-40-0": "1.40.0"}  # the revisions mesh_config's upgrade to 1.40.0 runs


def injected_pod(namespace: str, name: str, *, app: str, revision: str, phase: str = "Running") -> dict[str, Any]:
    """A pod of `live_workload(namespace, app)` as Istio's injector leaves it: its revision in the status annotation."""
    status = json.dumps({"containers": ["istio-proxy"], "revision": revision})
    return {"kind": "Pod", "metadata": {"namespace": namespace, "name": name, "labels": {"app": app, "version": "v1"},
                                        "annotations": {"sidecar.istio.io/status": status}},
            "status": {"phase": phase}}


class PodDiscovery:
    """Discovery over a FakeCluster's pods, one target per pod, each expecting what its selector says a pod
    of its revision must run, and running the version of the revision that injected it."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def __call__(self, selectors: Any) -> list[FakeTarget]:
        from rollout.leftovers import injected_revision

        targets = []
        for selector in selectors:
            for pod in self.cluster.pods(selector.namespace, selector.label_selector):
                revision = injected_revision(pod)
                targets.append(FakeTarget(f"{selector.namespace}/{pod['metadata']['name']}", selector.role,
                                          selector.version_for(revision), VERSIONS.get(revision or "")))
        return targets


class VersionGate(ScriptedGate):
    """A scripted gate that also fails, as the proxy-version check does, on any proxy under test that runs
    another version than it is expected to."""

    def __call__(self, gate: str, targets: GateTargets, settings: Any, *, on_sample: Any = None) -> GateVerdict:
        wrong = [f"{t.name} runs {t.running}, expected {t.expected_version}" for t in targets.canary
                 if getattr(t, "running", None) != t.expected_version]
        verdict = super().__call__(gate, targets, settings, on_sample=on_sample)
        if not wrong:
            return verdict
        return GateVerdict(gate, "failed", f"Halt {gate} advancement: proxy runs another version: " + "; ".join(wrong),
                           failing_checks=["proxy-version"])


class FakeCluster:
    """What runs, for the platform's `live` reader: workload objects and pods as the API server returns them.

    By default the workloads `mesh_config` selects (shop/web, pay/api, installed by their teams)
    and no pod left on any revision; tests add pods or change a template.
    """

    def __init__(self, *workloads: dict[str, Any]) -> None:
        from tests.components.cluster import live_workload

        self.objects = list(workloads) or [live_workload("shop", "web", replicas=2),
                                           live_workload("pay", "api", replicas=2)]
        self.pod_list: list[dict[str, Any]] = []
        self.namespace_list: list[dict[str, Any]] = []
        self.custom_list: list[dict[str, Any]] = []  # Istio config objects, each with its `plural`
        self.helm_secrets: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (namespace, release) -> records
        self.hpas: list[dict[str, Any]] = []
        self.sources: dict[str, list[dict[str, Any]]] = {"namespaces": [], "templates": [], "gateways": []}
        self.calls: list[str] = []
        self.fail_with: Exception | None = None
        self.evictions: list[str] = []
        self.deleted: list[str] = []
        self.refuse_evictions = 0  # how many evictions a disruption budget refuses first
        self.forbid_delete = False
        self.on_poll: Any = None  # called at each workloads() listing: the cluster moves on

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        self.calls.append(f"workloads {namespace}")
        if self.on_poll is not None:
            self.on_poll(self)
        if self.fail_with is not None:
            raise self.fail_with
        return [json.loads(json.dumps(o)) for o in self.objects if o["metadata"]["namespace"] == namespace]

    def autoscalers(self, namespace: str) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(h)) for h in self.hpas if h["metadata"]["namespace"] == namespace]

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append("pods" if namespace is None else f"pods {namespace} {selector}")
        if self.fail_with is not None:
            raise self.fail_with
        from tests.label_selectors import selects_text

        return json.loads(json.dumps([
            p for p in self.pod_list
            if namespace is None or (p["metadata"]["namespace"] == namespace
                                     and selects_text(selector or "", p["metadata"].get("labels") or {}))]))

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        self.calls.append("revision sources")
        if self.fail_with is not None:
            raise self.fail_with
        return json.loads(json.dumps(self.sources))

    def evict(self, namespace: str, pod: str) -> bool:
        if self.refuse_evictions:
            self.refuse_evictions -= 1
            return False
        self.evictions.append(f"{namespace}/{pod}")
        self.pod_list = [p for p in self.pod_list if (p["metadata"]["namespace"], p["metadata"]["name"]) != (namespace, pod)]
        return True

    def delete_pod(self, namespace: str, pod: str) -> None:
        from rollout.errors import PlatformError

        if self.forbid_delete:
            raise PlatformError(f"cannot delete pod {namespace}/{pod}: 403 Forbidden")
        self.deleted.append(f"{namespace}/{pod}")
        self.pod_list = [p for p in self.pod_list if (p["metadata"]["namespace"], p["metadata"]["name"]) != (namespace, pod)]

    def namespaces(self) -> list[dict[str, Any]]:
        self.calls.append("namespaces")
        if self.fail_with is not None:
            raise self.fail_with
        return json.loads(json.dumps(self.namespace_list))

    def custom_objects(self, group: str, version: str, plural: str, *, label_selector: str) -> list[dict[str, Any]]:
        """Objects of `plural.group` in `custom_list` whose labels match `key=value`."""
        key, _, value = label_selector.partition("=")
        return [json.loads(json.dumps(o)) for o in self.custom_list
                if (o["apiVersion"].split("/")[0], o["plural"]) == (group, plural)
                and (o["metadata"].get("labels") or {}).get(key) == value]

    def custom_object(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"custom object {plural}.{group} {namespace}/{name}")
        if self.fail_with is not None:
            raise self.fail_with
        return next((json.loads(json.dumps(o)) for o in self.custom_list
                     if (o["apiVersion"].split("/")[0], o["plural"]) == (group, plural)
                     and (o["metadata"].get("namespace"), o["metadata"]["name"]) == (namespace, name)), None)

    def helm_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(s)) for s in self.helm_secrets.get((namespace, release), [])]

    def find(self, namespace: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects if (o["metadata"]["namespace"], o["metadata"]["name"]) == (namespace, name))


def mesh_config(**overrides: Any) -> dict[str, Any]:
    """A valid stack config: 1.39.3 installed, tag `stable`, two namespaces in two waves."""
    config: dict[str, Any] = {
        "meshlift:revisions": [{"version": "1.39.3"}],
        "meshlift:tags": {"stable": "1-39-3"},
        "meshlift:namespaces": [
            {"name": "shop", "revision": "stable", "wave": 1,
             "workloads": [{"name": "web", "canary": True}]},
            {"name": "pay", "revision": "stable", "wave": 2,
             "workloads": [{"name": "api"}]},
        ],
        "meshlift:gates": {"window": "2s", "interval": "100ms", "consecutivePasses": 2},
    }
    config.update(overrides)
    return config
