"""The pinned toolchain: build each real part from the Go module proxy once, then reuse it.

Modelled on controller-runtime's setup-envtest: versions live in one file
(`toolchain.toml`), builds are cached per version outside the checkout, and one call
(`ensure()`, or `python -m localcluster toolchain`) builds what is missing and
returns where the binaries are. Tests ask it; nobody guesses paths.

A build goes to a temporary directory and is renamed into place only when every
binary of the tool exists, so an interrupted build never leaves a cache entry that
looks complete. A file lock serialises concurrent callers (two test runs, a test
run and `make rehearse --cluster`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PIN_FILE = PACKAGE_DIR / "toolchain.toml"
WRAPPERS_DIR = PACKAGE_DIR / "toolchain"
HEARTBEAT_SECONDS = 30.0

Progress = Callable[[str], None]


class ToolchainError(RuntimeError):
    """A tool could not be built or found; the message says which and why, with go's own words."""


@dataclass(frozen=True)
class ExtraFile:
    """A file taken from a module as it is served (e.g. the Python language host's executor script)."""

    module: str
    version: str
    path: str
    name: str


@dataclass(frozen=True)
class Tool:
    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    ldflags: tuple[str, ...] = ()
    binary_names: dict[str, str] = field(default_factory=dict)
    files: tuple[ExtraFile, ...] = ()
    release: str | None = None
    generate: str | None = None  # a named step writing files its build embeds (GENERATORS)

    @property
    def wrapper(self) -> Path:
        return WRAPPERS_DIR / self.name

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(self.binary_names.get(p, p.rsplit("/", 1)[-1]) for p in self.packages) + tuple(
            f.name for f in self.files
        )


@dataclass(frozen=True)
class ChartRelease:
    release: str  # what the stacks name, e.g. 1.31.0
    module: str
    version: str  # the Go module version that carries it
    line: str  # the Istio minor line the snapshot says it is (its VERSION file)


def load_pins(path: Path = PIN_FILE) -> tuple[dict[str, Tool], dict[str, ChartRelease]]:
    data = tomllib.loads(path.read_text())
    tools = {
        name: Tool(
            name=name,
            module=spec["module"],
            version=spec["version"],
            packages=tuple(spec["packages"]),
            ldflags=tuple(spec.get("ldflags", ())),
            binary_names=dict(spec.get("binary_names", {})),
            files=tuple(ExtraFile(**f) for f in spec.get("files", ())),
            release=spec.get("release"),
            generate=spec.get("generate"),
        )
        for name, spec in data["tools"].items()
    }
    istio = data["charts"]["istio"]
    charts = {
        release: ChartRelease(release=release, module=istio["module"], version=pin["version"], line=pin["line"])
        for release, pin in istio["releases"].items()
    }
    return tools, charts


def cache_root() -> Path:
    """`$MESHLIFT_CACHE_DIR`, else `$XDG_CACHE_HOME/meshlift`, else `~/.cache/meshlift`."""
    if explicit := os.environ.get("MESHLIFT_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshlift"


def go_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The wrappers' go.sum is the lock: never let a build rewrite it.
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            "the Go toolchain is not on PATH: the local cluster's parts (kube-apiserver, Pulumi CLI, "
            "provider, kwok) are built from the Go module proxy. Install Go 1.26 or newer."
        )
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def cache_key(tool: Tool, goversion: str) -> str:
    digest = hashlib.sha256()
    for part in (
        tool.name,
        tool.module,
        tool.version,
        (tool.wrapper / "go.mod").read_text(),
        (tool.wrapper / "go.sum").read_text(),
        json.dumps([tool.packages, tool.ldflags, tool.binary_names, [f.__dict__ for f in tool.files], tool.generate]),
        *(path.read_text() for path in sorted(tool.wrapper.glob("*.go"))),
        goversion,
        f"{sys.platform}-{os.uname().machine}",
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Toolchain:
    """Where every built tool's binaries are; `bin_dirs` in PATH order."""

    bin_dirs: tuple[Path, ...]

    def path(self, binary: str) -> Path:
        for directory in self.bin_dirs:
            candidate = directory / binary
            if candidate.exists():
                return candidate
        raise ToolchainError(f"{binary} is not part of the toolchain ({', '.join(map(str, self.bin_dirs))})")

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's) with the toolchain first on PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([*map(str, self.bin_dirs), env.get("PATH", "")])
        return env


def ensure(*, progress: Progress | None = None, tools: tuple[str, ...] | None = None) -> Toolchain:
    """Build the pinned tools that are not cached yet; return where all of them are."""
    say = progress or _stderr
    pins, _ = load_pins()
    selected = [pins[name] for name in (tools or tuple(pins))]
    goversion = go_version()
    root = cache_root() / "toolchain"
    root.mkdir(parents=True, exist_ok=True)
    dirs = []
    with _locked(root / ".lock"):
        for tool in selected:
            target = root / f"{tool.name}-{tool.version}-{cache_key(tool, goversion)}"
            if not all((target / "bin" / b).exists() for b in tool.binaries):
                _build(tool, target, say)
            dirs.append(target / "bin")
    return Toolchain(bin_dirs=tuple(dirs))


def _build(tool: Tool, target: Path, say: Progress) -> None:
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    started = time.monotonic()
    say(f"toolchain: building {tool.name} {tool.version} ({', '.join(tool.binaries)}) from the Go module proxy")
    try:
        # Builds run in a staged copy of the wrapper: nothing is ever written into the checkout.
        source = staging / "src"
        shutil.copytree(tool.wrapper, source)
        if tool.generate:
            GENERATORS[tool.generate](tool, source)
        _go_build(tool, source, staging / "bin", say, started)
        for extra in tool.files:
            source = module_dir(extra.module, extra.version) / extra.path
            destination = staging / "bin" / extra.name
            shutil.copyfile(source, destination)
            destination.chmod(0o755)
        missing = [b for b in tool.binaries if not (staging / "bin" / b).exists()]
        if missing:
            raise ToolchainError(f"building {tool.name} produced no {', '.join(missing)}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"toolchain: {tool.name} built in {time.monotonic() - started:.0f} s")


def _go_build(tool: Tool, source: Path, out: Path, say: Progress, started: float) -> None:
    ldflags = " ".join(["-s", "-w", *tool.ldflags])
    if not tool.binary_names:  # go names each binary after its package, in `out/`
        _run_go_build(tool, source, ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", f"{out}{os.sep}",
                                     *tool.packages], say, started)
        return
    # `go build -o FILE` takes one package: a renamed binary is one build each (the build cache shares the rest).
    for package, binary in zip(tool.packages, tool.binaries):
        _run_go_build(tool, source, ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(out / binary),
                                     package], say, started)


def _run_go_build(tool: Tool, source: Path, command: list[str], say: Progress, started: float) -> None:
    compiled = 0
    tail: list[str] = []
    process = subprocess.Popen(
        command, cwd=source, env=go_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            say(f"toolchain: {tool.name}: {compiled} packages compiled, {time.monotonic() - started:.0f} s")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            compiled += 1
            tail = [*tail[-39:], line.rstrip()]
        code = process.wait()
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise ToolchainError(f"go build of {tool.name} {tool.version} failed (exit {code}):\n" + "\n".join(tail))


def _pulumi_provider_embeds(tool: Tool, source: Path) -> None:
    """What the provider's `go generate` writes: its schema with the release version, its Terraform mapping."""
    source_dir = module_dir(tool.module, tool.version) / "cmd" / "pulumi-resource-kubernetes"
    schema = json.loads((source_dir / "schema.json").read_text())
    schema["version"] = tool.release or tool.version.lstrip("v")
    (source / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    mapping = json.loads((source_dir / "terraform-mapping.json").read_text())
    (source / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))


GENERATORS: dict[str, Callable[[Tool, Path], None]] = {"pulumi-provider-embeds": _pulumi_provider_embeds}


def module_dir(module: str, version: str) -> Path:
    """The extracted module from the module cache (downloaded from the proxy if needed, checksum-verified)."""
    cache_root().mkdir(parents=True, exist_ok=True)  # run outside any module: the wrapper's go.mod must not apply
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True, text=True, env=go_environment(), cwd=cache_root(),
    )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ToolchainError(f"go mod download {module}@{version} failed: {result.stderr.strip()}") from None
    if "Error" in info or "Dir" not in info:
        raise ToolchainError(f"go mod download {module}@{version} failed: {info.get('Error', result.stderr.strip())}")
    return Path(info["Dir"])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
