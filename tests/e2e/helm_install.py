"""Istio installed with the helm CLI the way Istio's install docs do it, before meshlift exists."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcluster.charts import ChartRepository
from localcluster.cluster import LocalCluster
from localcluster.toolchain import Toolchain

HELM_TIMEOUT_SECONDS = 180


class HelmCli:
    """The pinned helm binary against one cluster, with its own config and cache directories."""

    def __init__(self, toolchain: Toolchain, cluster: LocalCluster, repository: ChartRepository, home: Path) -> None:
        self.binary, self.cluster, self.repository, self.home = toolchain.path("helm"), cluster, repository, home

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {f"HELM_{kind}_HOME": str(self.home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
        result = subprocess.run(
            [str(self.binary), *args, "--kubeconfig", str(self.cluster.kubeconfig),
             "--kube-context", self.cluster.context],
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.home), **env},
            capture_output=True, text=True, timeout=HELM_TIMEOUT_SECONDS + 30, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def install(self, release: str, chart: str, version: str, namespace: str, *flags: str) -> None:
        self.run("install", release, chart, "--repo", self.repository.url, "--version", version,
                 "--namespace", namespace, "--wait", "--timeout", f"{HELM_TIMEOUT_SECONDS}s", *flags)


def install_istio_as_documented(helm: HelmCli, version: str) -> None:
    """istio.io "Install with Helm": istio-base, an istiod without a revision, a gateway in its own namespace."""
    helm.install("istio-base", "base", version, "istio-system", "--create-namespace",
                 "--set", "defaultRevision=default")
    helm.install("istiod", "istiod", version, "istio-system")
    # The docs keep the chart's LoadBalancer Service; nothing here hands out load-balancer
    # addresses, and `--wait` waits for one, so the gateway gets a ClusterIP Service.
    helm.install("istio-ingress", "gateway", version, "istio-ingress", "--create-namespace",
                 "--set", "service.type=ClusterIP")
