"""A real Prometheus on 127.0.0.1 for the benchmarks: installed, started, queried, stopped.

    ensure_prometheus() -> Path          # Debian's `prometheus`, installed with apt-get when root
    with PrometheusServer(scrape_interval_s=1, targets=[...]) as prom:
        prom.query("sum(rate(envoy_cluster_upstream_rq[4s]))") -> dict (the API's `data`)

Each server is our own instance: its own config file and a temporary storage
directory, a free loopback port, never the system service (Debian's package
also installs one; we neither use nor touch it). The process is registered with
localmesh's process registry, so it is stopped at exit, on SIGTERM/SIGINT/SIGHUP
and by `localmesh.stop_all()` like every Envoy, and its directory removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

import localmesh as lm
from localmesh import _registry

APT_INSTALL = ("apt-get", "install", "-y", "prometheus")
START_TIMEOUT_S = 60.0


class PrometheusUnavailable(RuntimeError):
    """Prometheus is not installed and could not be installed; the message says what to run."""


def ensure_prometheus(*, progress=print) -> Path:  # type: ignore[no-untyped-def]
    """The path of the `prometheus` binary, installing Debian's package first if needed (root only)."""
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    command = " ".join(APT_INSTALL)
    if os.geteuid() != 0:
        raise PrometheusUnavailable(
            f"the benchmark against Prometheus needs Debian's `prometheus` package, which is not installed; "
            f"install it with `sudo {command}` (or run as root, and it is installed for you)")
    progress(f"   installing Prometheus: {command} (once; this takes a minute)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    attempt = _run(APT_INSTALL, env)
    if attempt.returncode != 0:  # a fresh machine has no package lists yet
        progress("   ... apt-get update first")
        _run(("apt-get", "update"), env)
        attempt = _run(APT_INSTALL, env)
    found = shutil.which("prometheus")
    if attempt.returncode != 0 or not found:
        tail = "\n".join(attempt.stdout.splitlines()[-8:])
        raise PrometheusUnavailable(f"`{command}` failed (exit {attempt.returncode}); its last lines:\n{tail}")
    return Path(found)


def _run(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)


def prometheus_version(binary: Path) -> str:
    """`2.42.0+ds` (from `prometheus --version`)."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    words = (out.stdout or out.stderr).replace(",", " ").split()
    return words[2] if len(words) > 2 and words[:2] == ["prometheus", "version"] else "unknown"


@dataclass(frozen=True)
class ScrapeTarget:
    """One Envoy's admin address and the pod labels a Kubernetes service discovery would attach."""

    admin_port: int
    labels: dict[str, str]


def scrape_config(targets: Sequence[ScrapeTarget], *, scrape_interval_s: float) -> dict[str, Any]:
    """The config file: one job scraping each Envoy's `/stats/prometheus`, with its pod labels."""
    interval = f"{scrape_interval_s:g}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": "envoy-stats",
            "metrics_path": "/stats/prometheus",
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "static_configs": [{"targets": [f"127.0.0.1:{t.admin_port}"], "labels": t.labels}
                               for t in targets],
        }],
    }


class PrometheusError(RuntimeError):
    """The Prometheus HTTP API answered with an error or could not be reached."""


@dataclass
class PrometheusServer:
    """Our own Prometheus on a free loopback port, scraping `targets`; a context manager."""

    targets: Sequence[ScrapeTarget]
    scrape_interval_s: float = 15.0
    binary: Path | None = None
    port: int = 0
    workdir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> PrometheusServer:
        self.binary = self.binary or ensure_prometheus()
        self.port = lm.free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="meshlift-prometheus-"))
        _registry.register_dir(self.workdir)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.targets, scrape_interval_s=self.scrape_interval_s)))
        log = self.workdir / "prometheus.log"
        argv = [str(self.binary), f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h", "--log.level=warn"]
        with open(log, "ab") as out:
            self._proc = _registry.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         process_group=0, close_fds=True)
        self._client = httpx.Client(base_url=self.url, timeout=5.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                self.stop()
                raise PrometheusError(f"prometheus on 127.0.0.1:{self.port} did not become ready "
                                      f"(exit {self._proc.returncode}); log tail:\n{tail}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        try:
            return self._client is not None and self._client.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> dict[str, Any]:
        """GET /api/v1/query (an instant query, as Flagger's provider runs it); returns `data`."""
        if self._client is None:
            raise PrometheusError("prometheus is not running")
        try:
            response = self._client.get("/api/v1/query", params={"query": promql})
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"query failed: {exc}") from exc
        if response.status_code >= 400 or body.get("status") != "success":
            raise PrometheusError(f"query answered {response.status_code}: {body.get('error', body)}")
        return body["data"]

    def scraped_up(self) -> int:
        """How many targets the last scrape found up."""
        result = self.query('sum(up{job="envoy-stats"})')["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None:
            _registry.terminate([self._proc], grace_s=10.0)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            _registry.forget_dir(self.workdir)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # `python -m bench._prometheus`: install if needed, print the version
    path = ensure_prometheus()
    print(path, prometheus_version(path))
    sys.exit(0)
