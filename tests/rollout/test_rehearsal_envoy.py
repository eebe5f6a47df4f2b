"""The rehearsal on real Envoy processes: promoted when healthy, rolled back on a real fault,
resumed after Ctrl-C, and nothing left running either way."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rollout.phases import Phase
from rollout.rehearsal import rehearse
from tests.rollout.doubles import ListReporter

pytestmark = pytest.mark.envoy

FAST_GATES = {"window": "6s", "interval": "250ms", "consecutivePasses": 3}


def _envoys_under(root: Path) -> list[psutil.Process]:
    """Envoy processes whose bootstrap lives under `root` (ours, not another test's)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "envoy" in cmdline and str(root) in cmdline:
            found.append(proc)
    return found


def _shm_files() -> set[str]:
    return set(glob.glob("/dev/shm/envoy_shared_memory_*"))


def test_healthy_rehearsal_promotes_every_wave_onto_the_target_envoy(tmp_path):
    reporter = ListReporter()
    shm_before = _shm_files()

    state, platform = rehearse(project_dir=tmp_path, fault="none", reporter=reporter, gates=FAST_GATES)

    assert state.phase is Phase.SUCCEEDED, state.failure
    assert state.waves_done == 2
    gates = [(d["gate"], d["outcome"]) for kind, d in reporter.events if kind == "gate" and d["status"] == "done"]
    assert gates == [("canary", "passed"), ("wave 1", "passed"), ("wave 2", "passed"), ("verify", "passed")]
    restarted = [d["line"] for kind, d in reporter.events if kind == "log" and "started on Envoy 1.40.0 (stable" in d["line"]]
    assert len(restarted) == 4, "two waves of two pods restarted onto 1.40.0"
    inventory = next(d for kind, d in reporter.events if kind == "inventory")
    assert inventory["workloads"] == {"shop": ["Deployment/web"], "pay": ["Deployment/api"]}, \
        "what runs is the fleet, selected, not declared"
    assert _envoys_under(tmp_path) == [] and _shm_files() <= shm_before


@pytest.mark.parametrize("fault, check", [("5xx", "upstream-success-rate"), ("reject-config", "xds-config-accepted"),
                                          ("missing-route", "config-parity")])
def test_faulty_canary_is_detected_and_rolled_back_naming_the_gate(tmp_path, fault, check):
    reporter = ListReporter()

    state, platform = rehearse(project_dir=tmp_path, fault=fault, reporter=reporter, gates=FAST_GATES)

    assert state.phase is Phase.ROLLED_BACK
    assert state.failure["gate"] == "canary" and check in state.failure["checks"]
    assert state.failure["message"].startswith("Halt canary advancement:")
    assert state.rollback["describe"] == "1.39.3 -> 1.40.0 stage install"
    assert platform.faults_injected and all(f.startswith(fault + "@") for f in platform.faults_injected)
    assert sorted(f.split("@")[1] for f in platform.faults_injected) == ["pay/api-canary-0", "shop/web-canary-0"]
    stopped = [d["line"] for kind, d in reporter.events if kind == "log" and " stopped" in d["line"]
               and d["line"].startswith("pod ")]
    assert stopped and all("-canary-" in line for line in stopped), \
        f"a bad canary is removed and the original workloads never restart: {stopped}"
    assert _envoys_under(tmp_path) == []


class FailingWave:
    """The real checks gate on real Envoys, except that one named gate is refused (as an operator would)."""

    def __init__(self, refuse: str) -> None:
        from rollout.gates import ChecksGate

        self.real, self.refuse = ChecksGate(), refuse

    def __call__(self, gate, targets, settings, *, on_sample=None):
        from rollout.gates import GateVerdict

        verdict = self.real(gate, targets, settings, on_sample=on_sample)
        if gate != self.refuse:
            return verdict
        return GateVerdict(gate, "failed", f"Halt {gate} advancement: refused by the test", failing_checks=["test"])


def test_a_failed_second_wave_restarts_the_first_wave_back_onto_the_old_envoy(tmp_path):
    reporter = ListReporter()

    state, _ = rehearse(project_dir=tmp_path, fault="none", reporter=reporter, gates=FAST_GATES,
                        gate=FailingWave("wave 2"))

    assert state.phase is Phase.ROLLED_BACK, state.rollback
    assert state.failure["gate"] == "wave 2"
    lines = [d["line"] for kind, d in reporter.events if kind == "log"]
    rolled_back_at = next(i for i, (kind, d) in enumerate(reporter.events) if kind == "phase" and d["to"] == "RollingBack")
    after = [d["line"] for kind, d in reporter.events[rolled_back_at:] if kind == "log"]
    assert sorted(line.split(" started")[0] for line in after if "started on Envoy 1.39.3 (stable" in line) == [
        "pod pay/api-0", "pod pay/api-1", "pod shop/web-0", "pod shop/web-1"], \
        "both promoted waves restart back onto the old revision's Envoy"
    assert any("started on Envoy 1.40.0 (stable" in line for line in lines), "the waves had moved"
    verdicts = [(d["gate"], d["outcome"]) for kind, d in reporter.events if kind == "gate" and d["status"] == "done"]
    assert verdicts[-1] == ("rollback", "passed"), "the restored mesh is healthy on real traffic"
    assert _envoys_under(tmp_path) == []


def test_a_canary_serving_less_is_rolled_back_by_config_parity_alone(tmp_path):
    reporter = ListReporter()

    state, _ = rehearse(project_dir=tmp_path, fault="missing-route", reporter=reporter, gates=FAST_GATES)

    assert state.phase is Phase.ROLLED_BACK and state.failure["checks"] == ["config-parity"]
    assert "serves less than its baseline: route 'http/local_route/all/status'" in state.failure["message"]
    last = next(sample for gate, sample in reversed(reporter.samples) if gate == "canary")
    for target in (t for t in last.report.targets if t.role == "canary"):
        others = [r for r in target.results if r.check_id != "config-parity" and r.blocking]
        assert others == [], f"{target.target}: only config-parity may see it, got {others}"


def test_every_rehearsal_proxy_runs_the_profile_and_the_gates_compare_canaries_for_real(tmp_path):
    reporter = ListReporter()

    state, _ = rehearse(project_dir=tmp_path, fault="none", reporter=reporter, gates=FAST_GATES)

    assert state.phase is Phase.SUCCEEDED, state.failure
    samples = [sample for _, sample in reporter.samples]
    judged = [(t.role, t.result("proxy-profile"), t.result("config-parity")) for s in samples for t in s.report.targets
              if t.role == "canary"]
    # A baseline pod is read only as the canaries' reference; every pod is under test in a later gate.
    baselines = [t for s in samples for t in s.report.targets if t.role == "baseline"]
    assert baselines and all(t.result("proxy-profile").status.value == "skip" for t in baselines)
    assert {t.target for t in baselines} <= {t.target for s in samples for t in s.report.targets if t.role == "canary"}
    assert all(profile.status.value == "pass" for _, profile, _ in judged), "every proxy's config dump has the profile"
    assert all("heap overload actions" in profile.message for _, profile, _ in judged)
    canary_parity = [t.result("config-parity") for gate, sample in reporter.samples if gate == "canary"
                     for t in sample.report.targets if t.role == "canary"]
    assert canary_parity and all(p.status.value == "pass" and p.details["baselines"] for p in canary_parity)
    assert {tuple(p.details["baselines"]) for p in canary_parity} == {("shop/web-0", "shop/web-1"),
                                                                      ("pay/api-0", "pay/api-1")}
    # Shaped like Istio sidecars: a 24 h SPIFFE workload certificate judged on its lifetime beside
    # the 10-year root, and traffic read from `;`-named cluster counters meshlift's stats matcher keeps.
    certs = [t.result("certificates-valid") for s in samples for t in s.report.targets if t.role == "canary"]
    assert all(c.status.value == "pass" and "1 workload certificate(s)" in c.message
               and "of its 24.0 h lifetime used" in c.message for c in certs)
    assert {c.details["workload"][0]["certificate"].rsplit("/", 1)[0] for c in certs} == {
        "cert_chain spiffe://cluster.local/ns/shop/sa", "cert_chain spiffe://cluster.local/ns/pay/sa"}
    rates = [t.result("upstream-success-rate") for s in samples for t in s.report.targets if t.role == "canary"]
    assert {r.details["evidence"] for r in rates} == {"cluster counters"}


def _wait_for_phase(run_json: Path, phase: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads(run_json.read_text())["phase"] == phase:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the rehearsal never reached {phase}")


def test_interrupted_rehearsal_stops_every_envoy_and_the_same_command_resumes_it(tmp_path):
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(tmp_path), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES)}
    meshlift = [sys.executable, "-m", "rollout.entry", "rehearse"]
    run_json = tmp_path / ".meshlift" / "rehearsal" / "run.json"
    shm_before = _shm_files()

    first = subprocess.Popen(meshlift, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_phase(run_json, "Promoting", first)
    assert _envoys_under(tmp_path), "the rehearsal runs real Envoys"
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)

    assert first.returncode == 130, err
    assert "run the same command again to resume" in err, err
    assert _envoys_under(tmp_path) == [] and _shm_files() <= shm_before
    assert json.loads(run_json.read_text())["phase"] == "Promoting"

    second = subprocess.run(meshlift, env=env, capture_output=True, text=True, timeout=120)

    assert second.returncode == 0, second.stderr
    assert "resuming run" in second.stdout and "promoted" in second.stdout
    assert json.loads(run_json.read_text())["phase"] == "Succeeded"
    assert _envoys_under(tmp_path) == [] and _shm_files() <= shm_before


def test_a_killed_rehearsal_leaves_envoys_that_the_resumed_run_reaps(tmp_path):
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(tmp_path), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES)}
    meshlift = [sys.executable, "-m", "rollout.entry", "rehearse", "--json"]
    run_json = tmp_path / ".meshlift" / "rehearsal" / "run.json"

    crashed = subprocess.Popen(meshlift, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_phase(run_json, "CanaryVerifying", crashed)
    time.sleep(0.5)
    crashed.kill()  # SIGKILL: no handler runs, the Envoys (own process groups) survive
    crashed.wait(timeout=10)
    orphans = _envoys_under(tmp_path)
    assert orphans, "a crash cannot stop its proxies"

    resumed = subprocess.run(meshlift, env=env, capture_output=True, text=True, timeout=120)

    document = json.loads(resumed.stdout)
    assert resumed.returncode == 0 and document["phase"] == "Succeeded", resumed.stderr
    assert document["events"][0]["resumed"] is True
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    assert _envoys_under(tmp_path) == []


def test_an_approval_piped_into_the_rehearsal_promotes_it(tmp_path):
    """`echo y | meshlift rehearse --require-approval`: the answer comes through a pipe, not a terminal."""
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(tmp_path), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES)}
    done = subprocess.run([str(Path(sys.executable).with_name("meshlift")), "rehearse", "--require-approval", "--json"],
                          input="y\n", capture_output=True, text=True, env=env, timeout=240)

    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    assert document["phase"] == "Succeeded" and document["error"] is None
    approvals = [e for e in document["events"] if e["event"] == "approval"]
    assert [a["status"] for a in approvals][0] == "waiting" and approvals[-1]["status"] == "approved"
    assert approvals[-1]["via"] == "prompt" and approvals[-1]["gate"] == "canary"
    from rollout.journal import Journal

    journaled = [e for e in Journal.for_stack(tmp_path, "rehearsal").events() if e.get("status") == "approved"]
    assert journaled[-1]["evidence"].startswith("Promote canary"), "what was approved: the canary gate's verdict"
    assert _envoys_under(tmp_path) == []
