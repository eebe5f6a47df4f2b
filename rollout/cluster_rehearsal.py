"""`meshlift rehearse --cluster`: the same upgrade on a local Kubernetes, through the real engine.

Everything runs on 127.0.0.1 and is gone afterwards:
- the pinned toolchain (built on first use, cached): kube-apiserver, etcd,
  controller-manager, scheduler, kwok nodes, the Pulumi CLI with its Python
  language host and Kubernetes provider, istiod of each release;
- Istio's own charts (istio/base, istio/istiod, istio/gateway) on a loopback Helm
  repository; istiod pods served by the real pilot-discovery of their release, so
  injection is Istio's own;
- two teams' Deployments, Services and Sidecars created before meshlift
  (`shop/web`, `payments/api`); every injected pod gets its revision's own
  pilot-agent starting a real Envoy with Istio's bootstrap, a workload certificate
  from istiod and xDS from istiod, behind a port-forward, with traffic through it
  (no container image runs: kwok plays the kubelets; see localcluster/sidecars.py);
- then `meshlift upgrade -s rehearsal --to 1.31.0` in a project directory of its
  own: the real Automation API, stack history and gates, exactly as on a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from localcluster.sidecars import TEAM_MANAGER  # the teams' own field manager, one spelling

FROM, TO = "1.30.3", "1.31.0"
FROM_REV, TO_REV = "1-30-3", "1-31-0"
STACK = "rehearsal"
TEAMS = (("shop", "web"), ("payments", "api"))
PROGRAM_PARTS = ("__main__.py", "meshmodel", "components", "rollout", "checks", "localmesh", "localcluster")

Say = Callable[[str], None]


def make_project(directory: Path, program_root: Path, python_prefix: Path) -> Path:
    """A Pulumi project running meshlift's program (linked), with its own stacks, state and PULUMI_HOME."""
    (directory / "stacks").mkdir(parents=True)
    for part in PROGRAM_PARTS:
        (directory / part).symlink_to(program_root / part)
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump({
        "name": "meshlift",
        "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(python_prefix)}},
        "stackConfigDir": "stacks",
    }, sort_keys=False))
    (directory / ".pulumi-home").mkdir()
    (directory / ".pulumi-state").mkdir()
    return directory


def project_environment(directory: Path, bin_dirs: list[str], python_prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(python_prefix / "bin"), *bin_dirs, env.get("PATH", "")])
    env.update({
        "PULUMI_HOME": str(directory / ".pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{directory / '.pulumi-state'}",
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "MESHLIFT_PROJECT_DIR": str(directory),
    })
    env.pop("KUBECONFIG", None)  # the stack names its cluster
    return env


def stack_config(kubeconfig: Path, context: str, chart_repository: str) -> dict[str, Any]:
    """The mesh before the upgrade: 1.30.3, tag `stable`, a gateway, two teams' namespaces in two waves.
    Its revisions leave out what the local sidecars' Envoy cannot load (LOCAL_REVISION_VALUES); the
    upgrade's target revision inherits those values."""
    from localcluster.sidecars import GATEWAY_PORT, LOCAL_REVISION_VALUES

    return {
        "kubernetes:kubeconfig": str(kubeconfig),
        "kubernetes:context": context,
        "meshlift:chartRepository": chart_repository,
        "meshlift:revisions": [{"version": FROM, "values": LOCAL_REVISION_VALUES}],
        "meshlift:defaultRevision": FROM_REV,
        "meshlift:tags": {"stable": FROM_REV},
        # Its Service carries the port the platform's Gateway listens on (localcluster.sidecars.gateway_resources).
        "meshlift:gateways": [{"name": "istio-ingressgateway", "namespace": "istio-ingress", "revision": "stable",
                               "replicas": 2, "service": {"type": "ClusterIP", "ports": [
                                   {"name": "status-port", "port": 15021, "targetPort": 15021},
                                   {"name": "http", "port": 80, "targetPort": GATEWAY_PORT}]}}],
        "meshlift:namespaces": [
            {"name": "shop", "revision": "stable", "wave": 1, "create": False,
             "workloads": [{"name": "web", "canary": True}]},
            {"name": "payments", "revision": "stable", "wave": 2, "create": False, "workloads": [{"name": "api"}]},
        ],
        # kwok marks a pod Ready at once, where a kubelet waits for istio-proxy's readiness probe: a rollout
        # here can end while a new pod's sidecar is still fetching its certificate and config (about 1-3 s).
        # The local stack lets a gate see that many failing samples before it fails; a fault lasts longer.
        "meshlift:gates": {"window": "10s", "interval": "1s", "consecutivePasses": 2, "minRequests": 1,
                           "failureLimit": 4},
    }


def team_deployment(namespace: str, name: str) -> dict[str, Any]:
    from localcluster.sidecars import APP_PORT

    container = {"name": name, "image": f"registry.example.com/{namespace}/{name}:1.0",
                 "ports": [{"name": "http", "containerPort": APP_PORT}]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, "team": namespace}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }


def team_service(namespace: str, name: str) -> dict[str, Any]:
    from localcluster.sidecars import APP_PORT

    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": APP_PORT}]}}


def create_teams(core: Any, apps: Any) -> None:
    """What runs before meshlift: each team's namespace, Deployment and Service, under the team's own field manager."""
    for namespace, app in TEAMS:
        core.create_namespace({"metadata": {"name": namespace}}, field_manager=TEAM_MANAGER)
        core.create_namespaced_service(namespace, team_service(namespace, app), field_manager=TEAM_MANAGER)
        apps.create_namespaced_deployment(namespace, team_deployment(namespace, app), field_manager=TEAM_MANAGER)


def restart_teams(apps: Any, custom: Any, restarted_at: str = "before-the-upgrade") -> None:
    """The teams join the mesh: their Istio Sidecar, then a restart as `kubectl rollout restart` does, so their new
    pods get injected. The Sidecar gives each proxy an inbound listener without iptables capture (there is none
    here; see localcluster/sidecars.py)."""
    from kubernetes.client.exceptions import ApiException

    from localcluster.sidecars import sidecar_resource

    for namespace, app in TEAMS:
        try:
            custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "sidecars",
                                                   sidecar_resource(namespace), field_manager=TEAM_MANAGER)
        except ApiException as error:
            if error.status != 409:
                raise
        apps.patch_namespaced_deployment(app, namespace, {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": restarted_at}}}}}, field_manager=TEAM_MANAGER)


def stand_ins(core: Any, custom: Any, built: Any, apps: Any, workdir: Path, *,
              on_start: Callable[[Any], None] | None = None, more_namespaces: tuple[str, ...] = ()) -> Any:
    """Istio sidecars for the injected pods of the teams' and the gateway's namespaces (and `more_namespaces`):
    each revision's own pilot-agent, with Envoy 1.39.3 standing in for 1.30.3's istio-proxy and 1.40.0 for
    1.31.0's."""
    import localmesh as lm
    from localcluster.sidecars import IstioSidecars, releases

    agents, bootstraps = releases(built, {FROM_REV: FROM, TO_REV: TO})
    return IstioSidecars(core_v1=core, custom=custom, agent_for_revision=agents, bootstrap_for_revision=bootstraps,
                         envoy_for_revision={FROM_REV: lm.stable_envoy(), TO_REV: lm.target_envoy()},
                         apps=apps, workdir=workdir,
                         namespaces=(*(namespace for namespace, _ in TEAMS), "istio-ingress", *more_namespaces),
                         on_start=on_start)


def _wait(probe: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached in {timeout:.0f} s")


def rehearse_on_cluster(*, fault: str, program_root: Path, say: Say, extra_args: list[str] | None = None) -> int:
    """Run the rehearsal; returns `meshlift upgrade`'s exit code (0 promoted, 1 rolled back, ...)."""
    import localmesh as lm
    from localcluster import charts, toolchain
    from localcluster.cluster import LocalCluster
    from checks.kube import injected_revision
    from localcluster.istiod import IstiodRunner
    from localcluster.sidecars import SIDECAR_FAULTS

    if fault not in SIDECAR_FAULTS:
        say(f"--fault {fault}: not a fault the cluster rehearsal's Istio sidecars can suffer for real; "
            f"choose one of: {', '.join(SIDECAR_FAULTS)}")
        return 2

    built = toolchain.ensure(progress=say)
    python_prefix = Path(sys.prefix)
    with tempfile.TemporaryDirectory(prefix="meshlift-rehearse-cluster-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(name="rehearsal", index=7, workdir=root / "kwok", toolchain=built)
        with charts.serve(root / "charts") as repository:
            say(f"charts: {', '.join(repository.describe())}")
            say("cluster: starting kube-apiserver, etcd, controller-manager, scheduler and kwok on 127.0.0.1")
            try:
                cluster.start()
                from kubernetes import client

                api = cluster.api_client()
                core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
                with IstiodRunner(core_v1=core, kubeconfig=cluster.kubeconfig, context=cluster.context, toolchain=built,
                                  workdir=root / "istiod"), lm.Upstream(name="apps") as upstream:
                    create_teams(core, apps)
                    say("teams: shop/web and payments/api running (2 pods each), created before meshlift")

                    def on_start(sidecar: Any) -> None:
                        if "-canary-" in sidecar.pod:
                            SIDECAR_FAULTS[fault](sidecar)

                    with stand_ins(core, custom, built, upstream, root / "sidecars", on_start=on_start) as sidecars:
                        project = make_project(root / "project", program_root, python_prefix)
                        env = project_environment(project, [str(d) for d in built.bin_dirs], python_prefix)
                        (project / "stacks" / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(
                            {"config": stack_config(cluster.kubeconfig, cluster.context, repository.url)}))
                        run = lambda *cmd: subprocess.run(list(cmd), cwd=project, env=env,  # noqa: E731
                                                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
                        run("pulumi", "stack", "init", STACK, "--non-interactive")
                        say(f"pulumi up: the mesh before the upgrade (Istio {FROM}, real provider and charts)")
                        first = run("pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", STACK)
                        if first.returncode != 0:
                            say((first.stdout + first.stderr)[-3000:])
                            return 3
                        sidecars.route_gateway()
                        restart_teams(apps, custom)  # their pods injected by 1.30.3
                        _wait(lambda: sum(injected_revision(p) == FROM_REV
                                          for ns, _ in TEAMS for p in core.list_namespaced_pod(ns).items
                                          if p.status.phase == "Running") >= 4, "the teams' pods injected by 1.30.3")
                        try:
                            _wait(lambda: len(sidecars.by_pod()) >= 6, "Istio sidecars for the injected pods")
                        except TimeoutError as error:
                            say(f"{error}: " + ("; ".join(sidecars.errors[-3:]) or "no error reported"))
                            return 3
                        say(f"sidecars: {len(sidecars.by_pod())} pilot-agents running (Istio's bootstrap, istiod's "
                            "certificates and xDS)")
                        say(f"meshlift upgrade -s {STACK} --to {TO}")
                        upgrade = subprocess.run([str(python_prefix / "bin" / "meshlift"), "upgrade", "-s", STACK,
                                                  "--to", TO, *(extra_args or [])], cwd=project, env=env,
                                                 stdin=subprocess.DEVNULL)
                        return upgrade.returncode
            finally:
                say("cluster: stopping")
                cluster.stop()
