"""Istio's own `istioctl` (the pinned 1.30.3 build) reading a local cluster, as an operator would.

Always pointed at the cluster's own kubeconfig and context, never the user's. Its
JSON output is read, not its tables: `tag list -o json` and `analyze -o json`.

What `istioctl analyze` reads on a mesh of revisions: only the objects labelled for
the revision it analyzes (`--revision`, `default` unless given; objects without
`istio.io/rev` are read by every revision; Services, Namespaces, Nodes, Pods and
Secrets by all). Every injector here is labelled with its revision (istiod patches
the CA of no other), and each gateway Deployment with the revision injecting its
pods (components.gateway), so each analysis judges the gateways it injects, with
their injectors in view, and no other. `Istioctl.assert_reads` asserts that no
analysis, the default one or any revision's, raises a warning or an error.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.cluster import LocalCluster
from localcluster.toolchain import Toolchain

TIMEOUT_SECONDS = 120
# What `istioctl analyze` exits with when it reports messages at or above `--failure-threshold` (Error).
ANALYZE_FOUND_ISSUES = 79
DEFAULT_REVISION = "default"


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

    def assert_reads(self, *rows: TagRow) -> None:
        """`tag list` shows exactly `rows`; `analyze -A` raises nothing, by default and for each revision listed."""
        tags = self.tags()
        assert tags == set(rows), f"istioctl tag list: {sorted(tags, key=repr)}, expected {sorted(rows, key=repr)}"
        self.assert_analyzes_clean(*{row.revision for row in rows})

    def assert_analyzes_clean(self, *revisions: str) -> None:
        """`analyze -A` raises no warning and no error, by default and for each of `revisions`."""
        for revision in (DEFAULT_REVISION, *sorted(set(revisions) - {DEFAULT_REVISION})):
            messages = self.analysis(revision)
            raised = [m for m in messages if m["level"] in ("Warning", "Error")]
            assert raised == [], f"istioctl analyze -A --revision {revision}:\n" + "\n".join(
                f"{m['code']} {m['level']} {m.get('origin', '')}: {m['message']}" for m in messages)
