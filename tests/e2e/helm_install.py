"""Istio installed with the helm CLI before meshlift exists: as Istio's install docs do it, or
as a platform team runs it, with values of its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

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

    def install(self, release: str, chart: str, version: str, namespace: str, *flags: str,
                values: dict[str, Any] | None = None) -> None:
        if values is not None:  # a values file, as a platform keeps it in its repository (JSON is YAML)
            path = self.home / f"{namespace}-{release}-values.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2))
            flags = (*flags, "--values", str(path))
        self.run("install", release, chart, "--repo", self.repository.url, "--version", version,
                 "--namespace", namespace, "--wait", "--timeout", f"{HELM_TIMEOUT_SECONDS}s", *flags)

    def values(self, release: str, namespace: str) -> dict[str, Any]:
        """`helm get values`: the values the release's deployed revision was given."""
        return json.loads(self.run("get", "values", release, "--namespace", namespace, "--output", "json").stdout)


# What a platform team sets on its ingress gateway: the chart's HPA, floored at 3 pods; the
# Service fronted by a cloud load balancer through standalone NEGs (a ClusterIP Service the
# cloud LB targets, as GKE does it; nothing here hands out load-balancer addresses) with a DNS
# name; the chart's three ports and a TCP port for a database behind the mesh, written as such
# lists are (protocol and targetPort left to the API server).
PLATFORM_SERVICE_ANNOTATIONS = {
    "cloud.google.com/neg": '{"exposed_ports":{"80":{},"443":{}}}',
    "external-dns.alpha.kubernetes.io/hostname": "ingress.corp.example",
}
PLATFORM_AUTOSCALING = {"enabled": True, "minReplicas": 3, "maxReplicas": 6}
PLATFORM_EXTRA_PORT = {"name": "tcp-postgres", "port": 5432}
PLATFORM_GATEWAY_VALUES = {
    "replicaCount": 3,
    "autoscaling": PLATFORM_AUTOSCALING,
    "service": {
        "type": "ClusterIP",
        "annotations": PLATFORM_SERVICE_ANNOTATIONS,
        "ports": [
            {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
            {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
            PLATFORM_EXTRA_PORT,
        ],
    },
}
# The unrevisioned istiod's mesh config: only registered destinations leave the mesh, every
# proxy writes an access log (meshlift's proxy profile writes the same), traces go to the
# platform's OpenTelemetry collector by default. The trust domain stays Istio's: changing it
# changes every workload's identity, no takeover's business.
PLATFORM_MESH_CONFIG = {
    "accessLogFile": "/dev/stdout",
    "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
    "extensionProviders": [{"name": "otel-tracing", "opentelemetry": {
        "service": "otel-collector.observability.svc.cluster.local", "port": 4317}}],
    "defaultProviders": {"tracing": ["otel-tracing"]},
}


def install_istio_as_a_platform(helm: HelmCli, version: str) -> None:
    """The releases of the install docs, each with the platform's own values."""
    helm.install("istio-base", "base", version, "istio-system", "--create-namespace",
                 "--set", "defaultRevision=default")
    helm.install("istiod", "istiod", version, "istio-system", values={"meshConfig": PLATFORM_MESH_CONFIG})
    helm.install("istio-ingress", "gateway", version, "istio-ingress", "--create-namespace",
                 values=PLATFORM_GATEWAY_VALUES)
