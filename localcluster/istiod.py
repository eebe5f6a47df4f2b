"""A kubelet for istiod pods only: run each istiod pod's own command as a local process.

kwok plays the kubelet for every pod, so an istiod Deployment becomes Ready
without anything serving its webhooks, and the API server's call to the sidecar
injector (failurePolicy: Fail) would then refuse every injected pod. This runner
watches the istiod pods of a cluster and, for each Running one, starts the real
`pilot-discovery` of that pod's release (from the pinned toolchain: the image tag
`.../pilot:<release>` picks `pilot-discovery-<release>`) with the container's own
args and environment, listening on the pod's IP (a loopback address kwok
assigned). The API server calls webhooks at the Service's cluster IP (also on
loopback); there is no kube-proxy here, and Kubernetes refuses loopback
addresses in endpoints, so the runner does what kube-proxy would: the first
running pod of each revision also serves its webhooks on the Service's
`<cluster IP>:443`. So the injector and the validator that answer are Istio's
own, at the chart's version.

What differs from a real pod: the process talks to the API server with the
cluster's admin kubeconfig rather than the pod's service account token, and no
proxy ever connects to its xDS port (no sidecar image runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.toolchain import Toolchain

ISTIOD_SELECTOR = "app=istiod"
POLL_SECONDS = 0.5
# Addresses the chart's container listens on; the process binds them on the pod's IP.
LISTENERS = {"httpAddr": 8080, "httpsAddr": 15017, "grpcAddr": 15010, "secureGRPCAddr": 15012, "monitoringAddr": 15014}
_FIELD_REFS = {
    "metadata.name": lambda pod: pod.metadata.name,
    "metadata.namespace": lambda pod: pod.metadata.namespace,
    "spec.serviceAccountName": lambda pod: pod.spec.service_account_name or "default",
    "status.podIP": lambda pod: pod.status.pod_ip,
    "spec.nodeName": lambda pod: pod.spec.node_name,
    "status.hostIP": lambda pod: pod.status.host_ip,
}


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    log: Path
    revision: str
    serves_service: bool


def die_with_parent() -> None:
    """Linux: SIGKILL the child when the process that started it dies (no istiod outlives a killed test run)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_process_group(process: subprocess.Popen[bytes], *, grace_s: float = 10) -> None:
    """SIGTERM a child's whole process group, SIGKILL it after `grace_s`; wait for the child."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def release_of(pod: Any) -> str | None:
    """The Istio release a pod's discovery container runs: its image tag."""
    for container in pod.spec.containers or []:
        if container.name == "discovery":
            image = container.image or ""
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else None
            return tag
    return None


def container_environment(pod: Any, container: Any) -> dict[str, str]:
    """The container's env as a kubelet would resolve it (values, field refs, resource refs)."""
    env: dict[str, str] = {}
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from is not None and var.value_from.field_ref is not None:
            resolve = _FIELD_REFS.get(var.value_from.field_ref.field_path)
            value = resolve(pod) if resolve else None
            if value is not None:
                env[var.name] = str(value)
        elif var.value_from is not None and var.value_from.resource_field_ref is not None:
            # GOMAXPROCS / GOMEMLIMIT from the container's limits: leave Go's own defaults.
            continue
    return env


class IstiodRunner:
    """Watch a cluster's istiod pods and run each one's pilot-discovery; `close()` stops them all."""

    def __init__(self, *, core_v1: Any, kubeconfig: Path, context: str, toolchain: Toolchain, workdir: Path,
                 namespace: str = "istio-system") -> None:
        self.core_v1, self.kubeconfig, self.context = core_v1, kubeconfig, context
        self.toolchain, self.workdir, self.namespace = toolchain, workdir, namespace
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._running: dict[str, _Running] = {}  # pod uid -> process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="istiod-runner", daemon=True)

    def __enter__(self) -> IstiodRunner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _service_address(self, revision: str) -> str | None:
        """`<cluster IP>:<port>` of the revision's webhook port, unless another live process serves it."""
        if any(r.revision == revision and r.serves_service and r.process.poll() is None for r in self._running.values()):
            return None
        # An istiod installed without a revision is revision "default" behind the Service `istiod`.
        name = "istiod" if revision == "default" else f"istiod-{revision}"
        service = self.core_v1.read_namespaced_service(name, self.namespace, _request_timeout=5)
        for port in service.spec.ports or []:
            if port.target_port in (15017, "15017") or port.port == 443:
                return f"{service.spec.cluster_ip}:{port.port}"
        return None

    def logs(self) -> dict[str, str]:
        with self._lock:
            return {uid: r.log.read_text(errors="replace") if r.log.exists() else "" for uid, r in self._running.items()}

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            for uid in list(self._running):
                self._terminate(uid)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._sync()
            except Exception as error:  # noqa: BLE001 - the API server restarting is not fatal here
                self.errors.append(str(error))

    def _sync(self) -> None:
        pods = self.core_v1.list_namespaced_pod(self.namespace, label_selector=ISTIOD_SELECTOR, _request_timeout=5).items
        live = {
            p.metadata.uid: p for p in pods
            if p.status and p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
        }
        with self._lock:
            for uid in [u for u in self._running if u not in live]:
                self._terminate(uid)
            for uid, pod in live.items():
                current = self._running.get(uid)
                if current is None or current.process.poll() is not None:
                    self._start(pod)

    def _start(self, pod: Any) -> None:
        release = release_of(pod)
        container = next(c for c in pod.spec.containers if c.name == "discovery")
        binary = self.toolchain.path(f"pilot-discovery-{release}")
        ip = pod.status.pod_ip
        revision = (pod.metadata.labels or {}).get("istio.io/rev", "default")
        service = self._service_address(revision)
        listeners = {flag: f"{ip}:{port}" for flag, port in LISTENERS.items()}
        if service:
            listeners["httpsAddr"] = service  # webhooks: where the API server calls them
        args = [*(container.args or [])]
        args += [f"--{flag}={address}" for flag, address in listeners.items()]
        args += ["--kubeconfig", str(self.kubeconfig)]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        env.update(container_environment(pod, container))
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBE_CONTEXT"] = self.context
        cwd = self.workdir / pod.metadata.name  # no ./etc/istio/config here: mesh config comes from its ConfigMap
        cwd.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{pod.metadata.name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen([str(binary), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       preexec_fn=die_with_parent)
        self._running[pod.metadata.uid] = _Running(process=process, log=log, revision=revision,
                                                   serves_service=service is not None)

    def _terminate(self, uid: str) -> None:
        stop_process_group(self._running.pop(uid).process)
