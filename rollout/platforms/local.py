"""The local rehearsal platform: the plan of each stage realized with real Envoy processes.

Every `apply` reconciles the running processes with `plan_for(spec)`, the same
plan the Pulumi program declares for a cluster:

- a control plane per revision: an ADS endpoint (localmesh.ControlPlane) that the
  revision's proxies connect to; install starts the target's beside the stable
  one, cleanup stops the old one;
- the workloads are the fleet's (`local_fleet.FleetWorkload`): what already
  runs, with its own replicas; the plan only selects them and says which
  revision their pods run;
- a "pod" per workload replica: its own upstream endpoint (the app container)
  behind one Envoy whose binary is the pod's proxy version (1.39.3 stable,
  1.40.0 target), with real traffic sent through it all the time;
- canaries are clones of a fleet workload (`canaryReplicas` pods on the target
  Envoy); when they start, the rehearsal's fault (`--fault`) is injected into
  them for real;
- every proxy runs the spec's proxy profile (access log, overload actions,
  keepalives, log levels), rendered into its bootstrap by localmesh; the running
  proxies are listed in `targets.json` for `meshlift inspect --rehearsal`;
- every proxy looks like an Istio sidecar where the gates look and it costs
  little: a 24 h SPIFFE workload certificate from the rehearsal's mesh root
  (10 years, served as `ROOTCA`), Istio's default stats matcher widened as
  meshlift's revisions widen it (`proxyStatsMatcher`), `;` after each cluster's
  stat name, and ADS on a cluster named `xds-grpc`;
- a wave restart starts the new pods first, then stops the old ones (surge);
  a workload whose revision does not change is never restarted.

Rollback is a re-apply of an earlier entry of this platform's own history
(`.meshlift/<stack>/local-history.json`, newest last), exactly like a stack's
history on the Kubernetes platform. Because apply is declarative, a resumed run
(the previous process was interrupted and its Envoys were stopped) simply
reconciles the last applied stage from nothing.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshmodel.plan import CANARY_SUFFIX, MeshPlan, plan_for
from meshmodel.spec import MeshSpec
from meshmodel.spec_check import load_spec
from rollout.errors import PlatformError
from rollout.history import HistoryEntry
from rollout.platforms.base import Applied, GateScope, GateTargets, Log, StageChange
from rollout.platforms.local_fleet import FleetWorkload, pod_object
from rollout.platforms.scope import promotion_warnings, selectors_for

STATS_FLUSH_S = 1.0  # the gauges the checks read (cert days, server state) refresh this often


@dataclass
class _Pod:
    key: tuple[str, str, int]  # namespace, deployment, replica
    version: str
    revision: str
    track: str  # stable | canary
    proxy: Any
    endpoint: Any
    stop_traffic: threading.Event = field(default_factory=threading.Event)
    traffic: threading.Thread | None = None
    fault: Any = None

    @property
    def name(self) -> str:
        namespace, deployment, replica = self.key
        return f"{namespace}/{deployment}-{replica}"

    @property
    def source(self) -> str:
        """The fleet workload the pod belongs to (a canary's: the one it clones)."""
        deployment = self.key[1]
        return deployment.removesuffix(CANARY_SUFFIX) if self.track == "canary" else deployment

    @property
    def owner(self) -> str:
        return f"ReplicaSet/{self.key[1]}-local"


class LocalPlatform:
    name = "local"

    def __init__(self, *, state_dir: Path, base_config: dict[str, Any], fleet: Sequence[FleetWorkload] = (),
                 fault: str = "none", traffic_rate_per_s: float = 25.0,
                 binaries: dict[str, Any] | None = None) -> None:
        self.state_dir = state_dir
        self.base_config = dict(base_config)
        self.fleet = {(w.namespace, w.name): w for w in fleet}
        self.fault = fault
        self.traffic_rate_per_s = traffic_rate_per_s
        self._binaries = binaries
        self._upstream: Any = None
        self._planes: dict[str, Any] = {}
        self._root: Any = None  # the rehearsal's mesh root, signing each pod's workload certificate
        self._pods: dict[tuple[str, str, int], _Pod] = {}
        self._profile: Any = None  # the spec's proxy profile, rendered into every new pod's proxy
        self.faults_injected: list[str] = []
        self.reaped: list[int] = []  # Envoys a killed earlier run left behind, stopped by open()

    # ------------------------------------------------------------------ lifecycle

    @property
    def history_path(self) -> Path:
        return self.state_dir / "local-history.json"

    @property
    def mesh_dir(self) -> Path:
        return self.state_dir / "mesh"

    @property
    def targets_path(self) -> Path:
        """The running proxies as a targets file (`meshlift inspect --rehearsal` reads it)."""
        return self.state_dir / "targets.json"

    def reset(self) -> None:
        """Forget the previous rehearsal: a fresh history whose update 1 is the mesh before the upgrade."""
        self.history_path.unlink(missing_ok=True)

    def open(self, current: MeshSpec) -> None:
        import localmesh

        localmesh.install_signal_handlers()
        self.reaped = reap_orphans(self.mesh_dir)
        shutil.rmtree(self.mesh_dir, ignore_errors=True)  # work dirs of an interrupted run
        self.mesh_dir.mkdir(parents=True, exist_ok=True)
        if self._binaries is None:
            self._binaries = {b.version: b for b in (localmesh.stable_envoy(), localmesh.target_envoy())}
        self._upstream = localmesh.Upstream(name="app").start()
        self._root = localmesh.mesh_root()
        if not self._entries():
            self._record(self.base_config, message="initial deployment (before the upgrade)")
        self._reconcile(current, log=lambda _line: None)

    def close(self) -> None:
        import localmesh

        pods = list(self._pods.values())
        self._pods.clear()
        self._stop_pods(pods)
        for plane in self._planes.values():
            plane.stop()
        self._planes.clear()
        if self._upstream is not None:
            self._upstream.stop()
            self._upstream = None
        localmesh.stop_all()  # anything a failed start left behind
        shutil.rmtree(self.mesh_dir, ignore_errors=True)
        self.targets_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ Platform

    def apply(self, change: StageChange, *, log: Log) -> Applied:
        self._reconcile(change.spec, log=log)
        update = self._record({**self.base_config, **change.config}, message=change.message)
        warnings = tuple(promotion_warnings(change.spec, self.live_workloads))
        for warning in warnings:
            log(f"warning: {warning}")
        return Applied(update=update, warnings=warnings)

    def live_workloads(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return {namespace: [w.to_object() for w in self.fleet.values() if w.namespace == namespace]
                for namespace in namespaces}

    def pods(self) -> list[dict[str, Any]]:
        found = []
        for pod in self._pods.values():
            namespace, workload, replica = pod.key
            source = self.fleet.get((namespace, pod.source))
            labels = {**(source.selector if source else {}), "meshlift.io/track": pod.track}
            found.append(pod_object(namespace=namespace, name=f"{workload}-{replica}", owner=pod.owner,
                                    labels=labels, revision=pod.revision, version=pod.version,
                                    app_image=source.image if source else "local/app:1"))
        return found

    def autoscalers(self, namespaces: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return {namespace: [] for namespace in namespaces}  # the fleet scales nothing

    def revision_sources(self) -> dict[str, list[dict[str, Any]]]:
        return {"namespaces": [], "templates": [], "gateways": []}  # only pods here: the fleet's workloads roll

    def pinned_config(self, revision: str) -> list[dict[str, str]]:
        return []  # no Istio config objects: the rehearsal's control planes are files

    def namespaces(self) -> list[dict[str, Any]]:
        return []  # namespaces are names here, with no labels anyone could put back

    def workload_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []  # the fleet has no OnDelete workload, so nothing is evicted

    def evict(self, namespace: str, pod: str) -> bool:
        raise PlatformError("the local rehearsal does not evict pods")

    def delete_pod(self, namespace: str, pod: str) -> None:
        raise PlatformError("the local rehearsal does not delete pods")

    def reapply(self, entry: HistoryEntry, *, log: Log) -> Applied:
        config = {**self.base_config, **entry.decoded_config()}
        self._reconcile(load_spec(config), log=log)
        return Applied(update=self._record(config, message=f"rollback to update {entry.version} ({entry.describe()})"))

    def targets(self, plan: MeshPlan, scope: GateScope) -> GateTargets:
        from checks.sampling import Sampled, choose
        from checks.target import Target

        canary, baseline, sampled = [], [], []
        for selector in selectors_for(plan, scope):
            if selector.sample == 0:  # left out of a wave gate's baseline sample
                sampled.append(Sampled(selector.workload, selector.role, (), None))
                continue
            pods = [pod for pod in self._pods.values() if pod.key[:2] == (selector.namespace, selector.name)]
            chosen = choose(pods, selector.sample, name=lambda pod: pod.name)
            sampled.append(Sampled(selector.workload, selector.role,
                                   tuple(pod.name for pod in chosen), len(pods)))
            for pod in chosen:
                target = Target(name=pod.name, admin_url=pod.proxy.admin_url, role=selector.role,  # type: ignore[arg-type]
                                expected_version=selector.version_for(pod.revision),
                                labels={"namespace": pod.key[0], "workload": pod.key[1],
                                        "revision": pod.revision, "track": pod.track})
                (canary if selector.role == "canary" else baseline).append(target)
        return GateTargets(canary=canary, baseline=baseline, sampled=sampled)

    def history(self) -> list[HistoryEntry]:
        return sorted((_entry(raw) for raw in self._entries()), key=lambda e: e.version, reverse=True)

    # ------------------------------------------------------------------ what runs

    def running(self) -> list[tuple[str, str, str]]:
        """(pod, version, track) of every running pod: what a test or a status line shows."""
        return sorted((pod.name, pod.version, pod.track) for pod in self._pods.values())

    def control_planes(self) -> list[str]:
        return sorted(self._planes)

    def _reconcile(self, spec: MeshSpec, *, log: Log) -> None:
        import localmesh

        plan = plan_for(spec)
        self._profile = spec.proxy_profile
        for control in plan.control_planes:
            if control.revision not in self._planes:
                self._planes[control.revision] = localmesh.ControlPlane().start()
                log(f"control plane {control.revision} ({control.version}) started")
        desired: dict[tuple[str, str, int], tuple[str, str, str]] = {}
        for workload in plan.workloads:
            for replica in range(self._running(workload.namespace, workload.name).replicas):
                desired[(workload.namespace, workload.name, replica)] = (
                    workload.proxy_version, workload.proxy_revision, "stable")
        for canary in plan.canaries:
            self._running(canary.namespace, canary.workload)  # a clone needs its live workload
            for replica in range(canary.replicas):
                desired[(canary.namespace, canary.name, replica)] = (
                    canary.expected_proxy_version, canary.revision, "canary")
        replaced = [pod for key, pod in self._pods.items()
                    if key not in desired or (pod.version, pod.revision, pod.track) != desired[key]]
        starting = [self._new_pod(key, *wanted) for key, wanted in desired.items()
                    if key not in self._pods or self._pods[key] in replaced]
        if starting:
            try:
                localmesh.start_proxies([pod.proxy for pod in starting], timeout_s=30)
            except localmesh.LocalMeshError as error:
                for pod in starting:
                    pod.endpoint.stop()
                raise PlatformError(f"proxies did not start: {error}") from error
        # Surge: the new pods serve before the old ones go.
        self._stop_pods(replaced)
        for pod in replaced:
            self._pods.pop(pod.key, None)
            log(f"pod {pod.name} ({pod.version}) stopped")
        for pod in starting:
            self._pods[pod.key] = pod
            self._start_traffic(pod)
            log(f"pod {pod.name} started on Envoy {pod.version} ({pod.track}, revision {pod.revision})")
            if pod.track == "canary" and self.fault != "none":
                pod.fault = localmesh.inject_fault(pod.proxy, self.fault)
                self.faults_injected.append(f"{self.fault}@{pod.name}")
                log(f"fault {self.fault} injected into {pod.name}: {pod.fault.signal}")
        wanted_planes = {control.revision for control in plan.control_planes}
        for revision in [r for r in self._planes if r not in wanted_planes]:
            self._planes.pop(revision).stop()
            log(f"control plane {revision} stopped")
        self._write_targets()

    def _write_targets(self) -> None:
        """Every running pod's proxy, canaries as role canary and the rest as baseline."""
        from checks.targets_file import write_targets
        from checks.target import Target

        write_targets(self.targets_path, [
            Target(name=pod.name, admin_url=pod.proxy.admin_url,
                   role="canary" if pod.track == "canary" else "baseline",
                   labels={"namespace": pod.key[0], "workload": pod.key[1], "revision": pod.revision,
                           "track": pod.track, "version": pod.version})
            for pod in sorted(self._pods.values(), key=lambda p: p.key)])

    def _running(self, namespace: str, name: str) -> FleetWorkload:
        try:
            return self.fleet[(namespace, name)]
        except KeyError:
            raise PlatformError(f"no workload {namespace}/{name} runs in the local fleet") from None

    def _new_pod(self, key: tuple[str, str, int], version: str, revision: str, track: str) -> _Pod:
        import localmesh

        from components.control_plane import PROXY_STATS_MATCHER
        from rollout.platforms.local_profile import local_profile

        binary = (self._binaries or {}).get(version)
        if binary is None:
            known = ", ".join(sorted(self._binaries or {}))
            raise PlatformError(f"no local Envoy binary for version {version} (have: {known})")
        namespace, deployment, replica = key
        name = f"{namespace}-{deployment}-{replica}-{version.replace('.', '-')}"
        endpoint = self._upstream.endpoint(name).start()
        endpoint.fail_with(None)  # an endpoint name reused after a rollback starts healthy
        plane = self._planes.get(revision)
        spec = localmesh.ProxySpec(
            binary=binary, name=name, revision=revision, workdir=self.mesh_dir / name,
            tls=True, overload=localmesh.OverloadThresholds(),
            root=self._root,
            cert=localmesh.workload_cert(self._root, spiffe_id=f"spiffe://cluster.local/ns/{namespace}/sa/{deployment}"),
            istio_stats=True, stats_inclusion_prefixes=tuple(PROXY_STATS_MATCHER["inclusionPrefixes"]),
            stats_inclusion_regexps=tuple(PROXY_STATS_MATCHER["inclusionRegexps"]),
            control_plane_port=plane.port if plane is not None else None,
            stats_flush_interval_s=STATS_FLUSH_S,
            profile=local_profile(self._profile, self.mesh_dir / name) if self._profile is not None else None,
        )
        proxy = localmesh.Proxy(spec, upstream=endpoint, control_plane=plane)
        return _Pod(key=key, version=version, revision=revision, track=track, proxy=proxy, endpoint=endpoint)

    def _start_traffic(self, pod: _Pod) -> None:
        import localmesh

        def drive() -> None:
            while not pod.stop_traffic.is_set():
                try:
                    localmesh.send_traffic(pod.proxy.url, requests=None, duration_s=0.5,
                                           rate_per_s=self.traffic_rate_per_s, concurrency=1, timeout_s=1.0)
                except Exception:  # a proxy being stopped under us: traffic is best effort
                    time.sleep(0.1)

        pod.traffic = threading.Thread(target=drive, name=f"traffic-{pod.name}", daemon=True)
        pod.traffic.start()

    def _stop_pods(self, pods: list[_Pod]) -> None:
        import localmesh

        for pod in pods:
            pod.stop_traffic.set()
        for pod in pods:
            if pod.traffic is not None:
                pod.traffic.join(timeout=3)
        localmesh.stop_proxies([pod.proxy for pod in pods], grace_s=3)
        for pod in pods:
            if pod.endpoint is not None:
                pod.endpoint.stop()
            shutil.rmtree(pod.proxy.layout.root, ignore_errors=True)

    # ------------------------------------------------------------------ history file

    def _entries(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self.history_path.read_text())
        except FileNotFoundError:
            return []

    def _record(self, config: dict[str, Any], *, message: str, result: str = "succeeded") -> int:
        entries = self._entries()
        version = max((e["version"] for e in entries), default=0) + 1
        entries.append({"version": version, "kind": "update", "result": result, "message": message,
                        "start_time": time.time(),
                        "config": {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                                   for k, v in config.items()}})
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.history_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(self.history_path)
        return version


def reap_orphans(mesh_dir: Path, *, grace_s: float = 3.0) -> list[int]:
    """Stop Envoys whose bootstrap lives under `mesh_dir`: a run killed with SIGKILL
    cannot stop its proxies (they run in their own process groups), the next run does."""
    import psutil

    marker = str(mesh_dir) + "/"
    orphans = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in arg for arg in proc.info["cmdline"] or ()):
                orphans.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in orphans:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(orphans, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return [proc.pid for proc in orphans]


def _entry(raw: dict[str, Any]) -> HistoryEntry:
    from datetime import datetime, timezone

    return HistoryEntry(version=raw["version"], kind=raw["kind"], result=raw["result"], config=raw["config"],
                        message=raw.get("message", ""),
                        start_time=datetime.fromtimestamp(raw.get("start_time", 0), tz=timezone.utc))
