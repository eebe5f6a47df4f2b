"""Istio's own `istioctl` (the pinned 1.30.3 build) reading a local cluster, as an operator would.

Always pointed at the cluster's own kubeconfig and context, never the user's. Its
JSON output is read, not its tables: `tag list -o json` and `analyze -o json`.

What `istioctl analyze` cannot see on a mesh of revisions: it reads only the
objects labelled for the revision it analyzes (`--revision`, `default` unless
given; objects without `istio.io/rev` are read by every revision). Every injector
here is labelled with its revision (istiod patches the CA of no other), so each
analysis knows only its own revision's injectors, and warns (IST0146) about a
gateway Deployment (`image: auto`) that another revision injects; the default
analysis knows none. `Istioctl.assert_reads` asserts exactly that and nothing else.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.cluster import LocalCluster
from localcluster.toolchain import Toolchain

TIMEOUT_SECONDS = 120
# What `istioctl analyze` exits with when it reports messages at or above `--failure-threshold` (Error).
ANALYZE_FOUND_ISSUES = 79
DEFAULT_REVISION = "default"
IMAGE_AUTO_NOT_INJECTED = "IST0146"


@dataclass(frozen=True)
class TagRow:
    """One row of `istioctl tag list`; an empty `tag` is a revision no tag points at."""

    tag: str
    revision: str
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Istioctl:
    binary: Path
    kubeconfig: Path
    context: str

    @classmethod
    def of(cls, cluster: LocalCluster, built: Toolchain) -> Istioctl:
        return cls(built.path("istioctl"), cluster.kubeconfig, cluster.context)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), *args, "--kubeconfig", str(self.kubeconfig), "--context", self.context]
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)

    def tags(self) -> set[TagRow]:
        """`istioctl tag list`: every tag with its revision and the namespaces labelled with it."""
        listed = self.run("tag", "list", "-o", "json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        rows = json.loads(listed.stdout)
        return {TagRow(row["tag"], row["revision"], tuple(row.get("namespaces") or ())) for row in rows}

    def analysis(self, revision: str = DEFAULT_REVISION) -> list[dict[str, Any]]:
        """`istioctl analyze -A --revision <revision>`: every message, Info included, over all namespaces."""
        analyzed = self.run("analyze", "--all-namespaces", "--revision", revision, "--output", "json",
                            "--output-threshold", "Info")
        assert analyzed.returncode in (0, ANALYZE_FOUND_ISSUES), analyzed.stdout + analyzed.stderr
        return json.loads(analyzed.stdout) if analyzed.stdout.strip() else []

    def assert_reads(self, *rows: TagRow, gateways: Mapping[str, str]) -> None:
        """`tag list` shows exactly `rows`; `analyze -A`, by default and for each revision listed, warns of
        nothing but the gateway Deployments (`namespace/name` -> the revision injecting it) another
        revision injects."""
        tags = self.tags()
        assert tags == set(rows), f"istioctl tag list: {sorted(tags, key=repr)}, expected {sorted(rows, key=repr)}"
        for revision in (DEFAULT_REVISION, *sorted({row.revision for row in rows})):
            messages = self.analysis(revision)
            raised = {(m["code"], m.get("origin", "")) for m in messages if m["level"] in ("Warning", "Error")}
            expected = {(IMAGE_AUTO_NOT_INJECTED, f"Deployment {deployment}")
                        for deployment, injector in gateways.items() if injector != revision}
            assert raised == expected, f"istioctl analyze -A --revision {revision}:\n" + "\n".join(
                f"{m['code']} {m['level']} {m.get('origin', '')}: {m['message']}" for m in messages)
