"""`meshlift upgrade` on the real engine, from install to cleanup, gated by real Envoys.

The teams' workloads exist before meshlift (created through the API under their
own field manager, as kubectl would). Every pod Istio's real injector injected
gets its revision's own pilot-agent, which starts a real Envoy (1.30.3 pods: Envoy
1.39.3, 1.31.0 pods: Envoy 1.40.0) with Istio's bootstrap, a 24 h workload
certificate from that revision's istiod and xDS from it, behind a kwok PortForward
of port 15000, with traffic through it. meshlift's gates find those pods and reach
those proxies with the same discovery and port-forward code users run. At each stage
(before the upgrade, the canary waiting for approval, promoted, cleaned up) Istio's
own `istioctl tag list` shows exactly the stack's tags, and `istioctl analyze -A`
(by default and per revision) raises nothing, each gateway Deployment labelled with
the revision injecting it (tests/e2e/istioctl.py); a Helm upgrade of the gateway
keeps that label. The new revision's sidecars keep their SDS updates in their stats
(meshlift's proxyStatsMatcher), so a gate reuses their /certs between samples. A bad
canary is rolled back through the real stack history.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

import localmesh as lm
from checks import Status, Target, run_checks
from checks.kube import injected_revision
from checks.observe import Read
from components._restarts import FIELD_MANAGER as RESTART_MANAGER
from localcluster.sidecars import SIDECAR_FAULTS
from meshmodel.spec import GateSettings
from rollout.cluster_rehearsal import (
    TEAM_MANAGER,
    TEAMS,
    create_teams,
    restart_teams,
    stack_config,
    stand_ins,
    team_deployment,
    team_service,
)
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.istioctl import Istioctl, TagRow
from tests.e2e.kube import Kube, act_once, eventually
from tests.e2e.stacks import FROM_REV, TO, TO_REV

def injected_revisions(kube: Kube, namespace: str, app: str) -> set[str | None]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return {injected_revision(p) for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp}


# Each fault a canary's Istio sidecar suffers for real, and the checks that may catch it.
CANARY_FAULTS = {
    "5xx": {"upstream-success-rate", "canary-vs-baseline"},  # the app behind the canary answers 503
    "upstream-down": {"upstream-connect-failures", "upstream-success-rate", "canary-vs-baseline"},  # app gone
    "control-plane-down": {"control-plane-connected"},  # the canary's agent cut off from istiod
    "draining": {"proxy-not-draining", "proxy-ready"},  # the canary's Envoy told to fail health checks
}
current_fault = {"name": "none"}
GATEWAY_NAMESPACE, GATEWAY = "istio-ingress", "istio-ingressgateway"  # the stack's gateway release and Deployment
GATEWAY_MANAGER = "meshlift-gateway"  # components.gateway.FIELD_MANAGER


def faulty_canaries(sidecar) -> None:
    """A bad canary for real: the fault of the moment, on every canary pod's sidecar as it starts."""
    if "-canary-" in sidecar.pod:
        SIDECAR_FAULTS[current_fault["name"]](sidecar)


def _mesh(name, clusters, built_toolchain, istiod_runners, tmp_path_factory, on_start=None, more_namespaces=()):
    """A cluster whose teams run web (shop) and api (payments), with stand-in Envoys for injected pods
    (theirs, the gateway's and those of `more_namespaces`)."""
    cluster = cluster_with_istiod(name, clusters, built_toolchain, istiod_runners, tmp_path_factory)
    kube = Kube.of(cluster)
    create_teams(kube.core, kube.apps)
    with lm.Upstream(name="apps") as apps, stand_ins(
        kube.core, kube.custom, built_toolchain, apps, tmp_path_factory.mktemp("sidecars"), on_start=on_start,
        more_namespaces=tuple(more_namespaces),
    ) as proxies:
        yield cluster, kube, proxies


@pytest.fixture(scope="module")
def healthy_mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("upgrade", clusters, built_toolchain, istiod_runners, tmp_path_factory)


@pytest.fixture(scope="module")
def faulty_mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("rollback", clusters, built_toolchain, istiod_runners, tmp_path_factory, on_start=faulty_canaries)


def the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies, stack: str = "e2e") -> None:
    project.write_stack(stack, stack_config(cluster.kubeconfig, cluster.context, chart_repository.url))
    project.init_stack(stack)
    first = project.up(stack, label=f"pulumi up: the mesh before the upgrade ({stack})")
    assert first.returncode == 0, first.output

    proxies.route_gateway()  # the platform routes traffic through its ingress gateway
    restart_teams(kube.apps, kube.custom)  # their pods get the stable revision
    for namespace, app in TEAMS:
        eventually(lambda: injected_revisions(kube, namespace, app) == {FROM_REV}, timeout=120,
                   what=f"{namespace}/{app} injected by {FROM_REV}")
    eventually(lambda: len(proxies.by_pod()) >= 6, timeout=120, what="Istio sidecars for every injected pod")


def restart_istiod_once_canaries_run(kube: Kube, revision: str) -> threading.Thread:
    """A thread that restarts the revision's istiod Deployment as soon as a canary pod of shop runs."""
    def canary_running() -> bool:
        pods = kube.core.list_namespaced_pod("shop", label_selector="meshlift.io/track=canary").items
        return any(p.status.phase == "Running" for p in pods)

    return act_once(canary_running, lambda _: kube.apps.patch_namespaced_deployment(
        f"istiod-{revision}", "istio-system", {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "during-the-canary-gate"}}}}}), timeout=600, every=0.5)


def a_second_workload_in_wave_1_restarted_one_at_a_time(project, kube: Kube, stack: str = "e2e") -> None:
    """shop/cart beside shop/web, and `restarts.maxRolling: 1`: wave 1 is applied in two parts."""
    kube.core.create_namespaced_service("shop", team_service("shop", "cart"), field_manager=TEAM_MANAGER)
    kube.apps.create_namespaced_deployment("shop", team_deployment("shop", "cart"), field_manager=TEAM_MANAGER)
    eventually(lambda: injected_revisions(kube, "shop", "cart") == {FROM_REV}, timeout=120,
               what=f"shop/cart injected by {FROM_REV}")
    config = project.stack_config(stack)
    config["meshlift:restarts"] = {"maxRolling": 1}
    project.write_stack(stack, config)


def a_helm_upgrade_of_the_gateway_keeps_its_revision_label(project, kube: Kube, stack: str = "e2e") -> None:
    """The platform annotates its gateway Deployment (a chart value) with a plain `pulumi up`: Helm upgrades the
    release, the label patch has nothing to change, and Helm's three-way merge keeps the label it never rendered."""
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: FROM_REV}
    before = kube.helm_releases(GATEWAY_NAMESPACE)[GATEWAY]["version"]
    config = project.stack_config(stack)
    config["meshlift:gateways"][0].setdefault("values", {})["annotations"] = {"platform.example/owner": "edge"}
    project.write_stack(stack, config)
    up = project.up(stack, label="pulumi up: the gateway's Deployment annotated")
    assert up.returncode == 0, up.output
    assert "~ 1 updated" in up.output, up.output  # the release alone: the label patch was not applied again
    assert kube.helm_releases(GATEWAY_NAMESPACE)[GATEWAY]["version"] == before + 1
    deployment = kube.apps.read_namespaced_deployment(GATEWAY, GATEWAY_NAMESPACE)
    assert deployment.metadata.annotations["platform.example/owner"] == "edge"
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: FROM_REV}
    owned = kube.fields_of(GATEWAY_NAMESPACE, GATEWAY, GATEWAY_MANAGER)
    assert '"f:istio.io/rev"' in owned and '"f:spec"' not in owned, owned


def wave_events(project, stack: str = "e2e") -> list[dict]:
    lines = (project.directory / ".meshlift" / stack / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] in ("wave", "rollout") and e.get("status") != "progress"]


def upgrade_in_the_background(project, *args: str, label: str) -> tuple[threading.Thread, dict]:
    """`meshlift upgrade` in a thread (its result in `done["result"]`), so a test can look at the mesh meanwhile."""
    done: dict = {}
    thread = threading.Thread(target=lambda: done.update(result=project.meshlift("upgrade", *args, label=label)),
                              daemon=True)
    thread.start()
    return thread, done


def run_phase(project, stack: str) -> str | None:
    status = project.meshlift("status", "-s", stack, "--json")
    run = json.loads(status.stdout)["run"] if status.returncode == 0 else None
    return run["phase"] if run else None


def test_an_upgrade_runs_from_install_to_cleanup_on_the_real_engine(project, healthy_mesh, chart_repository,
                                                                   built_toolchain) -> None:
    cluster, kube, proxies = healthy_mesh
    istioctl = Istioctl.of(cluster, built_toolchain)
    the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies)
    a_helm_upgrade_of_the_gateway_keeps_its_revision_label(project, kube)
    a_second_workload_in_wave_1_restarted_one_at_a_time(project, kube)
    istioctl.assert_reads(TagRow("stable", FROM_REV, ("payments", "shop")))
    # A bare pod no wave restarts, injected by the old revision: cleanup must wait for it.
    kube.core.create_namespaced_pod("shop", {"metadata": {"name": "batch-once", "labels": {"app": "batch"}},
                                             "spec": {"containers": [{"name": "batch", "image": "example/batch:1"}]}},
                                    field_manager=TEAM_MANAGER)
    eventually(lambda: injected_revisions(kube, "shop", "batch") == {FROM_REV}, what="the batch pod injected")

    # While the canary gate reads the canaries, their istiod is restarted (`kubectl rollout restart`): the
    # sidecars reconnect to the new pods, and a healthy gate stays healthy.
    restarted = restart_istiod_once_canaries_run(kube, TO_REV)
    # The run waits for approval after the canary gate: Istio's own tools read the canary stage meanwhile.
    approval = ("--require-approval", "--approve-from", "promote")
    upgrading, done = upgrade_in_the_background(project, "-s", "e2e", "--to", TO, *approval,
                                                label="meshlift upgrade (cleanup refused)")
    eventually(lambda: run_phase(project, "e2e") == "WaitingApproval" or not upgrading.is_alive(), timeout=600,
               every=2, what="the canary waiting for approval")
    assert upgrading.is_alive(), done["result"].output[-4000:]
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: FROM_REV, f"{GATEWAY}-canary": TO_REV}
    istioctl.assert_reads(TagRow("stable", FROM_REV, ("payments", "shop")), TagRow("", TO_REV))
    approved = project.meshlift("promote", "-s", "e2e", "--yes")
    assert approved.returncode == 0, approved.output
    upgrading.join(timeout=600)
    refused = done["result"]
    restarted.join(timeout=5)
    assert restarted.done, "istiod was restarted during the canary gate"
    assert refused.returncode == 2, refused.output[-4000:]
    assert "Cleanup refused" in refused.output and "shop/batch-once" in refused.output
    # Promoted, both revisions still installed: the tag moved to the new one, the old one is a bare revision.
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: TO_REV}
    istioctl.assert_reads(TagRow("stable", TO_REV, ("payments", "shop")), TagRow("", FROM_REV))

    kube.core.delete_namespaced_pod("batch-once", "shop", grace_period_seconds=0)
    eventually(lambda: not kube.core.list_namespaced_pod("shop", label_selector="app=batch").items,
               what="the batch pod gone")
    upgrade = project.meshlift("upgrade", "-s", "e2e", "--to", TO, *approval, "--json",
                               label="meshlift upgrade (resumed at cleanup)")
    assert upgrade.returncode == 0, upgrade.output[-6000:]
    assert kube.deployment_revisions(GATEWAY_NAMESPACE) == {GATEWAY: TO_REV}
    istioctl.assert_reads(TagRow("stable", TO_REV, ("payments", "shop")))

    assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{TO_REV}"}
    tag = kube.mutating_webhooks()["istio-revision-tag-stable"]
    assert {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{TO_REV}"}
    validator = kube.validating_webhooks()["istiod-default-validator"]
    assert {w.client_config.service.name for w in validator.webhooks} == {f"istiod-{TO_REV}"}
    for namespace, app in (*TEAMS, ("shop", "cart")):
        assert injected_revisions(kube, namespace, app) == {TO_REV}
        deployment = kube.apps.read_namespaced_deployment(app, namespace)
        managers = {entry.manager: entry for entry in deployment.metadata.managed_fields}
        assert TEAM_MANAGER in managers, "the team still owns its workload"
        owned = json.dumps(managers[RESTART_MANAGER].fields_v1) if RESTART_MANAGER in managers else ""
        assert "meshlift.io/proxy-revision" in owned and "f:containers" not in owned
    assert not [d for d in kube.apps.list_namespaced_deployment("shop").items if d.metadata.name.endswith("-canary")]
    a_sidecar_of_meshlifts_revision_shows_its_sds_updates(proxies)
    # Wave 1 in two parts, each rolled out before the next (namespace, kind, name order: cart, then web).
    wave1 = [(e["event"], e["status"], e.get("part"), e.get("workloads") if e["event"] == "rollout" else None)
             for e in wave_events(project) if e["event"] == "rollout" or e["wave"] == 1][:7]
    assert wave1 == [("wave", "applied", 1, None), ("rollout", "waiting", None, ["Deployment shop/cart"]),
                     ("rollout", "done", None, ["Deployment shop/cart"]), ("wave", "restarted", 1, None),
                     ("wave", "applied", 2, None), ("rollout", "waiting", None, ["Deployment shop/web"]),
                     ("rollout", "done", None, ["Deployment shop/web"])], wave1


def a_sidecar_of_meshlifts_revision_shows_its_sds_updates(proxies) -> None:
    """meshlift's proxyStatsMatcher reaches the sidecar through pilot-agent: the SDS updates of the certificate
    istiod issued are in its stats, so a gate reuses its /certs between samples and re-reads it on a push."""
    def new_revisions_sidecars():
        return [s for s in proxies.by_pod().values() if s.namespace == "shop" and s.revision == TO_REV and s.running]

    sidecar = eventually(new_revisions_sidecars, timeout=120, what=f"a sidecar of shop on {TO_REV}")[0]
    stats = httpx.get(f"{sidecar.admin_url}/stats", params={"filter": r"^sds\.", "format": "json"}, timeout=10)
    updates = {e["name"]: e["value"] for e in stats.json()["stats"] if "value" in e}
    assert updates.get("sds.default.update_success", 0) >= 1 and updates.get("sds.ROOTCA.update_success", 0) >= 1, \
        updates

    async def two_samples():
        target = [Target(name=f"{sidecar.namespace}/{sidecar.pod}", admin_url=sidecar.admin_url, role="canary")]
        first = await run_checks(target, GateSettings(), only=["certificates-valid"])
        return first, await run_checks(target, GateSettings(), only=["certificates-valid"], previous=first)

    first, second = asyncio.run(two_samples())
    assert first.targets[0].result("certificates-valid").status is Status.PASS, first.targets[0].results
    assert Read.CERTS in second.history[second.targets[0].target][-1].carried


def test_each_bad_canary_is_rolled_back_through_the_stack_history(project, faulty_mesh, chart_repository) -> None:
    cluster, kube, proxies = faulty_mesh
    the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies)
    originals = {(ns, app): {p.metadata.uid for p in kube.core.list_namespaced_pod(ns, label_selector=f"app={app}").items}
                 for ns, app in TEAMS}

    for fault, catching in CANARY_FAULTS.items():  # one after the other, as an operator retries after a fix
        current_fault["name"] = fault
        upgrade = project.meshlift("upgrade", "-s", "e2e", "--to", TO, "--json",
                                   label=f"meshlift upgrade (canary fault {fault}, rolled back)")
        assert upgrade.returncode == 1, f"{fault}: " + upgrade.output[-4000:]
        document = json.loads(upgrade.stdout)
        assert document["phase"] == "RolledBack", fault
        failing = set(document["failure"]["checks"])
        assert failing & catching, f"{fault} was caught by {failing}, not by any of {catching}"
        assert document["failure"]["gate"] == "canary", fault

        # The last good update with one data-plane version was the install stage: the
        # rollback re-applied it (the new revision installed, nothing using it).
        history = json.loads(project.pulumi("stack", "history", "--json", stack="e2e").stdout)
        assert "rollback to update" in history[0]["message"] and history[0]["result"] == "succeeded"
        assert json.loads(history[0]["config"]["meshlift:rollout"]["value"])["stage"] == "install"
        assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{FROM_REV}", f"istiod-{TO_REV}"}
        assert not [d for d in kube.apps.list_namespaced_deployment("shop").items if d.metadata.name.endswith("-canary")]
        tag = kube.mutating_webhooks()["istio-revision-tag-stable"]
        assert {w.client_config.service.name for w in tag.webhooks} == {f"istiod-{FROM_REV}"}
        for (namespace, app), uids in originals.items():
            now = {p.metadata.uid for p in kube.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
                   if "-canary-" not in p.metadata.name}
            assert now == uids, f"{namespace}/{app} restarted ({fault})"
