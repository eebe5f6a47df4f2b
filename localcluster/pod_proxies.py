"""Real Envoys standing in for the sidecars of a kwok cluster's injected pods.

No container runtime exists here, so an injected pod's `istio-proxy` never runs.
This supervisor watches the cluster's pods and, for every Running pod that
Istio's injector injected (its `sidecar.istio.io/status` annotation names the
revision), starts a local Envoy of that revision's version (localmesh), with the
node metadata istio-agent would set (`ISTIO_VERSION`), and points the pod's port
15000 at the Envoy's admin interface with a kwok PortForward. meshlift's own
discovery and port-forward code then reaches it exactly as it reaches a sidecar.
A pod that goes away takes its Envoy with it. Traffic flows through every
stand-in Envoy to a real upstream, so the gates see requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localmesh as lm
from checks.kube import injected_revision
from localcluster.portforward import forward_pod, unforward_pod

ADMIN_PORT = 15000
POLL_SECONDS = 0.5


def _duration_s(text: Any) -> int:
    return int(float(str(text).rstrip("s"))) if text else 0


def profile_of(pod: Any, mesh_config: dict[str, Any], workdir: Path) -> lm.ProxyProfile:
    """What this pod's sidecar would run with: its log levels from the args the real injector
    rendered into its istio-proxy container, its access log and upstream keepalive from the
    revision's mesh config (the chart's `istio-<rev>` ConfigMap, which istiod pushes)."""
    proxy = next(c for c in pod.spec.containers if c.name == "istio-proxy")
    flags = dict(arg.split("=", 1) for arg in (proxy.args or []) if arg.startswith("--") and "=" in arg)
    keepalive = mesh_config.get("tcpKeepalive")
    log_file = mesh_config.get("accessLogFile") or ""
    return lm.ProxyProfile(
        access_log_path=str(workdir / "access.log") if log_file else None,
        access_log_format=mesh_config.get("accessLogFormat") or "",
        access_log_json=mesh_config.get("accessLogEncoding") == "JSON",
        upstream_keepalive=lm.TcpKeepalive(time_s=_duration_s(keepalive.get("time")),
                                           interval_s=_duration_s(keepalive.get("interval")),
                                           probes=int(keepalive.get("probes") or 0)) if keepalive else None,
        log_level=flags.get("--proxyLogLevel", "warning"),
        component_log_level=flags.get("--proxyComponentLogLevel") or "",
    )



@dataclass
class StandIn:
    namespace: str
    pod: str
    revision: str
    proxy: lm.Proxy


@dataclass
class PodProxies:
    """Run with `with PodProxies(...) as proxies:`; `proxies.by_pod()` lists the stand-ins."""

    core_v1: Any
    custom: Any
    envoy_for_revision: Mapping[str, lm.EnvoyBinary]  # revision -> Envoy binary standing in for its proxy
    istio_version_for_revision: Mapping[str, str]  # revision -> the Istio version its sidecars report
    upstream: lm.Upstream
    workdir: Path
    namespaces: tuple[str, ...] = ()  # () = every namespace
    istio_namespace: str = "istio-system"
    on_start: Callable[[StandIn], None] | None = None  # e.g. inject a fault into a canary's stand-in
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._proxies: dict[str, StandIn] = {}  # pod uid -> stand-in
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-proxies", daemon=True)
        self._traffic = threading.Thread(target=self._send_traffic, name="pod-traffic", daemon=True)

    def __enter__(self) -> PodProxies:
        self._thread.start()
        self._traffic.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def by_pod(self) -> dict[str, StandIn]:
        with self._lock:
            return {f"{s.namespace}/{s.pod}": s for s in self._proxies.values()}

    def close(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._traffic):
            if thread.is_alive():
                thread.join(timeout=15)
        with self._lock:
            stand_ins = list(self._proxies.values())
            self._proxies.clear()
        lm.stop_proxies([s.proxy for s in stand_ins])

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._sync()
            except Exception as error:  # noqa: BLE001 - an API hiccup is retried on the next poll
                self.errors.append(str(error))

    def _pods(self) -> list[Any]:
        if not self.namespaces:
            return self.core_v1.list_pod_for_all_namespaces(_request_timeout=5).items
        return [p for ns in self.namespaces for p in self.core_v1.list_namespaced_pod(ns, _request_timeout=5).items]

    def _sync(self) -> None:
        live = {}
        for pod in self._pods():
            revision = injected_revision(pod)
            if (revision in self.envoy_for_revision and pod.status.phase == "Running"
                    and not pod.metadata.deletion_timestamp):
                live[pod.metadata.uid] = (pod, revision)
        with self._lock:
            gone = [uid for uid in self._proxies if uid not in live]
            new = [(uid, pod, revision) for uid, (pod, revision) in live.items() if uid not in self._proxies]
        for uid in gone:
            with self._lock:
                stand_in = self._proxies.pop(uid)
            try:
                unforward_pod(self.custom, stand_in.namespace, stand_in.pod)
            except Exception as error:  # noqa: BLE001 - the namespace may be gone with the pod
                self.errors.append(str(error))
            stand_in.proxy.stop()
        for uid, pod, revision in new:
            if self._stop.is_set():
                return
            stand_in = self._start(pod, revision)
            with self._lock:
                self._proxies[uid] = stand_in

    def _mesh_config(self, revision: str) -> dict[str, Any]:
        import yaml

        config_map = self.core_v1.read_namespaced_config_map(f"istio-{revision}", self.istio_namespace,
                                                             _request_timeout=5)
        return yaml.safe_load((config_map.data or {}).get("mesh") or "") or {}

    def _start(self, pod: Any, revision: str) -> StandIn:
        namespace, name = pod.metadata.namespace, pod.metadata.name
        workdir = self.workdir / f"{namespace}-{name}"
        proxy = lm.start_proxy(
            self.envoy_for_revision[revision], self.upstream, name=f"{namespace}-{name}", revision=revision,
            xds="static", node_metadata={"ISTIO_VERSION": self.istio_version_for_revision[revision]},
            workdir=workdir, profile=profile_of(pod, self._mesh_config(revision), workdir),
        )
        stand_in = StandIn(namespace=namespace, pod=name, revision=revision, proxy=proxy)
        if self.on_start is not None:
            self.on_start(stand_in)
        forward_pod(self.custom, namespace, name, {ADMIN_PORT: proxy.admin_port})
        return stand_in

    def _send_traffic(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                urls = [s.proxy.url for s in self._proxies.values() if s.proxy.process.running]
            for url in urls:
                try:
                    lm.send_traffic(url, requests=5, concurrency=1, timeout_s=1)
                except Exception:  # noqa: BLE001 - a proxy stopping mid-request is not the traffic loop's failure
                    pass
