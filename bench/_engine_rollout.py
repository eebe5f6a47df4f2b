"""The rollout shape on the real engine: every stage of an upgrade at 100 and 1,000 workloads.

One fresh local cluster per size; the teams' Deployments (one replica each) exist
before meshlift, in 10 or 50 namespaces and three waves, and 10 of them are
canaried. The stack walks install, canary, promote waves 1-3 and cleanup, one
`pulumi up` each, exactly as the orchestrator applies them (its gates stand down:
they are measured apart, below). After each wave the benchmark waits for the
controllers to roll the restarted Deployments (kwok plays the kubelets), and
reports that wait apart from the `up`. A `pulumi preview --expect-no-changes`
after the canary stage and after the last wave gives the steady-state cost; the
resources in the state are counted after every stage. Each `up` writes Pulumi's
event log, so the slowest resources of a stage are named.

The gate sample: after the canary stage (canary gate: the canaries against their
workloads) and after wave 1 (wave gate: the promoted third against the rest), the
gate's own discovery (rollout.platforms.kubernetes.KubeDiscovery: pods listed
through the API, a sample of each baseline workload, one port-forward per pod
through kube-apiserver and the kwok node), then a first sample and 15 later ones
on the gate's 1 s interval grid with the client the gate makes for that many
targets (later samples reuse answers a proxy's stats prove unchanged, each read
again at its own point of its age, so the window shows them read again). No
istio-proxy runs in these pods (no Envoy per pod at 1,000 workloads on two
cores): each pod's admin port is forwarded (a kwok PortForward) to one of a few
real Envoys, so every read crosses a real port-forward and reaches a real admin
interface, but several pods share one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ._engine_stack import STACK, say

CANARIES = 10
SHARED_ENVOYS = 16
ROLLOUT_DEADLINE_S = 1800
TEAMS_INJECTED = "teams' pods injected"
# `--event-log` needs PULUMI_DEBUG_COMMANDS; MESHLIFT_GATED stands the program's gate hook down, as the
# orchestrator does for the `up`s it has gated already.
UP_ENV = {"PULUMI_DEBUG_COMMANDS": "true", "MESHLIFT_GATED": "1"}


SPANNING = ("pulumi:pulumi:Stack", "meshlift:index:")


def slowest_resources(event_log: Path, top: int = 3) -> list[tuple[str, float]]:
    """The resources that took longest from their step's start to its outputs, from Pulumi's event log."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for line in event_log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for kind in ("resourcePreEvent", "resOutputsEvent"):
            if kind in event:
                metadata = event[kind].get("metadata") or {}
                urn = metadata.get("urn", "")
                # The stack and meshlift's components span their children: only the objects themselves count.
                if metadata.get("op") in (None, "same", "read") or metadata.get("type", "").startswith(SPANNING):
                    continue
                if kind == "resourcePreEvent":
                    started[urn] = event.get("timestamp", 0)
                elif urn in started:
                    spent[urn] = event.get("timestamp", 0) - started[urn]
    return sorted(((urn.rsplit("::", 1)[-1], seconds) for urn, seconds in spent.items()),
                  key=lambda item: -item[1])[:top]


def wait_for_rollouts(apps: Any, namespaces: list[str]) -> float:
    """Seconds until every Deployment of `namespaces` runs its newest template, all replicas available."""
    started = time.monotonic()
    while True:
        pending = 0
        for namespace in namespaces:
            for d in apps.list_namespaced_deployment(namespace, _request_timeout=60).items:
                status, want = d.status, d.spec.replicas or 0
                if ((status.observed_generation or 0) < d.metadata.generation
                        or (status.updated_replicas or 0) < want or (status.available_replicas or 0) < want
                        or (status.replicas or 0) > want):
                    pending += 1
        if not pending:
            return time.monotonic() - started
        if time.monotonic() - started > ROLLOUT_DEADLINE_S:
            raise RuntimeError(f"{pending} Deployments still rolling after {ROLLOUT_DEADLINE_S} s")
        time.sleep(2)


def restart_teams(apps: Any, namespaces: list[str]) -> float:
    """Restart every team Deployment as its owner would (`kubectl rollout restart`); seconds until rolled."""
    from rollout.cluster_rehearsal import TEAM_MANAGER

    stamp = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}}}
    started = time.monotonic()
    for namespace in namespaces:
        for d in apps.list_namespaced_deployment(namespace, _request_timeout=60).items:
            apps.patch_namespaced_deployment(d.metadata.name, namespace, stamp, field_manager=TEAM_MANAGER)
    return time.monotonic() - started + wait_for_rollouts(apps, namespaces)


def forward_every_pod(core: Any, custom: Any, namespaces: list[str], envoys: list[Any]) -> int:
    """A kwok PortForward per pod of `namespaces`: its admin port 15000 to one of the shared Envoys."""
    from localcluster.portforward import forward_pod

    count = 0
    for namespace in namespaces:
        for pod in core.list_namespaced_pod(namespace, _request_timeout=60).items:
            envoy = envoys[count % len(envoys)]
            forward_pod(custom, namespace, pod.metadata.name, {15000: envoy.admin_port})
            count += 1
    return count


def gate_selectors(config: dict[str, Any], scope: Any) -> tuple[Any, list[Any]]:
    """The stack's gate settings, and the pods the gate of `scope` selects (as the orchestrator asks)."""
    from meshmodel.plan import plan_for
    from meshmodel.spec_check import load_spec
    from rollout.platforms.scope import selectors_for

    spec = load_spec(config)
    return spec.gates, selectors_for(plan_for(spec), scope.sampling(spec.gates))


def gate_sample(config: dict[str, Any], cluster: Any, scope: Any) -> dict[str, Any]:
    """The gate's discovery and two samples over `scope` of the stack's plan, through real port-forwards."""
    from bench.gatescale import gate_window
    from rollout.platforms.kubernetes import KubeDiscovery

    settings, selectors = gate_selectors(config, scope)
    discovery = KubeDiscovery(kubeconfig=str(cluster.kubeconfig), context=cluster.context)
    try:
        started = time.monotonic()
        targets = discovery(selectors)
        discovered = time.monotonic() - started
        canary = [t for t in targets if t.role == "canary"]
        baseline = [t for t in targets if t.role == "baseline"]
        samples = asyncio.run(gate_window(canary, baseline, settings, later=GATE_LATER_SAMPLES))
    finally:
        discovery.close()
    return {"scope": scope.label, "selectors": len(selectors), "pods read": len(targets),
            "pods in scope": sum(s.found or 0 for s in discovery.sampled),
            "workloads left out": sum(1 for s in discovery.sampled if s.found is None), "discovery_s": discovered,
            "first_s": samples["first_s"], "steady_s": samples["steady_s"], "steady_max_s": samples["steady_max_s"],
            "later_samples": samples["later_samples"], "interval_s": settings.interval,
            "errors": samples["errors"], "error_kinds": samples["error_kinds"]}


def measure_rollout(workloads: int, built: Any, chart_repository: str, root: Path, *, cluster_index: int,
                    nodes: int) -> dict[str, Any]:
    """Every stage of an upgrade at `workloads` on a fresh cluster: up, waits, previews, resources, gate samples."""
    from kubernetes import client

    from bench._engine_stack import create_workloads, engine_config, run_pulumi
    from localcluster.cluster import LocalCluster
    from localcluster.istiod import IstiodRunner
    from rollout.platforms.base import GateScope
    from tests.e2e.project import Project

    figures: dict[str, Any] = {"workloads": workloads, "stages": {}, "slowest": {}, "gates": {}}
    cluster = LocalCluster(name=f"roll{workloads}", index=cluster_index, workdir=root / "kwok", toolchain=built,
                           nodes=nodes)
    cluster.start()
    try:
        api = cluster.api_client()
        core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        with IstiodRunner(core_v1=core, kubeconfig=cluster.kubeconfig, context=cluster.context, toolchain=built,
                          workdir=root / "istiod"):
            config = engine_config(workloads, cluster, chart_repository, canaries=CANARIES)
            namespaces = [n["name"] for n in config["meshlift:namespaces"]]
            figures["namespaces"] = len(namespaces)
            create_workloads(core, apps, config)
            # A lived-in cluster: the teams' pods run before meshlift does. Left creating, the
            # controller-manager (20 writes a second by default) would still be making 1,000
            # ReplicaSets and pods while istiod's Deployment waits in the same queue.
            say(f"{workloads} workloads: waiting for the teams' Deployments to be available")
            figures["teams settled_s"] = wait_for_rollouts(apps, namespaces)
            project = Project.create(root / "project", built)
            project.write_stack(STACK, config)
            run_pulumi(project, "stack", "init")
            rollout = config["meshlift:rollout"]
            waves = sorted({n["wave"] for n in config["meshlift:namespaces"]})
            stages = [("install", {"stage": "install"}), ("canary", {"stage": "canary"}),
                      *((f"wave {n}", {"stage": "promote", "promotedWaves": n}) for n in waves),
                      ("cleanup", {"stage": "cleanup", "promotedWaves": len(waves)})]
            for label, stage in stages:
                config["meshlift:rollout"] = {"from": rollout["from"], "to": rollout["to"], **stage}
                project.write_stack(STACK, config)
                log = root / f"events-{label.replace(' ', '')}.jsonl"
                say(f"{workloads} workloads: pulumi up ({label})")
                up = run_pulumi(project, "up", "--yes", "--skip-preview", "--suppress-progress", "--event-log", str(log),
                             env=UP_ENV)
                entry: dict[str, Any] = {"up": up.seconds}
                figures["slowest"][label] = slowest_resources(log)
                if label == "install":
                    # A mesh that already runs Istio: the teams' pods carry the stable revision's sidecar.
                    entry[TEAMS_INJECTED] = restart_teams(apps, namespaces)
                if label.startswith("wave"):
                    wave = int(label.split()[1])
                    rolled = [n["name"] for n in config["meshlift:namespaces"] if n["wave"] == wave]
                    entry["rollouts waited"] = wait_for_rollouts(apps, rolled)
                exported = json.loads(run_pulumi(project, "stack", "export").stdout)
                resources = exported["deployment"].get("resources") or []
                entry["resources"] = len(resources)
                entry["resource types"] = dict(Counter(r["type"] for r in resources).most_common(4))
                if label in ("canary", f"wave {len(waves)}"):
                    entry["preview, no changes"] = run_pulumi(
                        project, "preview", "--expect-no-changes", "--suppress-progress").seconds
                if label in ("canary", "wave 1"):
                    scope = GateScope("canary") if label == "canary" else GateScope("wave", (1,))
                    figures["gates"][label] = _gate_through_forwards(core, custom, config, cluster, scope)
                figures["stages"][label] = entry
            figures["pods"] = len(core.list_pod_for_all_namespaces(_request_timeout=60).items)
    finally:
        cluster.stop()
    return figures


def _gate_through_forwards(core: Any, custom: Any, config: dict[str, Any], cluster: Any, scope: Any
                           ) -> dict[str, Any]:
    import localmesh as lm

    namespaces = sorted({selector.namespace for selector in gate_selectors(config, scope)[1]})
    binary = lm.target_envoy()
    with lm.Upstream(name="rollout-gate") as upstream:
        envoys = []
        for i in range(SHARED_ENVOYS):
            spec = lm.ProxySpec(binary=binary, name=f"shared{i}", revision="stable", xds="static")
            envoys.append(lm.Proxy(spec, upstream=upstream.endpoint(spec.name)))
        lm.start_proxies(envoys, timeout_s=120)
        try:
            started = time.monotonic()
            forwarded = forward_every_pod(core, custom, namespaces, envoys)
            say(f"{forwarded} pods forwarded to {len(envoys)} Envoys in {time.monotonic() - started:.0f} s")
            return gate_sample(config, cluster, scope)
        finally:
            lm.stop_proxies(envoys)


# Later samples of a gate window measured, on the gate's interval grid: more than the longest
# age a reused admin answer has (checks.observe), so the ones read again are among them.
GATE_LATER_SAMPLES = 15
STAGE_UP_LIMIT_S = 60.0
PREVIEW_LIMIT_S = 20.0
GROWTH_LIMIT = 3.0
INSTALL_GROWTH_LIMIT = 1.5


def _later(gate: dict[str, Any]) -> str:
    """The later samples' median and slowest (runs before the window was measured took one)."""
    if "steady_max_s" not in gate:
        return f"{gate['steady_s']:.2f} s (one sample)"
    return f"{gate['steady_s']:.2f} / {gate['steady_max_s']:.2f} s of {gate['later_samples']}"


def report(results: dict[int, dict[str, Any]]) -> tuple[list[Any], list[Any], list[str]]:
    """Tables, targets and notes of the rollout shape (sizes as measured; targets need 100 and 1,000)."""
    from ._result import Table, TargetCheck

    sizes = sorted(results)
    stages = list(results[sizes[-1]]["stages"])
    both = len(sizes) > 1
    small, big = (results[sizes[0]], results[sizes[-1]])

    def ratio(a: float, b: float) -> str:
        return f"×{b / a:.1f}" if a else "–"

    rows = []
    for stage in stages:
        row = [stage, *(f"{results[n]['stages'][stage]['up']:.1f} s" for n in sizes)]
        if both:
            row.append(ratio(small["stages"][stage]["up"], big["stages"][stage]["up"]))
        row += [*(f"{results[n]['stages'][stage]['resources']:,}" for n in sizes),
                *(f"{results[n]['stages'][stage].get('rollouts waited', 0):.0f} s" for n in sizes)]
        rows.append(row)
    for stage in [s for s in stages if "preview, no changes" in big["stages"][s]]:
        row = [f"preview with nothing to change, after {stage}",
               *(f"{results[n]['stages'][stage]['preview, no changes']:.1f} s" for n in sizes)]
        if both:
            row.append(ratio(small["stages"][stage]["preview, no changes"], big["stages"][stage]["preview, no changes"]))
        rows.append(row + [""] * (2 * len(sizes)))
    headers = ["stage", *(f"`pulumi up`, {n:,} workloads" for n in sizes), *(["growth"] if both else []),
               *(f"resources, {n:,}" for n in sizes), *(f"rollouts waited, {n:,}" for n in sizes)]
    waves = sum(1 for stage in stages if stage.startswith("wave"))
    tables = [Table(f"An upgrade's stages on the real engine ({CANARIES} canaries, "
                    f"{', '.join(str(results[n]['namespaces']) for n in sizes)} namespaces, {waves} waves)",
                    headers, rows)]
    tables.append(Table(f"The slowest resources of each stage at {big['workloads']:,} workloads (Pulumi's event log)",
                        ["stage", "resources (seconds from step start to outputs)"],
                        [[stage, ", ".join(f"{name} {seconds:.0f} s" for name, seconds in big["slowest"][stage])]
                         for stage in stages]))
    gate_rows = []
    for n in sizes:
        for label, g in results[n]["gates"].items():
            gate_rows.append([f"{n:,}", g["scope"], f"{g['pods in scope']:,}",
                              f"{g.get('workloads left out', 0):,}", f"{g['pods read']:,}",
                              f"{g['discovery_s']:.2f} s", f"{g['first_s']:.2f} s", _later(g),
                              f"{g['interval_s']:.0f} s", str(g["errors"])])
    tables.append(Table("A gate sample through real port-forwards (kube-apiserver, kwok node, real Envoy admin)",
                        ["workloads", "gate", "pods selected", "baseline workloads left out", "pods read",
                         "discovery and forwards",
                         "first sample", "later samples (median / slowest)", "interval", "read errors"], gate_rows))
    targets = []
    if both:
        for stage in stages:
            seconds = big["stages"][stage]["up"]
            growth = seconds / small["stages"][stage]["up"]
            limit = INSTALL_GROWTH_LIMIT if stage == "install" else GROWTH_LIMIT
            targets.append(TargetCheck(f"{stage}: `pulumi up` ≤ {STAGE_UP_LIMIT_S:.0f} s at {big['workloads']:,}",
                                       f"{seconds:.1f} s", seconds <= STAGE_UP_LIMIT_S))
            targets.append(TargetCheck(f"{stage}: t({big['workloads']:,})/t({small['workloads']:,}) ≤ {limit}",
                                       f"×{growth:.1f}", growth <= limit))
        for stage in [s for s in stages if "preview, no changes" in big["stages"][s]]:
            seconds = big["stages"][stage]["preview, no changes"]
            targets.append(TargetCheck(f"preview with nothing to change after {stage} ≤ {PREVIEW_LIMIT_S:.0f} s",
                                       f"{seconds:.1f} s", seconds <= PREVIEW_LIMIT_S))
        most = max(s["resources"] for s in big["stages"].values())
        fewest = max(s["resources"] for s in small["stages"].values())
        targets.append(TargetCheck(
            f"resources grow with namespaces (×{big['namespaces'] / small['namespaces']:.0f}), "
            f"not workloads (×{big['workloads'] / small['workloads']:.0f})",
            f"{fewest:,} → {most:,} (×{most / fewest:.1f})", most / fewest <= big["namespaces"] / small["namespaces"]))
        for label, g in big["gates"].items():
            slowest = g.get("steady_max_s", g["steady_s"])
            targets.append(TargetCheck(f"{g['scope']} gate: every later sample at {big['workloads']:,} workloads "
                                       f"inside its {g['interval_s']:.0f} s interval", f"{_later(g)} later, "
                                       f"{g['first_s']:.2f} s first", slowest <= g["interval_s"]))
    notes = [f"{n:,} workloads: {results[n]['pods']:,} pods at the end; the teams' Deployments were available "
             f"{results[n].get('teams settled_s', 0):.0f} s after they were created, before install; their pods were "
             f"restarted onto the stable revision after install in "
             f"{results[n]['stages']['install'].get(TEAMS_INJECTED, 0):.0f} s (neither is part of any stage)."
             for n in sizes]
    return tables, targets, notes
