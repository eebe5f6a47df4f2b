"""Benchmark 5: the real engine — every stage of an upgrade at 100 and 1,000 workloads, the all-canary case, a whole upgrade.

Everything is the real path, on a local cluster (localcluster/): the pinned Pulumi
CLI, its Python language host and the Kubernetes provider against kube-apiserver,
etcd, controller-manager, scheduler and kwok nodes, Istio's own charts, and istiod
run as the real pilot-discovery per istiod pod (so every new pod is injected by
Istio's injector). No container image runs: kwok plays the kubelets.

The rollout shape (bench/_engine_rollout.py): 100 and 1,000 workloads in 10 and 50
namespaces, 10 canaries, 3 waves; each stage's `pulumi up`, the previews with
nothing to change, the resources in the state, the slowest resources of each
stage, and the gate's sample through real port-forwards.

Every workload canaried (the heaviest canary stage): per size, on a fresh cluster,
the teams' Deployments exist before meshlift (one replica each); `pulumi up`
installs the mesh with the inventory recorded; at the canary stage every workload
is read and cloned (one canary replica each), so `pulumi preview` and `pulumi up`
there are where the workload count weighs. A preview right after shows the
steady-state cost. The program alone under mocks (benchmark 4's worker, the same
workloads) tells the program's share.

Last, `meshlift rehearse --cluster` runs a whole upgrade (two teams, gates on real
Istio sidecars): each stage's `pulumi up` as Pulumi reports it, and the upgrade's total.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._result import Section, Table, TargetCheck
from ._engine_stack import PULUMI_TIMEOUT_S, STACK, create_workloads, engine_config, nodes_for, run_pulumi, say

ROOT = Path(__file__).resolve().parents[1]
# Past the e2e suite's clusters (0-3) and the cluster rehearsal's (7): addresses never overlap.
CLUSTER_INDEX = 10







def measure_size(workloads: int, built: Any, chart_repository: str, root: Path) -> dict[str, Any]:
    """One size on a fresh cluster: seconds of each step, resources in the stack, pods created."""
    from kubernetes import client

    from localcluster.cluster import LocalCluster
    from localcluster.istiod import IstiodRunner
    from tests.e2e.project import Project

    figures: dict[str, Any] = {"workloads": workloads}
    cluster = LocalCluster(name=f"bench{workloads}", index=CLUSTER_INDEX, workdir=root / "kwok", toolchain=built,
                           nodes=nodes_for(workloads))
    started = time.monotonic()
    cluster.start()
    figures["cluster start"] = time.monotonic() - started
    try:
        api = cluster.api_client()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        with IstiodRunner(core_v1=core, kubeconfig=cluster.kubeconfig, context=cluster.context, toolchain=built,
                          workdir=root / "istiod"):
            config = engine_config(workloads, cluster, chart_repository)
            started = time.monotonic()
            create_workloads(core, apps, config)
            figures["deployments created"] = time.monotonic() - started
            # Installed into a cluster whose teams' pods already run, not one still creating them.
            from ._engine_rollout import wait_for_rollouts

            figures["teams settled"] = wait_for_rollouts(apps, [n["name"] for n in config["meshlift:namespaces"]])
            project = Project.create(root / "project", built)
            project.write_stack(STACK, config)
            run_pulumi(project, "stack", "init")
            up = ("up", "--yes", "--skip-preview", "--suppress-progress")
            say(f"{workloads} workloads: pulumi up (install)")
            figures["install: up"] = run_pulumi(project, *up).seconds
            config["meshlift:rollout"]["stage"] = "canary"
            project.write_stack(STACK, config)
            say(f"{workloads} workloads: pulumi preview, pulumi up (canary)")
            figures["canary: preview"] = run_pulumi(project, "preview", "--suppress-progress").seconds
            figures["canary: up"] = run_pulumi(project, *up).seconds
            figures["canary: preview, no changes"] = run_pulumi(
                project, "preview", "--expect-no-changes", "--suppress-progress").seconds
            exported = json.loads(run_pulumi(project, "stack", "export").stdout)
            figures["resources"] = len(exported["deployment"].get("resources") or [])
            figures["pods"] = len(core.list_pod_for_all_namespaces(_request_timeout=60).items)
    finally:
        cluster.stop()
    return figures


STAGE_LINE = re.compile(r"^phase (?:\S+ -> (\S+)|(\S+), next wave)")  # a phase, or the next wave of Promoting
DURATION = re.compile(r"Duration: (?:(\d+)m)?(\d+)s")
TOTAL = re.compile(r"promoted: .*\((\d+(?:\.\d+)?)s\)\s*$")


def parse_upgrade(transcript: str) -> dict[str, Any]:
    """Each phase's `pulumi up` duration as Pulumi reports it, and the whole upgrade's, from meshlift's output."""
    stages: dict[str, float] = {}
    phase, waves, total = None, 0, None
    for line in transcript.splitlines():
        if match := STAGE_LINE.match(line.strip()):
            phase = match.group(1) or match.group(2)
            if phase == "Promoting":
                waves += 1
                phase = f"Promoting wave {waves}"
        elif (match := DURATION.search(line)) and phase:
            stages[phase] = stages.get(phase, 0) + int(match.group(1) or 0) * 60 + int(match.group(2))
        elif match := TOTAL.search(line):
            total = float(match.group(1))
    return {"stages": stages, "total": total}


def whole_upgrade() -> dict[str, Any]:
    """`meshlift rehearse --cluster`: the wall time, and what meshlift reports of the upgrade inside it."""
    started = time.monotonic()
    result = subprocess.run([str(Path(sys.prefix) / "bin" / "meshlift"), "rehearse", "--cluster"], cwd=ROOT,
                            capture_output=True, text=True, timeout=PULUMI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"meshlift rehearse --cluster exited {result.returncode}:\n{result.stdout[-4000:]}"
                           f"{result.stderr[-2000:]}")
    parsed = parse_upgrade(result.stdout)
    if parsed["total"] is None or not parsed["stages"]:
        raise RuntimeError(f"no upgrade timings in meshlift's output:\n{result.stdout[-4000:]}")
    return {**parsed, "wall": wall}


ROLLOUT_SIZES = [100, 1000]
# Every workload cloned: two resources per workload stay in that stage by design, so its
# cost still grows with the mesh; measured where a run stays within minutes.
ALL_CANARY_SIZES = [100, 300]


def run(*, quick: bool) -> Section:
    from localcluster import charts, toolchain

    from . import _engine_rollout
    from .program import measure_program

    sizes = [3] if quick else ALL_CANARY_SIZES
    rollout_sizes = [12] if quick else ROLLOUT_SIZES
    built = toolchain.ensure(progress=say)
    results: dict[int, dict[str, Any]] = {}
    rollouts: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="meshlift-bench-engine-") as tmp:
        with charts.serve(Path(tmp) / "charts") as repository:
            for workloads in rollout_sizes:
                rollouts[workloads] = _engine_rollout.measure_rollout(
                    workloads, built, repository.url, Path(tmp) / f"rollout{workloads}",
                    cluster_index=CLUSTER_INDEX, nodes=nodes_for(workloads))
            for workloads in sizes:
                results[workloads] = measure_size(workloads, built, repository.url, Path(tmp) / f"n{workloads}")
    for workloads, figures in results.items():
        figures["program under mocks"] = measure_program(workloads, 1)["times"][0]
    upgrade = None if quick else whole_upgrade()
    rollout_tables, rollout_targets, rollout_notes = _engine_rollout.report(rollouts)

    steps = ["install: up", "canary: preview", "canary: up", "canary: preview, no changes"]
    rows = [[f"{n:,}", f"{f['resources']:,}", f"{f['pods']:,}", *(f"{f[s]:.1f} s" for s in steps),
             f"{f['program under mocks']:.1f} s"] for n, f in results.items()]
    tables = [*rollout_tables, Table("Every workload canaried: the canary stage's pulumi preview and up",
                    ["workloads", "resources in the stack", "pods in the cluster", *steps,
                     "the program alone (mocks)"], rows)]
    data: dict[str, Any] = {str(n): f for n, f in results.items()}
    data["rollout"] = {str(n): f for n, f in rollouts.items()}
    targets = list(rollout_targets)
    if len(results) > 1:
        small, big = (results[n] for n in sorted(results))
        growth = {s: big[s] / small[s] for s in ("canary: preview", "canary: up")}
        workload_ratio = big["workloads"] / small["workloads"]
        resource_ratio = big["resources"] / small["resources"]
        data["growth"] = growth
        tables.append(Table(f"Growth from {small['workloads']:,} to {big['workloads']:,} workloads "
                            f"(resources ×{resource_ratio:.1f})",
                            ["step", "ratio", "program alone under mocks"],
                            [[s, f"×{r:.1f}", f"×{big['program under mocks'] / small['program under mocks']:.1f}"]
                             for s, r in growth.items()]))
        targets.append(TargetCheck(
            f"canary-stage pulumi up grows at most linearly ({workload_ratio:.0f}× workloads)",
            f"×{growth['canary: up']:.1f}", growth["canary: up"] <= workload_ratio * 1.2,
            "" if growth["canary: up"] <= workload_ratio * 1.2 else
            "the Pulumi CLI saves the whole stack state after every step on a file (DIY) backend, so each "
            "step costs more as the stack grows: most of its CPU in a profile (docs/performance.md); "
            "meshlift's own program is the 'program alone' column"))
    if upgrade:
        data["upgrade"] = upgrade
        tables.append(Table(
            "A whole `meshlift upgrade` on the real engine (`meshlift rehearse --cluster`: two teams, gates on real "
            "Envoys)", ["stage", "pulumi up (as Pulumi reports it)"],
            [[stage, f"{seconds:.0f} s"] for stage, seconds in upgrade["stages"].items()]
            + [["whole upgrade (meshlift's figure, gates and waits included)", f"{upgrade['total']:.1f} s"],
               ["whole rehearsal (toolchain cached, cluster start and the mesh's first install included)",
                f"{upgrade['wall']:.1f} s"]]))
    notes = list(rollout_notes)
    for n, f in results.items():
        engine_share = f["canary: preview"] - f["program under mocks"]
        notes.append(
            f"{n:,} workloads: the cluster started in {f['cluster start']:.1f} s and the teams' Deployments were "
            f"created in {f['deployments created']:.1f} s (not in the table). Of the canary preview, "
            f"{f['program under mocks']:.1f} s is the program itself and {max(0.0, engine_share):.1f} s the CLI, "
            f"engine and provider (diffs, reads of the live Deployments); the up adds "
            f"{f['canary: up'] - f['canary: preview']:.1f} s of creating and waiting for the canaries.")
    pins, _ = toolchain.load_pins()
    notes.append("Pinned parts (localcluster/toolchain.toml): " + ", ".join(
        f"{name} {tool.version}" for name, tool in pins.items()) + "; Pulumi's default parallelism.")
    return Section(
        name="engine",
        title="5. The real engine: pulumi preview and up, and a whole upgrade",
        method=[" ".join(paragraph.split()) for paragraph in (__doc__ or "").split("\n\n")[1:]],
        tables=tables,
        targets=targets,
        notes=notes,
        data=data,
        quick=quick,
    )

