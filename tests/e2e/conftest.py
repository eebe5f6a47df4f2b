"""The real engine: the pinned toolchain, local clusters, Istio's charts on loopback.

Every test here runs the real Pulumi CLI, its Python language host and the
Kubernetes provider against a real kube-apiserver (with etcd, controller-manager,
scheduler and kwok nodes). The toolchain is built on first use, with progress on
the terminal, and reused from the cache afterwards; nothing is skipped when it is
missing. No container image runs: kwok plays the kubelets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster import charts, toolchain
from localcluster.cluster import LocalCluster
from tests.e2e.project import Project

ISTIOD_MAX_CONNECTION_AGE = "15s"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


def _progress(message: str) -> None:
    # Straight to the terminal: pytest captures sys.stderr, and a first build takes minutes.
    print(message, file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def built_toolchain() -> toolchain.Toolchain:
    return toolchain.ensure(progress=_progress)


@pytest.fixture(scope="session")
def chart_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[charts.ChartRepository]:
    with charts.serve(tmp_path_factory.mktemp("charts")) as repository:
        yield repository


class ClusterFactory:
    """Starts clusters for one test module; every one is deleted at the end, logs shown on failure."""

    def __init__(self, workdir: Path, built: toolchain.Toolchain) -> None:
        self.workdir, self.built = workdir, built
        self.clusters: list[LocalCluster] = []

    def start(self, name: str, *, nodes: int = 2) -> LocalCluster:
        cluster = LocalCluster(name=name, index=len(self.clusters), workdir=self.workdir, toolchain=self.built,
                               nodes=nodes)
        self.clusters.append(cluster)
        return cluster.start()

    def stop_all(self) -> None:
        for cluster in reversed(self.clusters):
            cluster.stop()


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory, built_toolchain: toolchain.Toolchain,
             request: pytest.FixtureRequest) -> Iterator[ClusterFactory]:
    factory = ClusterFactory(tmp_path_factory.mktemp("kwok"), built_toolchain)
    try:
        yield factory
    finally:
        if request.session.testsfailed:
            for cluster in factory.clusters:
                _progress(f"--- logs of cluster {cluster.name} (kept in {cluster.logs_dir}):\n{cluster.log_tail(15)}")
        factory.stop_all()


@pytest.fixture
def project(tmp_path: Path, built_toolchain: toolchain.Toolchain) -> Project:
    return Project.create(tmp_path / "project", built_toolchain)


@pytest.fixture(scope="module")
def istiod_runners(built_toolchain: toolchain.Toolchain, tmp_path_factory: pytest.TempPathFactory,
                   request: pytest.FixtureRequest) -> Iterator[list]:
    """Start an IstiodRunner with `runners.append(IstiodRunner(...).__enter__())`-style helpers; all closed at the end."""
    runners: list = []
    try:
        yield runners
    finally:
        for runner in runners:
            if request.session.testsfailed:
                for uid, log in runner.logs().items():
                    _progress(f"--- istiod {uid} (last lines):\n" + "\n".join(log.splitlines()[-15:]))
            runner.close()


def cluster_with_istiod(name: str, clusters: ClusterFactory, built: toolchain.Toolchain, runners: list,
                        tmp_path_factory: pytest.TempPathFactory) -> LocalCluster:
    """A fresh cluster whose istiod pods are served by the real pilot-discovery of their release."""
    cluster = clusters.start(name)
    run_istiods(cluster, built, runners, tmp_path_factory.mktemp(f"istiod-{name}"))
    return cluster


def run_istiods(cluster: LocalCluster, built: toolchain.Toolchain, runners: list, workdir: Path):
    """Serve the cluster's istiod pods with the real pilot-discovery of their release."""
    from localcluster.istiod import IstiodRunner
    from tests.e2e.kube import Kube

    # istiod closes each xDS stream after ISTIOD_MAX_CONNECTION_AGE (the chart says 30m): every sidecar
    # reconnects several times during a test's gates, as proxies do on a long-lived mesh.
    runner = IstiodRunner(core_v1=Kube.of(cluster).core, kubeconfig=cluster.kubeconfig, context=cluster.context,
                          toolchain=built, workdir=workdir, max_connection_age=ISTIOD_MAX_CONNECTION_AGE)
    runners.append(runner.__enter__())
    return runner
