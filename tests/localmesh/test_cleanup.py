"""No Envoy process and no /dev/shm/envoy_shared_memory_* file outlives its program."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

pytestmark = pytest.mark.envoy

# A program that starts two proxies, says which pids they have, then either
# waits to be interrupted or ends in the way the test asks.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import localmesh as lm
    if sys.argv[1] == "sigterm-chained":  # the program's own handler, installed first
        signal.signal(signal.SIGTERM, lambda *_: (print("own handler", flush=True), os._exit(3)))
    up = lm.Upstream().start()
    proxies = [lm.start_proxy(lm.target_envoy(), up, name=f"p{i}") for i in range(2)]
    print(" ".join(str(p.process.pid) for p in proxies), flush=True)
    print(" ".join(str(p.layout.root) for p in proxies), flush=True)
    how = sys.argv[1]
    if how == "raise":
        raise RuntimeError("boom")
    if how == "exit":
        sys.exit(0)
    time.sleep(60)
""")


def envoy_pids() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "envoy"}


def shm_files() -> set[str]:
    return set(glob.glob("/dev/shm/envoy_shared_memory_*"))


@pytest.mark.parametrize("how", ["sigint", "sigterm", "sigterm-chained", "raise", "exit"])
def test_proxies_are_stopped_when_their_program_ends(how) -> None:
    shm_before = shm_files()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        pids = {int(pid) for pid in line.split()}
        assert len(pids) == 2, child.stderr.read()  # type: ignore[union-attr]
        workdirs = child.stdout.readline().split()  # type: ignore[union-attr]
        if how == "sigint":
            child.send_signal(signal.SIGINT)
        elif how.startswith("sigterm"):
            child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert not pids & envoy_pids(), f"envoys left behind after {how}"
    assert shm_files() <= shm_before
    assert not [d for d in workdirs if os.path.exists(d)]
    # An uncaught KeyboardInterrupt ends Python by SIGINT itself (exit status -2).
    expected = {"sigint": -signal.SIGINT, "sigterm": -signal.SIGTERM, "sigterm-chained": 3,
                "raise": 1, "exit": 0}[how]
    assert code == expected
    if how == "sigterm-chained":
        assert child.stdout.read().strip() == "own handler"  # type: ignore[union-attr]


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    from localmesh import _registry

    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, process_group=0,
    )
    _registry.register(stubborn)
    assert stubborn.stdout.readline() == b"ready\n"  # type: ignore[union-attr]
    _registry.terminate([stubborn], grace_s=0.2)
    assert stubborn.returncode == -signal.SIGKILL
    assert stubborn.pid not in _registry.live_pids()


# A signal that lands while the Envoy is being spawned: after the process exists,
# before the registry knows it (Popen waits for the child's exec, so Ctrl-C can
# land right there).
SPAWN_INTERRUPTED = textwrap.dedent("""
    import os, signal, subprocess, time
    import localmesh as lm
    binary = lm.target_envoy()  # runs `envoy --version`: before Popen is wrapped
    up = lm.Upstream().start()
    real_popen = subprocess.Popen
    class SignalledDuringSpawn(real_popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            print(self.pid, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
    subprocess.Popen = SignalledDuringSpawn
    lm.install_signal_handlers()
    lm.start_proxy(binary, up, name="p")
    time.sleep(30)
""")


def test_a_signal_during_spawn_still_stops_the_new_proxy() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SPAWN_INTERRUPTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        pid = int(child.stdout.readline())  # type: ignore[union-attr]
        code = child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert pid not in envoy_pids(), "the envoy spawned as the signal landed was left running"
    assert code == -signal.SIGTERM


# A program that registers a stopper for something outside its process tree, then is ended by a signal.
STOPPER_CHILD = textwrap.dedent("""
    import pathlib, sys, time
    import localmesh as lm
    marker = pathlib.Path(sys.argv[1])
    lm.on_stop("kept", lambda: marker.with_suffix(".kept").write_text("stopped"))
    lm.on_stop("forgotten", lambda: marker.with_suffix(".forgotten").write_text("stopped"))
    lm.forget_stopper("forgotten")
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_registered_stopper_runs_when_a_signal_ends_the_program(tmp_path, signum):
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", STOPPER_CHILD, str(marker)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signum)
    assert child.wait(timeout=30) == -signum, "the program still dies of the signal"
    assert marker.with_suffix(".kept").read_text() == "stopped"
    assert not marker.with_suffix(".forgotten").exists(), "a forgotten stopper never runs"
