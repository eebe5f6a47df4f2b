"""A real local Kubernetes on 127.0.0.1: kube-apiserver, etcd, controller-manager, scheduler and kwok.

`kwokctl` (binary runtime) starts the real control-plane binaries from the pinned
toolchain — never downloads — and the `kwok` controller plays the nodes and the
kubelets: Deployments become available, pods get IPs and become Ready, Job pods
complete. No container runtime exists here, so no container image ever runs.

Everything a cluster dials stays on loopback:
- nodes report 127.0.0.1 and kwok's own port as their kubelet endpoint, so
  `pods/portforward` goes apiserver -> kwok, which forwards to the address a kwok
  `PortForward` object names (e.g. a local Envoy's admin port);
- pod IPs come from a per-cluster 127.x/16 range (the API server refuses them
  in endpoints, so Services have none);
- Service cluster IPs come from a per-cluster 127.x/16 range too, and the API
  server calls webhooks there: a local process bound to a Service's address (the
  istiod runner) answers that Service's webhooks.

Each cluster lives in its own kwok workdir under the caller's directory, with its
own kubeconfig (context `kwok-<name>`) — never the user's current context.
`stop()` deletes the cluster and kills what is left; its logs are kept beside the
workdir (`<name>-logs`) for a failing test to show.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localcluster.toolchain import Toolchain
from localmesh import forget_stopper, on_stop

NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
NODE_POD_CAPACITY = 250  # pods each kwok node takes; a mesh larger than nodes x this needs more nodes
START_TIMEOUT_SECONDS = 180
KWOK_CRDS = ["PortForward", "ClusterPortForward", "Attach", "ClusterAttach", "Exec", "ClusterExec",
             "Logs", "ClusterLogs", "ResourceUsage", "ClusterResourceUsage", "Metric"]


class ClusterError(RuntimeError):
    """The cluster could not start or stop; the message carries the tail of the component logs."""


@dataclass
class LocalCluster:
    name: str
    index: int  # picks this cluster's loopback ranges: 127.(100+index).0.0/16 pods, 127.(200+index) services
    workdir: Path  # KWOK_WORKDIR
    toolchain: Toolchain
    nodes: int = 2
    started: bool = field(default=False, init=False)

    @property
    def context(self) -> str:
        return f"kwok-{self.name}"

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def logs_dir(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def pod_cidr(self) -> str:
        return f"127.{100 + self.index}.0.0/16"

    @property
    def service_cidr(self) -> str:
        return f"127.{200 + self.index}.0.0/16"

    def config_documents(self) -> list[dict]:
        tc = self.toolchain
        kwokctl = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": "v1.36.3",
                "securePort": True,
                "bindAddress": "127.0.0.1",
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "enableCRDs": KWOK_CRDS,
                "kubeApiserverBinary": str(tc.path("kube-apiserver")),
                "kubeControllerManagerBinary": str(tc.path("kube-controller-manager")),
                "kubeSchedulerBinary": str(tc.path("kube-scheduler")),
                "kwokControllerBinary": str(tc.path("kwok")),
                "etcdBinary": str(tc.path("etcd")),
                # Nothing is downloaded: a binary kwokctl would fetch is a configuration error here.
                "cacheDir": str(self.workdir / "cache"),
            },
            "componentsPatches": [
                {
                    "name": "kube-apiserver",
                    # Webhooks are called at the Service's cluster IP, on loopback here
                    # (endpoints may not hold loopback addresses, so no routing to pod IPs).
                    "extraArgs": [{"key": "service-cluster-ip-range", "value": self.service_cidr}],
                },
                {
                    "name": "kube-controller-manager",
                    # One instance, and nothing here restarts it: with leader election, an API server
                    # restart longer than its renew deadline (10 s) would end it for good.
                    "extraArgs": [{"key": "service-cluster-ip-range", "value": self.service_cidr},
                                  {"key": "leader-elect", "value": "false"}],
                },
                {"name": "kube-scheduler", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
            ],
        }
        kwok = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            # A KwokConfiguration document replaces kwok's defaults rather than merging
            # with them, so the defaults this version documents are repeated here.
            "options": {
                "cidr": self.pod_cidr,
                "nodeIP": "127.0.0.1",
                "enableDebuggingHandlers": True,
                "enableProfilingHandler": True,
                "podPlayStageParallelism": 4,
                "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4,
                "podsOnNodeSyncParallelism": 1,
                "enablePodsOnNodeSyncListPager": True,
                "enablePodsOnNodeSyncStreamWatch": False,
            },
        }
        return [kwokctl, kwok]

    def environment(self) -> dict[str, str]:
        env = self.toolchain.environment()
        env["KWOK_WORKDIR"] = str(self.workdir)
        return env

    def _kwokctl(self, *args: str, timeout: float = START_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.toolchain.path("kwokctl")), *args, "--name", self.name],
            env=self.environment(), capture_output=True, text=True, timeout=timeout,
        )

    def start(self) -> LocalCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / f"{self.name}.kwokctl.yaml"
        config.write_text(yaml.safe_dump_all(self.config_documents(), sort_keys=False))
        self.started = True  # from here on, stop() has something to clean up
        # A SIGTERM or SIGHUP ends this process without `finally` blocks: the daemons
        # kwokctl starts are not our children, so they are killed by their directory.
        on_stop(self._stopper_key, lambda: _kill_processes_under(self.cluster_dir, grace=2.0))
        result = self._kwokctl("create", "cluster", "--config", str(config), "--wait", f"{START_TIMEOUT_SECONDS}s")
        if result.returncode != 0:
            raise ClusterError(
                f"kwokctl could not start cluster {self.name} (exit {result.returncode}):\n"
                f"{_tail(result.stderr + result.stdout)}\n{self.log_tail()}"
            )
        self._add_nodes()
        return self

    def _add_nodes(self) -> None:
        from kubernetes import client

        api = client.CoreV1Api(self.api_client())
        for i in range(self.nodes):
            api.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"{self.name}-node-{i}",
                        "annotations": dict(NODE_ANNOTATION),
                        "labels": {"kubernetes.io/hostname": f"{self.name}-node-{i}", "type": "kwok",
                                   "topology.kubernetes.io/zone": f"zone-{i % 3}"},
                    },
                    "spec": {"podCIDR": self.pod_cidr},
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(NODE_POD_CAPACITY)},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(NODE_POD_CAPACITY)},
                    },
                }
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = [
                n for n in api.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            ]
            if len(ready) >= self.nodes:
                return
            time.sleep(0.5)
        raise ClusterError(f"cluster {self.name}: kwok did not make {self.nodes} nodes Ready in 60 s\n{self.log_tail()}")

    def api_client(self):  # -> kubernetes.client.ApiClient
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)

    def restart_api_server(self, *, down_s: float = 3.0, timeout: float = START_TIMEOUT_SECONDS) -> float:
        """Stop kube-apiserver, keep it down `down_s`, start it again with the command line, directory and
        environment kwokctl gave it (kwokctl itself stops and starts only whole clusters), and wait until
        it serves. Returns how long it did not answer, in seconds. etcd and every other component keep
        running, as during a managed control plane's upgrade or an API server's crash."""
        import psutil

        pid_file = self.cluster_dir / "pids" / "kube-apiserver.pid"
        process = psutil.Process(int(pid_file.read_text().strip()))
        command, cwd, env = process.cmdline(), process.cwd(), process.environ()
        stopped = time.monotonic()
        process.terminate()
        try:
            process.wait(timeout=30)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        time.sleep(down_s)
        with open(self.logs_dir / "kube-apiserver.log", "ab") as log:
            started = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        pid_file.write_text(str(started.pid))  # kwokctl stops components by their pid file
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if started.poll() is not None:
                raise ClusterError(f"cluster {self.name}: kube-apiserver exited {started.returncode} on restart\n"
                                   f"{self.log_tail()}")
            if self._serves():
                return time.monotonic() - stopped
            time.sleep(0.2)
        raise ClusterError(f"cluster {self.name}: kube-apiserver not serving {timeout:.0f} s after a restart\n"
                           f"{self.log_tail()}")

    def _serves(self) -> bool:
        from kubernetes import client

        try:
            with self.api_client() as api:
                client.VersionApi(api).get_code(_request_timeout=2)
        except Exception:  # noqa: BLE001 - refused, reset, TLS not ready yet: not serving
            return False
        return True

    @property
    def kept_logs(self) -> Path:
        return self.workdir / f"{self.name}-logs"

    def stop(self) -> None:
        if not self.started:
            return
        if self.logs_dir.exists():  # kwokctl deletes the cluster directory, logs included
            shutil.copytree(self.logs_dir, self.kept_logs, dirs_exist_ok=True)
        try:
            self._kwokctl("delete", "cluster", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        finally:
            # kwokctl can return while a component is still shutting down (or leave one
            # running): nothing started from this cluster's directory may outlive it.
            _kill_processes_under(self.cluster_dir)
            forget_stopper(self._stopper_key)
            self.started = False

    @property
    def _stopper_key(self) -> str:
        return f"localcluster:{self.cluster_dir}"

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for log in sorted(self.logs_dir.glob("*.log")) if self.logs_dir.exists() else []:
            parts.append(f"--- {log.name} (last {lines} lines)\n{_tail(log.read_text(errors='replace'), lines)}")
        return "\n".join(parts)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _kill_processes_under(directory: Path, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace`, every process whose command line names `directory`."""
    import psutil

    marker = str(directory)
    mine = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        if any(marker in part for part in (process.info.get("cmdline") or [])):
            mine.append(process)
    for process in mine:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(mine, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


def merged_kubeconfig(clusters: list[LocalCluster], path: Path, *, current: str | None = None) -> Path:
    """One kubeconfig holding every cluster's context (current: `current`, else the first)."""
    merged: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}
    for cluster in clusters:
        data = yaml.safe_load(cluster.kubeconfig.read_text())
        for key in ("clusters", "contexts", "users"):
            merged[key].extend(data.get(key) or [])
    merged["current-context"] = current or clusters[0].context
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path
