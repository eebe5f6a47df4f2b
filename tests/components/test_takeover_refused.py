"""A plain `pulumi up` of a takeover refuses what `meshlift upgrade` refuses, before any resource exists.

The real `__main__.py` runs under the mocks; the cluster it reads (Helm's release
records of the adopted gateway and of the unrevisioned istiod) is the harness's
(tests.components.program). Each refusal is a `pulumi.RunError` (Pulumi prints it
without a traceback) naming every problem at its key path, with the monitor having
registered nothing but the runtime's own Stack.
"""

from __future__ import annotations

import pulumi
import pytest
import yaml

from meshmodel.plan import PROXY_REVISION_ANNOTATION
from meshmodel.spec_check import load_spec
from meshmodel.stackfile import read_stack_file
from rollout.errors import PlatformError
from rollout.adopted_values import adopted_value_problems
from tests.components.cluster import example_cluster
from tests.components.configs import minimal
from tests.components.program import ProgramRun, run_program

KUBERNETES = {"kubernetes:context": "prod", "kubernetes:kubeconfig": "/etc/meshlift/prod.kubeconfig"}
ADOPT = ["istio-system/istio-base", "istio-ingress/ingress"]
INSTALLED_GATEWAY = {"autoscaling": {"enabled": True, "minReplicas": 3}, "replicaCount": 3,
                     "service": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"},
                                 "loadBalancerIP": "10.0.0.7"}}
MESH_CONFIG = {"trustDomain": "corp.example", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
STATED_GATEWAY = {"name": "ingress", "namespace": "istio-ingress", "revision": "stable", "replicas": 3,
                  "service": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"}},
                  "values": {"autoscaling": {"enabled": True, "minReplicas": 3},
                             "service": {"loadBalancerIP": "10.0.0.7"}}}
STATED_REVISIONS = [{"version": v, "values": {"meshConfig": MESH_CONFIG}} for v in ("1.30.3", "1.31.0")]


def installation():
    """A Helm-installed Istio: the gateway with its HPA, 3 replicas and an internal load balancer; an
    unrevisioned istiod with its own trust domain and outbound policy."""
    cluster = example_cluster()
    cluster.installed("istio-ingress", "ingress", INSTALLED_GATEWAY)
    cluster.installed("istio-system", "istiod", {"meshConfig": MESH_CONFIG, "pilot": {"replicaCount": 2}})
    return cluster


def takeover(**overrides) -> dict:
    return {**minimal(adopt=ADOPT, **overrides), **KUBERNETES}


def refused(config: dict, cluster, **options) -> tuple[str, ProgramRun]:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, record=run, cluster=cluster, **options)
    return str(raised.value), run


def test_a_takeover_that_would_replace_installed_values_is_refused_naming_each_before_any_resource():
    cluster = installation()
    message, run = refused(takeover(), cluster)
    assert message.startswith("stack config: conflicts with what the cluster already holds (2 problem(s)); "
                              "nothing changed\n  meshlift:gateways[0]: the adopted release istio-ingress/ingress "
                              "runs with values meshlift would replace ("), message
    for named in ("autoscaling.enabled: true -> false [state it in values.autoscaling.enabled]",
                  "replicaCount: 3 -> 2 [state it in replicas]",
                  'service.loadBalancerIP: "10.0.0.7" -> the chart\'s default [state it in values.service.loadBalancerIP]',
                  "\n  meshlift:revisions[0].values: the unrevisioned istiod (istio-system/istiod) runs with values",
                  'meshConfig.trustDomain: "corp.example" -> the chart\'s default'):
        assert named in message, f"{named!r} not in:\n{message}"
    assert run.registrations == [] and run.hook_registrations == [] and run.reads == []
    # Read from the stack's own cluster, once: the adopted gateway's records and the unrevisioned istiod's.
    assert [(r["kubernetes:context"], r["kubernetes:kubeconfig"]) for r in cluster.readers] == [
        ("prod", "/etc/meshlift/prod.kubeconfig")]
    assert cluster.helm_reads == [("istio-ingress", "ingress"), ("istio-system", "istiod")]
    # The very problems `meshlift upgrade` refuses with for this installation (rollout.preflight.findings).
    upgrade_refuses = adopted_value_problems(load_spec(takeover()), cluster)
    assert [str(p) for p in upgrade_refuses] == message.split("\n  ")[1:]


def test_a_preview_is_refused_the_same_way():
    message, run = refused(takeover(), installation(), preview=True)
    assert "meshlift:gateways[0]: the adopted release istio-ingress/ingress" in message
    assert run.registrations == []


def test_the_problems_are_placed_on_the_stack_files_lines(tmp_path, monkeypatch):
    config = takeover()
    path = tmp_path / "stacks" / "Pulumi.prod.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    message, _ = refused(config, installation(), stack="prod")
    line_of = read_stack_file(str(path)).line_of
    assert message.startswith(f"{path}: conflicts with what the cluster already holds (2 problem(s))"), message
    assert f"\n  {path}:{line_of('meshlift:gateways[0]')}: meshlift:gateways[0]: the adopted release" in message
    assert f"\n  {path}:{line_of('meshlift:revisions[0].values')}: meshlift:revisions[0].values:" in message


def test_the_takeover_goes_ahead_once_the_stack_states_the_installed_values():
    cluster = installation()
    run = run_program(takeover(gateways=[STATED_GATEWAY], revisions=STATED_REVISIONS), cluster=cluster)
    assert run.named("ingress-release").import_id == "istio-ingress/ingress"
    assert cluster.helm_reads == [("istio-ingress", "ingress"), ("istio-system", "istiod")]


def test_a_gateway_taken_over_already_is_its_stacks_but_the_unrevisioned_istiod_is_compared_while_it_runs():
    cluster = installation()
    since_takeover = {**INSTALLED_GATEWAY, "podAnnotations": {PROXY_REVISION_ANNOTATION: "1-30-3"}}
    cluster.installed("istio-ingress", "ingress", since_takeover)
    message, _ = refused(takeover(), cluster)
    assert "meshlift:gateways[0]" not in message
    assert message.startswith("stack config: conflicts with what the cluster already holds (1 problem(s))")
    assert "meshlift:revisions[0].values: the unrevisioned istiod" in message
    # Once the istiod is uninstalled there is nothing left to compare.
    del cluster.helm_secrets[("istio-system", "istiod")]
    run_program(takeover(), cluster=cluster)


def test_a_stack_that_adopts_nothing_does_not_read_the_cluster():
    cluster = installation()  # an unrevisioned istiod whose mesh config the stack does not carry
    run = run_program({**minimal(), **KUBERNETES}, cluster=cluster)
    assert run.registrations
    assert cluster.readers == [] and cluster.helm_reads == []


def test_a_cluster_that_cannot_be_read_refuses_the_takeover_naming_the_cluster(monkeypatch):
    # The orchestrator's own `up`s stand its gate hooks down; this check is not one of them.
    monkeypatch.setenv("MESHLIFT_GATED", "1")
    cluster = installation()
    cluster.fail_with = PlatformError("cannot list what runs in the cluster: connection refused")
    message, run = refused(takeover(), cluster)
    assert message == (
        "cannot read the Helm releases this stack adopts from context 'prod' of kubeconfig "
        "/etc/meshlift/prod.kubeconfig: cannot list what runs in the cluster: connection refused. A takeover "
        "replaces the values they run with unless the stack states them, so it is not applied unchecked; "
        "nothing changed")
    assert run.registrations == []
