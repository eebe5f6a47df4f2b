"""Taking over an Istio that was installed with Helm, the way a platform runs Istio's documented install.

Before meshlift: `istio-base`, an `istiod` without a revision and the `istio-ingress`
gateway, installed by the helm CLI from the same charts with the platform's values
(the gateway's HPA floored at 3 pods, its Service's cloud annotations and an extra
port; istiod's mesh config: outbound policy, access log, a tracing provider); the
team namespace `shop` labelled `istio-injection=enabled` and `payments` not in the
mesh, each with a Deployment already running (shop's pods injected by that istiod).

`meshlift upgrade` refuses while the stack does not state those values, naming each,
and so does a plain `pulumi up` of the same stack. With them stated, the stack
adopts the two releases it also declares (`meshlift:adopt`); the first `pulumi up`
imports them and upgrades them to the config, keeping every value, installs
meshlift's revision beside the unrevisioned istiod with its mesh config, and moves
both namespaces onto meshlift's tag.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml
from kubernetes import client

from checks.kube import injected_revision
from localcluster.cluster import LocalCluster
from rollout.cluster_rehearsal import TEAM_MANAGER, create_teams, restart_teams
from tests.e2e.conftest import cluster_with_istiod
from tests.e2e.helm_install import (
    PLATFORM_AUTOSCALING,
    PLATFORM_EXTRA_PORT,
    PLATFORM_MESH_CONFIG,
    PLATFORM_SERVICE_ANNOTATIONS,
    HelmCli,
    install_istio_as_a_platform,
)
from tests.e2e.istioctl import Istioctl
from tests.e2e.kube import Kube, eventually, injecting_webhooks
from tests.e2e.stacks import FROM, FROM_REV, TO, takeover_stack

STACK = "takeover"
TAG_INJECTOR = "istio-revision-tag-stable/rev.namespace.sidecar-injector.istio.io"
GATEWAY = ("istio-ingress", "istio-ingress")  # namespace, name of the release, Deployment, Service and HPA
# The gateway as the stack states what the platform installed (docs/takeover.md): the
# typed keys for replicas and the Service, `values` for the rest.
STATED_GATEWAY = {
    "replicas": 3,
    "service": {"type": "ClusterIP", "annotations": PLATFORM_SERVICE_ANNOTATIONS,
                "ports": [{"name": "status-port", "port": 15021}, {"name": "http2", "port": 80},
                          {"name": "https", "port": 443}, PLATFORM_EXTRA_PORT]},
    "values": {"autoscaling": PLATFORM_AUTOSCALING},
}


@pytest.fixture(scope="module")
def cluster(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    return cluster_with_istiod("takeover", clusters, built_toolchain, istiod_runners, tmp_path_factory)


def running_revisions(kube: Kube, namespace: str, selector: str) -> set[str | None]:
    return {injected_revision(p) for p in running_pods(kube, namespace, selector)}


def running_pods(kube: Kube, namespace: str, selector: str) -> list:
    return [p for p in kube.core.list_namespaced_pod(namespace, label_selector=selector).items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]


def mesh_of(kube: Kube, config_map: str) -> dict:
    """The mesh config istiod reads: the `mesh` key of its ConfigMap in istio-system."""
    return yaml.safe_load(kube.core.read_namespaced_config_map(config_map, "istio-system").data["mesh"])


def installed_releases(kube: Kube) -> dict[str, tuple[int, dict]]:
    """release -> (Helm revision, values given) of the platform's three releases, as Helm records them."""
    releases = {**kube.helm_releases("istio-system"), **kube.helm_releases(GATEWAY[0])}
    return {name: (releases[name]["version"], releases[name]["config"])
            for name in ("istio-base", "istiod", GATEWAY[1])}


def gateway_scaling(cluster: LocalCluster) -> tuple[int, int, object]:
    """(Deployment spec.replicas, HPA minReplicas, HPA lastScaleTime) of the gateway."""
    api = cluster.api_client()
    namespace, name = GATEWAY
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, namespace)
    deployment = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return deployment.spec.replicas, hpa.spec.min_replicas, hpa.status.last_scale_time


@contextmanager
def gateway_replicas_during(cluster: LocalCluster) -> Iterator[list[int]]:
    """The gateway Deployment's spec.replicas, read every 0.2 s on a client of its own while the block runs."""
    seen: list[int] = []
    done = threading.Event()
    apps = client.AppsV1Api(cluster.api_client())

    def watch() -> None:
        while not done.is_set():
            seen.append(apps.read_namespaced_deployment(GATEWAY[1], GATEWAY[0]).spec.replicas)
            done.wait(0.2)

    thread = threading.Thread(target=watch, name="gateway-replicas", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=10)


def test_takes_over_a_helm_installed_istio_keeping_the_platforms_values(
        project, cluster, chart_repository, built_toolchain, tmp_path) -> None:
    kube = Kube.of(cluster)
    helm = HelmCli(built_toolchain, cluster, chart_repository, tmp_path / "helm")
    install_istio_as_a_platform(helm, FROM)
    # The premise: the chart's HPA has scaled the gateway to its floor (the controller-manager's
    # HPA controller; below minReplicas it needs no metrics), the old istiod reads the mesh config.
    eventually(lambda: gateway_scaling(cluster)[:2] == (3, 3), timeout=90, what="the gateway's HPA at 3 replicas")
    eventually(lambda: len(running_pods(kube, "istio-ingress", "app=istio-ingress")) == 3, timeout=90,
               what="3 gateway pods running")
    scaled_at = gateway_scaling(cluster)[2]
    assert mesh_of(kube, "istio")["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    create_teams(kube.core, kube.apps)
    kube.core.patch_namespace("shop", {"metadata": {"labels": {"istio-injection": "enabled"}}},
                              field_manager=TEAM_MANAGER)
    restart_teams(kube.apps, kube.custom)
    eventually(lambda: running_revisions(kube, "shop", "app=web") == {"default"},
               what="shop's pods injected by the unrevisioned istiod")
    # The premise: today the unrevisioned istiod's own webhook injects shop.
    assert injecting_webhooks(kube, kube.namespace_labels("shop"), {"app": "web"}) == [
        "istio-sidecar-injector/namespace.sidecar-injector.istio.io"]

    # The stack of the docs' first fragment states none of the platform's values: refused, each named
    # at the key that states it, and nothing changed.
    project.write_stack(STACK, takeover_stack(cluster, chart_repository))
    project.init_stack(STACK)
    refused = project.meshlift("upgrade", "-s", STACK, "--to", TO, env={"KUBECONFIG": str(cluster.kubeconfig)},
                               label="meshlift upgrade: takeover refused until the installed values are stated")
    assert refused.returncode == 2, refused.output
    for named in ("meshlift:gateways[0]: the adopted release istio-ingress/istio-ingress runs with values",
                  "autoscaling.enabled: true -> false [state it in values.autoscaling.enabled]",
                  "autoscaling.minReplicas: 3 -> the chart's default [state it in values.autoscaling.minReplicas]",
                  "replicaCount: 3 -> 1 [state it in replicas]",
                  'service.annotations.external-dns.alpha.kubernetes.io/hostname: "ingress.corp.example" -> '
                  "the chart's default [state it in service.annotations]",
                  "service.annotations.cloud.google.com/neg:",
                  '"tcp-postgres", "port": 5432}] -> [',
                  "meshlift:revisions[0].values: the unrevisioned istiod (istio-system/istiod) runs with values",
                  'meshConfig.defaultProviders.tracing: ["otel-tracing"] -> the chart\'s default',
                  'meshConfig.outboundTrafficPolicy.mode: "REGISTRY_ONLY" -> the chart\'s default',
                  'meshConfig.extensionProviders: [{"name": "otel-tracing"'):
        assert named in refused.stderr, f"{named!r} not in:\n{refused.stderr}"
    # The revision `--to` adds copies revisions[0]'s values: named there, not as a problem of its own.
    assert "(so does revisions[1], which has the same values)" in refused.stderr, refused.stderr
    assert "meshlift:revisions[1].values:" not in refused.stderr, refused.stderr
    installed = installed_releases(kube)
    assert {name: version for name, (version, _) in installed.items()} == {
        "istio-base": 1, "istiod": 1, "istio-ingress": 1}
    history = project.pulumi("stack", "history", "--json", stack=STACK)
    assert history.returncode == 0 and json.loads(history.stdout or "[]") == [], history.output

    # A plain `pulumi up` of the same stack, without meshlift's CLI, refuses the same takeover: the
    # program reads the same Helm records before it declares anything, and nothing changes.
    plain = project.up(STACK, label="pulumi up: takeover refused until the installed values are stated")
    assert plain.returncode != 0, plain.output
    for named in ("conflicts with what the cluster already holds (2 problem(s)); nothing changed",
                  "meshlift:gateways[0]: the adopted release istio-ingress/istio-ingress runs with values",
                  "autoscaling.enabled: true -> false [state it in values.autoscaling.enabled]",
                  "replicaCount: 3 -> 1 [state it in replicas]",
                  "meshlift:revisions[0].values: the unrevisioned istiod (istio-system/istiod) runs with values",
                  'meshConfig.outboundTrafficPolicy.mode: "REGISTRY_ONLY" -> the chart\'s default'):
        assert named in plain.output, f"{named!r} not in:\n{plain.output}"
    assert "Traceback" not in plain.output, plain.output
    assert installed_releases(kube) == installed  # every release at revision 1, its values as installed
    resources = json.loads(project.pulumi("stack", "export", stack=STACK).stdout)["deployment"].get("resources")
    assert {r["type"] for r in resources or []} <= {"pulumi:pulumi:Stack"}, resources

    # Stated as docs/takeover.md says: the plan finds nothing the takeover would replace.
    project.write_stack(STACK, takeover_stack(cluster, chart_repository, gateway=STATED_GATEWAY,
                                              mesh_config=PLATFORM_MESH_CONFIG))
    plan = project.meshlift("plan", "-s", STACK, "--to", TO, "--json", label="meshlift plan: the values stated")
    assert plan.returncode == 0, plan.output
    cluster_findings = json.loads(plan.stdout)["cluster"]
    assert cluster_findings["read"] and cluster_findings["problems"] == [], cluster_findings
    with gateway_replicas_during(cluster) as replicas_seen:
        up = project.up(STACK, label="pulumi up: take over a Helm-installed Istio")
    assert up.returncode == 0, up.output
    # Never scaled down, not even for a moment, and the HPA never had to scale it back.
    assert replicas_seen and set(replicas_seen) == {3}, replicas_seen
    assert gateway_scaling(cluster) == (3, 3, scaled_at)

    releases = kube.helm_releases("istio-system")
    # istio-base was upgraded in place (Helm revision 2), not installed anew; the team's
    # istiod is untouched; meshlift's revision runs beside it.
    assert releases["istio-base"]["version"] == 2
    assert releases["istio-base"]["config"]["defaultRevision"] == FROM_REV
    assert releases["istiod"]["version"] == 1
    assert releases[f"istiod-{FROM_REV}"]["chart"]["metadata"]["version"] == FROM
    assert kube.available("istio-system", f"istiod-{FROM_REV}")
    validator = kube.validating_webhooks()["istiod-default-validator"]
    assert {w.client_config.service.name for w in validator.webhooks} == {f"istiod-{FROM_REV}"}

    gateway = kube.helm_releases("istio-ingress")["istio-ingress"]
    assert gateway["version"] == 2 and gateway["config"]["revision"] == "stable"
    eventually(lambda: running_revisions(kube, "istio-ingress", "app=istio-ingress") == {FROM_REV},
               what="the adopted gateway's pods on meshlift's revision")
    assert len(running_pods(kube, "istio-ingress", "app=istio-ingress")) == 3
    # The adopted Deployment carries meshlift's label of the revision injecting it, and nothing else of
    # meshlift's (its field manager owns no field of the spec).
    assert kube.deployment_revisions("istio-ingress") == {"istio-ingress": FROM_REV}
    owned = kube.fields_of("istio-ingress", "istio-ingress", "meshlift-gateway")
    assert '"f:istio.io/rev"' in owned and '"f:spec"' not in owned, owned

    # The platform's values, kept: in the cluster, in Helm's record of the upgraded release, and in
    # the mesh config of meshlift's revision, which the unrevisioned istiod's pods move to.
    namespace, name = GATEWAY
    service = kube.core.read_namespaced_service(name, namespace)
    assert PLATFORM_SERVICE_ANNOTATIONS.items() <= (service.metadata.annotations or {}).items()
    assert [(p.name, p.port, p.target_port, p.protocol) for p in service.spec.ports][-1] == (
        "tcp-postgres", 5432, 5432, "TCP")
    assert len(service.spec.ports) == 4
    kept = helm.values(name, namespace)
    assert kept["autoscaling"] == PLATFORM_AUTOSCALING and kept["replicaCount"] == 3, kept
    assert kept["service"]["annotations"] == PLATFORM_SERVICE_ANNOTATIONS, kept
    assert kept["service"]["ports"][-1]["name"] == "tcp-postgres", kept
    assert helm.values(f"istiod-{FROM_REV}", "istio-system")["meshConfig"].items() >= PLATFORM_MESH_CONFIG.items()
    mesh = mesh_of(kube, f"istio-{FROM_REV}")
    assert mesh["accessLogFile"] == "/dev/stdout", mesh
    assert mesh["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}, mesh
    assert mesh["defaultProviders"] == {"tracing": ["otel-tracing"]}, mesh
    assert PLATFORM_MESH_CONFIG["extensionProviders"][0] in mesh["extensionProviders"], mesh

    # Every enrolled namespace: the legacy label gone, meshlift's tag set, and exactly the
    # tag's injector matches a new pod there (none of the unrevisioned istiod's webhooks).
    for namespace, app in (("shop", "web"), ("payments", "api")):
        labels = kube.namespace_labels(namespace)
        assert labels.get("istio.io/rev") == "stable" and "istio-injection" not in labels, labels
        assert injecting_webhooks(kube, labels, {"app": app}) == [TAG_INJECTOR]
    # The teams' Deployments were not restarted by the takeover; their next restart injects
    # meshlift's revision, through Istio's real injector.
    assert running_revisions(kube, "shop", "app=web") == {"default"}
    restart_teams(kube.apps, kube.custom, restarted_at="after-the-takeover")
    for namespace, app in (("shop", "web"), ("payments", "api")):
        eventually(lambda: running_revisions(kube, namespace, f"app={app}") == {FROM_REV}, timeout=90,
                   what=f"{namespace}/{app} restarted onto {FROM_REV}")

    # Istio's own analysis, by default and for meshlift's revision, raises nothing.
    Istioctl.of(cluster, built_toolchain).assert_analyzes_clean(FROM_REV)

    # Adoption happens once: the next run has nothing to import and nothing to change.
    again = project.pulumi("preview", "--expect-no-changes", stack=STACK)
    assert again.returncode == 0, again.output
