"""A meshlift Pulumi project in a temporary directory, driven by the real Pulumi CLI.

The project is this checkout's program (`__main__.py` and its packages, linked,
not copied) with its own `stacks/` directory, file backend and PULUMI_HOME, so a
test never touches the checkout's stacks or the user's ~/.pulumi. Every command
runs with the pinned toolchain first on PATH: the engine finds the language host
and the Kubernetes provider there (no plugin is downloaded), and the language
host runs the program with this virtualenv's Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster.toolchain import Toolchain
from rollout.cluster_rehearsal import make_project, project_environment

ROOT = Path(__file__).resolve().parents[2]
PULUMI_TIMEOUT_SECONDS = 900


def _record(label: str, command: tuple[str, ...], result: subprocess.CompletedProcess[str], seconds: float) -> None:
    """With MESHLIFT_E2E_RECORD=<dir>: keep each labelled command's output and time (docs transcripts, timings)."""
    directory = os.environ.get("MESHLIFT_E2E_RECORD")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "timings.jsonl", "a") as timings:
        timings.write(json.dumps({"label": label, "seconds": round(seconds, 1), "exit": result.returncode}) + "\n")
    name = "".join(c if c.isalnum() else "-" for c in label).strip("-")
    (path / f"{name}.txt").write_text(f"$ {' '.join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command))}\n"
                                       f"{result.stdout}{result.stderr}")


@dataclass
class Completed:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    directory: Path
    toolchain: Toolchain
    passphrase: str = ""
    timings: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path, toolchain: Toolchain) -> Project:
        make_project(directory, ROOT, Path(sys.prefix))
        return cls(directory=directory, toolchain=toolchain)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = project_environment(self.directory, [str(d) for d in self.toolchain.bin_dirs], Path(sys.prefix))
        env.update({"PULUMI_CONFIG_PASSPHRASE": self.passphrase, "NO_COLOR": "1", **(extra or {})})
        return env

    def write_stack(self, stack: str, config: dict[str, Any]) -> Path:
        path = self.directory / "stacks" / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        return path

    def stack_config(self, stack: str) -> dict[str, Any]:
        return yaml.safe_load((self.directory / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]

    def run(self, *command: str, env: dict[str, str] | None = None, timeout: float = PULUMI_TIMEOUT_SECONDS,
            label: str | None = None) -> Completed:
        started = time.monotonic()
        result = subprocess.run(list(command), cwd=self.directory, env=self.environment(env), capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        if label:
            self.timings.append((label, seconds))
            _record(label, command, result, seconds)
        return Completed(list(command), result.returncode, result.stdout, result.stderr, seconds)

    def pulumi(self, *args: str, stack: str | None = None, env: dict[str, str] | None = None,
               label: str | None = None, timeout: float = PULUMI_TIMEOUT_SECONDS) -> Completed:
        command = ["pulumi", *args, "--non-interactive"]
        if stack:
            command += ["--stack", stack]
        return self.run(*command, env=env, label=label, timeout=timeout)

    def init_stack(self, stack: str) -> None:
        result = self.pulumi("stack", "init", stack)
        assert result.returncode == 0, result.output

    def up(self, stack: str, *, env: dict[str, str] | None = None, label: str | None = None) -> Completed:
        return self.pulumi("up", "--yes", "--skip-preview", "--suppress-progress", stack=stack, env=env, label=label)

    def set_rollout(self, stack: str, **rollout: Any) -> None:
        config = self.stack_config(stack)
        config["meshlift:rollout"] = {**config.get("meshlift:rollout", {}), **rollout}
        self.write_stack(stack, config)

    def outputs(self, stack: str) -> dict[str, Any]:
        result = self.pulumi("stack", "output", "--json", stack=stack)
        assert result.returncode == 0, result.output
        return json.loads(result.stdout)

    def journal(self, stack: str, *, since: float = 0.0) -> list[dict[str, Any]]:
        """The events meshlift journaled for the stack (`.meshlift/<stack>/journal.jsonl`) from `since` (epoch s)."""
        path = self.directory / ".meshlift" / stack / "journal.jsonl"
        events = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if event.get("ts", 0) >= since:
                events.append(event)
        return events

    def meshlift(self, *args: str, env: dict[str, str] | None = None, timeout: float = PULUMI_TIMEOUT_SECONDS,
                 label: str | None = None) -> Completed:
        return self.run(str(Path(sys.prefix) / "bin" / "meshlift"), *args, env=env, timeout=timeout, label=label)
