"""Interrupting a real `meshlift rehearse` at many instants: SIGINT, SIGTERM and SIGHUP, from
the first imports to the last wave, inside gates and while waiting for approval.

Each interrupt must end with one line on stderr (or, with --json, one document on stdout),
exit 128 + the signal's number, leave no process behind, and the same command resumes the run.
The runs chain: each one resumes the run the previous one interrupted, so a few dozen
seconds cover every phase of the rehearsal.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.envoy

MESHLIFT = str(Path(sys.executable).with_name("meshlift"))
FAST_GATES = {"window": "3s", "interval": "250ms", "consecutivePasses": 3}
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Seconds after the start: meshlift still importing (Python's own startup, the first ~50 ms before
# any meshlift code runs, is out of its reach), the install, the canary gate, the waves.
DELAYS = (0.2, 0.35, 0.6, 1.0, 1.3, 1.6, 1.9, 2.2, 2.6, 3.0, 3.4, 3.9, 4.6, 5.4, 0.4, 1.8, 2.4, 2.9, 3.5, 1.1)


def _leftovers(marker: str) -> list[str]:
    """Live processes started by meshlift under this test's marker (Envoys, anything else)."""
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get("MESHLIFT_TEST_MARKER") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {proc.info['name']}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _phase(project: Path) -> tuple[str | None, str | None]:
    try:
        run = json.loads((project / ".meshlift" / "rehearsal" / "run.json").read_text())
    except (FileNotFoundError, ValueError):
        return None, None
    return run.get("run_id"), run.get("phase")


def _locked(project: Path) -> bool:
    """True while a meshlift process holds the rehearsal's lock (it is driving the run)."""
    with open(project / ".meshlift" / "rehearsal" / "lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _env(project: Path, marker: str) -> dict[str, str]:
    return {**os.environ, "MESHLIFT_PROJECT_DIR": str(project), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES),
            "MESHLIFT_TEST_MARKER": marker, "COLUMNS": "100"}


def _interrupt(argv: list[str], env: dict[str, str], delay_s: float, signum: int) -> tuple[subprocess.CompletedProcess, str | None]:
    """Start meshlift, send `signum` after `delay_s` (unless it ended first); the phase it was in."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(delay_s)
    phase = None
    if proc.poll() is None:
        phase = _phase(Path(env["MESHLIFT_PROJECT_DIR"]))[1] or "starting"
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), phase


def _assert_one_clean_interrupt(done: subprocess.CompletedProcess, signum: int, *, as_json: bool, what: str) -> None:
    assert done.returncode == 128 + signum, f"{what}: exit {done.returncode}\n{done.stderr[-3000:]}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("× interrupted"), f"{what}: stderr is not one line:\n{done.stderr[-4000:]}"
    assert signal.Signals(signum).name in lines[0], lines[0]
    if as_json:
        document = json.loads(done.stdout)  # exactly one document: json.loads refuses trailing text
        assert document["schema"] == "meshlift.run/v1" and document["error"]["code"] == 128 + signum, document


def test_an_interrupt_at_any_instant_ends_cleanly_and_the_same_command_resumes(tmp_path):
    marker = uuid.uuid4().hex
    env = _env(tmp_path, marker)
    interrupted_in: set[str] = set()
    started = time.monotonic()
    for index, delay in enumerate(DELAYS):
        signum = SIGNALS[index % len(SIGNALS)]
        as_json = index % 4 == 3
        before = _phase(tmp_path)
        argv = [MESHLIFT, "rehearse", *(["--json"] if as_json else [])]
        done, phase = _interrupt(argv, env, delay, signum)
        what = f"{signal.Signals(signum).name} after {delay}s (phase {phase})"
        assert not _leftovers(marker), f"{what}: processes left running: {_leftovers(marker)}"
        assert "Traceback" not in done.stdout + done.stderr and "Exception ignored" not in done.stderr, \
            f"{what}:\n{done.stderr[-4000:]}"
        if done.returncode == 0:  # it ended before the signal, or the signal came once the outcome was printed
            assert done.stderr == "" and _phase(tmp_path)[1] == "Succeeded", f"{what}: {done.stderr[-3000:]}"
            continue
        _assert_one_clean_interrupt(done, signum, as_json=as_json, what=what)
        interrupted_in.add(phase)
        run_before, phase_before = before
        if run_before and phase_before not in ("Succeeded", "RolledBack", "Failed", "Abandoned") and not as_json:
            assert f"resuming run {run_before}" in done.stdout or phase == "starting", f"{what}:\n{done.stdout}"
    assert {"starting", "CanaryVerifying", "Promoting"} <= interrupted_in, interrupted_in

    resumed = subprocess.run([MESHLIFT, "rehearse"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0 and "promoted" in resumed.stdout, resumed.stdout + resumed.stderr
    assert not _leftovers(marker)
    assert time.monotonic() - started < 150


def test_an_interrupt_while_waiting_for_approval_keeps_the_wait_resumable(tmp_path):
    marker = uuid.uuid4().hex
    env = _env(tmp_path, marker)
    argv = [MESHLIFT, "rehearse", "--require-approval", "--approve-from", "promote"]
    run_ids = set()
    for signum in SIGNALS:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _phase(tmp_path)[1] != "WaitingApproval" or not _locked(tmp_path):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # inside the wait: gates keep sampling, the approval is polled
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        _assert_one_clean_interrupt(done, signum, as_json=False, what=f"{signal.Signals(signum).name} in approval")
        assert not _leftovers(marker)
        run_ids.add(_phase(tmp_path)[0])
    assert len(run_ids) == 1, "every interrupt left the same run to resume"

    approved = subprocess.run([MESHLIFT, "promote", "-s", "rehearsal", "--yes"], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    assert approved.returncode == 0 and "promoted" in approved.stdout, approved.stdout + approved.stderr
    assert not _leftovers(marker)
