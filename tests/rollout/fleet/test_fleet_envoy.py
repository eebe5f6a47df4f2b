"""Rehearsal fleets on real Envoy processes: several small local meshes, one per stack.

Envoy 1.39.3 stands in for the old Istio version and 1.40.0 for the new one; the
versions asserted here are what each running Envoy reports on `/server_info`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout.fleet.driver import FleetDriver
from rollout.fleet.journal import FleetJournal
from rollout.fleet.model import parse_fleet
from rollout.fleet.stacks import RehearsalStacks, rehearsal_stack_config
from rollout.fleet.view import JsonFleetView
from rollout.platforms.base import GateScope

pytestmark = pytest.mark.envoy

FAST_GATES = {"window": "5s", "interval": "250ms", "consecutivePasses": 3}
SOAK_S = 3.0
THREE_RINGS = {"rings": [
    {"name": "dev", "stacks": ["dev"], "soak": f"{SOAK_S:g}s"},
    {"name": "staging", "stacks": ["staging"], "soak": f"{SOAK_S:g}s"},
    {"name": "prod", "stacks": ["prod-eu", "prod-us"], "maxParallel": 2},
]}


def _envoys_under(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "envoy" in cmdline and str(root) in cmdline and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _running_versions(platforms) -> dict[str, set[str]]:
    """Each stack's Envoy versions, as every running Envoy of its mesh reports them itself."""
    from rollout.inventory import INVENTORY_KEY, inventory_of

    versions = {}
    for stack, platform in platforms.items():
        # Every workload that runs in the mesh, as the orchestrator records them.
        inventory = inventory_of(["shop"], platform.live_workloads(["shop"]))
        spec = load_spec({**rehearsal_stack_config(gates=FAST_GATES), INVENTORY_KEY: inventory})
        targets = platform.targets(plan_for(spec), GateScope("verify"))
        versions[stack] = set()
        for target in targets.canary + targets.baseline:
            info = httpx.get(f"{target.admin_url}/server_info", timeout=5).json()
            versions[stack].add(re.search(r"/(\d+\.\d+\.\d+)/", info["version"]).group(1))
    return versions


def _drive(tmp_path: Path, *, fault: str = "none", fault_stack: str | None = None):
    source = RehearsalStacks(tmp_path, "fleet", fault=fault, fault_stack=fault_stack, gates=FAST_GATES)
    seen: dict[str, set[str]] = {}
    driver = FleetDriver(fleet=parse_fleet(THREE_RINGS, label="fleet.yaml"), fleet_name="fleet", source=source,
                         view=JsonFleetView(), soak_poll_s=0.2, retry_wait_s=0.5,
                         on_settled=lambda platforms: seen.update(_running_versions(platforms)))
    return driver.run("1.40.0"), source, seen


def _event(events, kind, **match):
    return next(e for e in events if e["event"] == kind and all(e.get(k) == v for k, v in match.items()))


def test_a_healthy_three_ring_fleet_upgrades_in_order_with_each_soak_honoured(tmp_path):
    state, source, versions = _drive(tmp_path)

    assert state.phase == "Succeeded", state.halt
    assert versions == {"dev": {"1.40.0"}, "staging": {"1.40.0"}, "prod-eu": {"1.40.0"}, "prod-us": {"1.40.0"}}
    events = FleetJournal(source.root).events(state.run_id)
    for earlier, later in (("dev", "staging"), ("staging", "prod")):
        succeeded = _event(events, "soak", ring=earlier, status="started")["ts"]
        soak_end = _event(events, "soak", ring=earlier, status="ended")["ts"]
        next_ring = _event(events, "ring", ring=later, status="upgrading")["ts"]
        assert soak_end - succeeded >= SOAK_S, f"ring {earlier} soaked {soak_end - succeeded:.2f}s"
        assert next_ring >= soak_end, f"ring {later} started before ring {earlier}'s soak ended"
        last_stack_of_earlier = max(e["ts"] for e in events if e["event"] == "stack" and e["ring"] == earlier)
        assert last_stack_of_earlier <= succeeded
    final_gates = [e["stack"] for e in events if e["event"] == "gate" and e["soaking"] == "staging" and e["final"]]
    assert final_gates == ["dev", "staging"], "before prod starts, every earlier ring passes its gate again"
    assert _envoys_under(tmp_path) == []


def test_a_fault_in_ring_two_rolls_it_back_and_leaves_ring_three_on_the_old_version(tmp_path):
    state, source, versions = _drive(tmp_path, fault="5xx", fault_stack="staging")

    assert state.phase == "Halted" and state.halt["ring"] == "staging"
    assert state.stacks["staging"].phase == "RolledBack"
    assert "upstream-success-rate" in source.journal("staging").load().failure["checks"]
    assert versions == {"dev": {"1.40.0"}, "staging": {"1.39.3"}, "prod-eu": {"1.39.3"}, "prod-us": {"1.39.3"}}
    for stack in ("prod-eu", "prod-us"):
        assert source.journal(stack).load() is None, f"{stack} was never handed to an orchestrator"
    assert _envoys_under(tmp_path) == []


def _wait_until(predicate, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if predicate():
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the fleet never got there")


def test_a_fleet_driver_killed_mid_ring_resumes_where_it_stopped(tmp_path):
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(json.dumps(THREE_RINGS))  # JSON is YAML
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(tmp_path), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES)}
    command = [sys.executable, "-m", "rollout.cli", "fleet"]
    options = ["--rehearse", "--fleet", str(fleet_file), "--json"]
    root = tmp_path / ".meshlift" / "fleet-rehearsal" / "fleet"
    staging_run = root / "stacks" / "staging" / "run.json"

    driver = subprocess.Popen(command + ["upgrade"] + options, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_until(lambda: json.loads(staging_run.read_text())["phase"] == "CanaryVerifying", driver)
    os.kill(driver.pid, signal.SIGKILL)  # no handler runs: the Envoys (own process groups) survive
    driver.wait(timeout=10)
    orphans = _envoys_under(tmp_path)
    assert orphans, "a killed driver cannot stop its proxies"
    stopped = json.loads((root / "fleet.json").read_text())
    assert [r["status"] for r in stopped["rings"]] == ["passed", "upgrading", "pending"]

    resumed = subprocess.run(command + ["resume"] + options, env=env, capture_output=True, text=True, timeout=240)

    document = json.loads(resumed.stdout)
    assert resumed.returncode == 0 and document["phase"] == "Succeeded", resumed.stderr
    assert document["schema"] == "meshlift.fleet/v1" and document["run"] == stopped["run_id"]
    assert document["events"][0]["resumed"] is True and document["events"][0]["ring"] == "staging"
    restarted = [e["stack"] for e in document["events"] if e["event"] == "stack" and e["status"] == "started"]
    assert restarted[0] == "staging" and "dev" not in restarted, "the passed ring is not upgraded again"
    staging_runs = [e for e in _jsonl(root / "stacks" / "staging" / "journal.jsonl") if e["event"] == "run"]
    assert [e["resumed"] for e in staging_runs] == [False, True], "staging resumed its own run"
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    assert _envoys_under(tmp_path) == []


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ctrl_c_while_two_stacks_upgrade_at_once_records_no_rollback_and_resumes_both(tmp_path):
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(json.dumps({"rings": [{"name": "prod", "stacks": ["prod-eu", "prod-us"], "maxParallel": 2}]}))
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(tmp_path), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES)}
    command = [sys.executable, "-m", "rollout.cli", "fleet"]
    options = ["--rehearse", "--fleet", str(fleet_file), "--json"]
    stacks = tmp_path / ".meshlift" / "fleet-rehearsal" / "fleet" / "stacks"

    def both_gating() -> bool:
        return all(json.loads((stacks / s / "run.json").read_text())["phase"] == "CanaryVerifying"
                   for s in ("prod-eu", "prod-us"))

    driver = subprocess.Popen(command + ["upgrade"] + options, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_until(both_gating, driver)
    time.sleep(0.5)  # inside the canary gates' windows
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)

    assert driver.returncode == 130, err
    assert _envoys_under(tmp_path) == []
    for stack in ("prod-eu", "prod-us"):
        phases = [e["to"] for e in _jsonl(stacks / stack / "journal.jsonl") if e["event"] == "phase"]
        assert "RollingBack" not in phases, f"{stack}: the interrupt was taken for a failed gate"

    resumed = subprocess.run(command + ["resume"] + options, env=env, capture_output=True, text=True, timeout=180)

    assert resumed.returncode == 0, resumed.stderr
    for stack in ("prod-eu", "prod-us"):
        runs = [e["resumed"] for e in _jsonl(stacks / stack / "journal.jsonl") if e["event"] == "run"]
        assert runs == [False, True], f"{stack} resumed its own run"
    assert _envoys_under(tmp_path) == []
