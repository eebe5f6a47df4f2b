"""Guarantee that every Envoy we start is stopped, however the program ends.

Every spawned process registers here.  `stop_all()` runs at interpreter exit
(atexit covers normal exit, uncaught exceptions and KeyboardInterrupt) and from
handlers for SIGTERM, SIGHUP and SIGINT that then chain to whatever handler was
installed before (so Ctrl-C still raises KeyboardInterrupt, and SIGTERM still
terminates).  Envoys run in their own process group, so a terminal's Ctrl-C
does not reach them behind our back: we stop them ourselves, in order.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_lock = threading.RLock()  # re-entrant: a signal may arrive while the main thread holds it
_live: dict[int, subprocess.Popen[bytes]] = {}
_previous: dict[int, Any] = {}
_dirs: set[str] = set()  # temporary work directories to remove once their envoy is gone
# Stoppers of what runs outside our process tree (a local cluster's daemons), keyed by owner.
_stoppers: dict[str, Callable[[], None]] = {}
_atexit_done = False
_spawning = 0  # spawns under way: a cleanup signal waits until they are registered
_deferred: list[int] = []
_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def register(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _live[proc.pid] = proc
    _ensure_atexit()
    install_signal_handlers()


def spawn(argv: list[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process and register it as one step, as far as our signal handlers see.

    Ctrl-C landing inside `Popen()` (it waits for the child's exec) or between
    `Popen()` and `register()` would leave a running Envoy nobody knows of; so a
    cleanup signal arriving meanwhile is held and re-raised once it is registered.
    """
    global _spawning
    with _lock:
        _spawning += 1
    try:
        proc = subprocess.Popen(argv, **popen_kwargs)
        register(proc)
        return proc
    finally:
        with _lock:
            _spawning -= 1
            pending = [] if _spawning else list(dict.fromkeys(_deferred))
            if not _spawning:
                _deferred.clear()
        for signum in pending:
            os.kill(os.getpid(), signum)


def register_dir(path: os.PathLike[str] | str) -> None:
    """Remove `path` at exit (after the processes are stopped) unless forgotten before."""
    with _lock:
        _dirs.add(str(path))
    _ensure_atexit()


def forget_dir(path: os.PathLike[str] | str) -> None:
    with _lock:
        _dirs.discard(str(path))


def on_stop(owner: str, stopper: Callable[[], None]) -> None:
    """Run `stopper` when everything is stopped (a cleanup signal, exit) unless `forget_stopper(owner)` first.

    For processes that are not our children, such as the daemons kwokctl starts
    for a local cluster: a SIGTERM would otherwise end us and leave them running.
    """
    with _lock:
        _stoppers[owner] = stopper
    _ensure_atexit()
    install_signal_handlers()


def forget_stopper(owner: str) -> None:
    with _lock:
        _stoppers.pop(owner, None)


def _ensure_atexit() -> None:
    global _atexit_done
    with _lock:
        if not _atexit_done:
            atexit.register(stop_all)
            _atexit_done = True


def unregister(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _live.pop(proc.pid, None)


def live_pids() -> list[int]:
    """Pids of the processes started and not yet stopped."""
    with _lock:
        return [pid for pid, proc in _live.items() if proc.poll() is None]


def terminate(procs: list[subprocess.Popen[bytes]], *, grace_s: float = 5.0) -> None:
    """SIGTERM each process group, wait up to `grace_s` in total, SIGKILL the rest."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
        unregister(proc)


def stop_all(grace_s: float = 5.0) -> None:
    """Stop every registered process, then remove temporary work directories (idempotent)."""
    with _lock:
        procs = list(_live.values())
        stoppers = list(_stoppers.values())
        _stoppers.clear()
    if procs:
        terminate(procs, grace_s=grace_s)
    for stopper in stoppers:
        try:
            stopper()
        except Exception:  # noqa: BLE001 - one failing stopper must not keep the others from running
            pass
    with _lock:
        dirs = list(_dirs)
        _dirs.clear()
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # started with process_group=0: pgid == pid
    except ProcessLookupError:
        pass


def _handler(signum: int, frame: FrameType | None) -> None:
    with _lock:
        if _spawning:
            _deferred.append(signum)  # re-raised by spawn() once its process is registered
            return
    stop_all()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL or previous is None:
        # Die the way the signal would have killed us, so the exit status tells.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    # SIG_IGN: the program chose to ignore it; the proxies are stopped anyway.


def install_signal_handlers() -> bool:
    """Install the cleanup handlers (once; main thread only). True if installed now or before.

    Called on every spawn; a program that first starts proxies from a worker
    thread should call it early from its main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return bool(_previous)
    with _lock:
        for sig in _SIGNALS:
            current = signal.getsignal(sig)
            if current is _handler:
                continue
            _previous[sig] = current
            signal.signal(sig, _handler)
    return True
