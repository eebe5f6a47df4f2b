"""One Envoy process: spawn, wait until LIVE, stop."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from . import _admin, _registry
from ._binaries import EnvoyBinary
from ._errors import ProxyStartError

DEFAULT_START_TIMEOUT_S = 20.0


def log_tail(path: Path, *, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:])


class EnvoyProcess:
    """A real `envoy` with `--disable-hot-restart --concurrency 1`, logging to a file.

    It runs in its own process group and is registered for cleanup at exit.
    """

    def __init__(
        self,
        binary: EnvoyBinary,
        *,
        bootstrap: Path,
        log: Path,
        admin_port: int,
        log_level: str = "info",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.bootstrap = bootstrap
        self.log = log
        self.admin_port = admin_port
        self.log_level = log_level
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        """Start the process and return at once (see `poll_ready` / `wait_ready`)."""
        if self.running:
            return
        argv = [
            str(self.binary.path), "-c", str(self.bootstrap),
            "--disable-hot-restart",  # several envoys at once, and no /dev/shm files
            "--concurrency", "1",
            "--log-level", self.log_level,
            "--log-path", str(self.log),
            # Envoy buffers its log file for 10 s by default: too late for a log tail.
            "--file-flush-interval-msec", "250",
            *self.extra_args,
        ]
        with open(self.log, "ab") as out:  # early crashes print to stderr, before --log-path
            self._proc = _registry.spawn(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                process_group=0, close_fds=True,
            )

    def poll_ready(self) -> bool:
        """True once `/ready` answers 200 LIVE; raises ProxyStartError if Envoy exited."""
        if self._proc is None:
            raise ProxyStartError("envoy was never spawned")
        code = self._proc.poll()
        if code is not None:
            _registry.unregister(self._proc)
            raise ProxyStartError(
                f"envoy {self.binary.version} exited with {code} before it was ready "
                f"(log: {self.log})", log_tail=log_tail(self.log),
            )
        try:
            status, body = _admin.request(self.admin_port, "/ready", timeout=1.0)
        except OSError:
            return False
        return status == 200 and body.strip() == "LIVE"

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while not self.poll_ready():
            if time.monotonic() > deadline:
                self.stop()
                raise ProxyStartError(
                    f"envoy {self.binary.version} on admin port {self.admin_port} "
                    f"not LIVE after {timeout_s:.0f}s (log: {self.log})",
                    log_tail=log_tail(self.log),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, *, grace_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; returns the exit code (None if never run)."""
        if self._proc is None:
            return None
        _registry.terminate([self._proc], grace_s=grace_s)
        return self._proc.returncode


def wait_until(predicate, *, timeout_s: float = 5.0, interval_s: float = 0.02, what: str = ""):  # type: ignore[no-untyped-def]
    """Poll `predicate()` until it returns a truthy value, which is returned.

    Raises TimeoutError (naming `what`) after `timeout_s`.  Envoy applies xDS
    pushes, overload pressure and cert swaps asynchronously: tests poll, never sleep.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout_s}s: {what or predicate}")
        time.sleep(interval_s)
