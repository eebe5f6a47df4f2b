from __future__ import annotations

from pathlib import Path

import pytest

from rollout.journal import Journal
from rollout.orchestrator import Orchestrator, RunRequest
from rollout.platforms.kubernetes import KubernetesPlatform
from rollout.stages import upgrade_target
from tests.rollout.doubles import (
    FakeCluster,
    ListReporter,
    RecordingEngine,
    ScriptedGate,
    fake_discovery,
    mesh_config,
)


class Rig:
    """An orchestrator on the Kubernetes platform over a recording engine."""

    def __init__(self, root: Path, config: dict | None = None, gate: ScriptedGate | None = None) -> None:
        self.config = config or mesh_config()
        self.engine = RecordingEngine("dev", config=self.config)
        self.engine.up(message="initial deployment")  # update 1: the mesh before the upgrade
        self.engine.calls.clear()
        self.engine.ups = 0
        self.journal = Journal(root / ".meshlift" / "dev")
        self.gate = gate or ScriptedGate()
        self.reporter = ListReporter()
        self.cluster = FakeCluster()
        self.discover = fake_discovery  # one target per selector; PodDiscovery(cluster): one per pod

    def orchestrator(self, **options) -> Orchestrator:
        platform = KubernetesPlatform(self.engine, discover=self.discover, live=self.cluster)
        options = {"retry_wait_s": 0, "approval_poll_s": 0, "rollout_poll_s": 0.01, "rollout_timeout_s": 2,
                   **options}
        return Orchestrator(platform=platform, journal=self.journal, gate=self.gate, reporter=self.reporter,
                            stack="dev", **options)

    def request(self, to: str = "1.40.0", **kwargs) -> RunRequest:
        return RunRequest(command="upgrade", params={"to": to}, target=upgrade_target(self.config, to, **kwargs),
                          base_config=self.config)

    def run(self, to: str = "1.40.0", **options):
        return self.orchestrator(**options).run(self.request(to))


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


@pytest.fixture
def make_rig(tmp_path: Path):
    def make(**kwargs) -> Rig:
        return Rig(tmp_path, **kwargs)
    return make
