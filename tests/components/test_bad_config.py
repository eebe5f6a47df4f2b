"""Every bad config is refused by the real program before it registers a single resource.

Each case runs `__main__.py` under the mocks and proves three things: the
program fails with a `pulumi.RunError` whose message names the key path, the
cause is a `SpecError` carrying that exact key and the reason, and the monitor
saw zero resource registrations (only the runtime's own Stack root).
"""

from __future__ import annotations

import pulumi
import pytest

from meshmodel.spec import SpecError
from tests.components.configs import minimal
from tests.components.program import ProgramRun, run_program

ROLLOUT = {"from": "1.30.3", "to": "1.31.0", "stage": "install"}
WEB = {"name": "web"}
INVENTORY = {"shop": [{"kind": "Deployment", "name": "web", "labels": {"tier": "front"}},
                     {"kind": "StatefulSet", "name": "db"}]}


def ns(**fields):
    return [{"name": "shop", "revision": "stable", **fields}]


def gw(**fields):
    return [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable", **fields}]


def cleanup_with(**overrides):
    return minimal(rollout={**ROLLOUT, "stage": "cleanup", "promoteTags": ["stable"]},
                   tags={"stable": "1-30-3", "legacy": "1-30-3"}, **overrides)


CASES = {
    # --- the list -------------------------------------------------------------
    "unknown top-level key (typo)": (
        {**minimal(), "meshlift:gatways": []}, "meshlift:gatways", "did you mean 'gateways'"),
    "unknown nested key (typo)": (
        minimal(gateways=gw(replica=2)), "meshlift:gateways[0].replica", "did you mean 'replicas'"),
    "malformed revision version": (
        minimal(revisions=[{"version": "1.30.3"}, {"version": "1.10"}]),
        "meshlift:revisions[1].version", "not a version like 1.31.0"),
    "malformed rollout version": (
        minimal(rollout={**ROLLOUT, "to": "v1.10.0"}), "meshlift:rollout.to", "not a version"),
    "canary pair more than two minor versions apart": (
        minimal(revisions=[{"version": "1.30.3"}, {"version": "1.33.0"}], rollout={**ROLLOUT, "to": "1.33.0"}),
        "meshlift:rollout.to", "spans more than 2 minor versions"),
    "tag pointing at a revision that is not installed": (
        minimal(tags={"stable": "1-29-0"}), "meshlift:tags.stable", "'1-29-0' is not an installed revision"),
    "tag pointing at another tag": (
        minimal(tags={"stable": "1-30-3", "prod": "stable"}), "meshlift:tags.prod", "not at another tag"),
    "namespace pointing at a revision that is not installed": (
        minimal(namespaces=ns(revision="1-32-0")), "meshlift:namespaces[0].revision", "neither an installed"),
    "gateway pointing at a revision that is not installed": (
        minimal(gateways=gw(revision="canary")), "meshlift:gateways[0].revision", "neither an installed"),
    "gateway in the control plane's namespace": (
        minimal(gateways=gw(namespace="istio-system")), "meshlift:gateways[0].namespace", "own namespace"),
    "duplicate namespaces": (
        minimal(namespaces=[*ns(), *ns()]), "meshlift:namespaces[1].name", "already listed"),
    "duplicate gateways": (
        minimal(gateways=[*gw(), *gw(namespace="edge")]), "meshlift:gateways[1].name", "already defined"),
    "namespace enrolled in two revisions": (
        minimal(namespaces=[*ns(), *ns(revision="1-31-0")]), "meshlift:namespaces[1].name", "two revisions"),
    "promotion to a revision that is not installed": (
        minimal(revisions=[{"version": "1.30.3"}], rollout={**ROLLOUT, "stage": "promote"}),
        "meshlift:rollout.to", "cannot promote to 1-31-0: it is not installed"),
    "cleanup of a revision that still serves a tag": (
        cleanup_with(), "meshlift:tags.legacy", "still served by revision 1-30-3"),
    "cleanup of a revision that still serves a gateway": (
        cleanup_with(gateways=gw(revision="legacy")), "meshlift:gateways[0].revision", "still served"),
    "cleanup of a revision that still serves a namespace": (
        cleanup_with(namespaces=ns(revision="legacy")), "meshlift:namespaces[0].revision", "still served"),
    "success-rate threshold above 1": (
        minimal(gates={"minSuccessRate": 1.5}), "meshlift:gates.minSuccessRate", "less than or equal to 1"),
    "error-rate delta below 0": (
        minimal(gates={"maxErrorRateDelta": -0.1}), "meshlift:gates.maxErrorRateDelta", "greater than or equal"),
    "zero gateway replicas": (
        minimal(gateways=gw(replicas=0)), "meshlift:gateways[0].replicas", "greater than 0"),
    "a workload declared with an image (the old model)": (
        minimal(namespaces=ns(workloads=[{**WEB, "image": "example/web:1", "port": 8080}])),
        "meshlift:namespaces[0].workloads[0].image", "workloads are no longer declared"),
    "a workload declared with replicas (the old model)": (
        minimal(namespaces=ns(workloads=[{**WEB, "replicas": 2}])),
        "meshlift:namespaces[0].workloads[0].replicas", "that already run in the namespace"),
    "a workload kind meshlift does not restart": (
        minimal(namespaces=ns(workloads=[{**WEB, "kind": "CronJob"}])),
        "meshlift:namespaces[0].workloads[0].kind", "'Deployment', 'StatefulSet' or 'DaemonSet'"),
    "a canary of a DaemonSet": (
        minimal(namespaces=ns(workloads=[{**WEB, "kind": "DaemonSet", "canary": True}])),
        "meshlift:namespaces[0].workloads[0].canary", "one pod on every node"),
    "a workload wave before its revision-enrolled namespace's": (
        minimal(namespaces=ns(revision="1-30-3", wave=2, workloads=[{**WEB, "wave": 1}])),
        "meshlift:namespaces[0].workloads[0].wave", "restart onto the old revision"),
    "a workload entry the inventory did not find": (
        minimal(namespaces=ns(workloads=[{"name": "api", "canary": True}]), inventory=INVENTORY),
        "meshlift:namespaces[0].workloads[0].name", "no Deployment 'api' runs in namespace 'shop'"),
    "a workload entry the selection leaves out": (
        minimal(namespaces=ns(select={"matchLabels": {"tier": "back"}}, workloads=[WEB]), inventory=INVENTORY),
        "meshlift:namespaces[0].workloads[0].name", "left out by the namespace's 'select'"),
    "a selected name that does not run": (
        minimal(namespaces=ns(select={"names": ["web", "wbe"]}), inventory=INVENTORY),
        "meshlift:namespaces[0].select.names[1]", "no workload 'wbe' runs"),
    "an inventory of a namespace that is not enrolled": (
        minimal(inventory={**INVENTORY, "other": []}), "meshlift:inventory.other", "not an enrolled namespace"),
    "zero canary replicas": (
        minimal(namespaces=ns(workloads=[{**WEB, "canary": True, "canaryReplicas": 0}])),
        "meshlift:namespaces[0].workloads[0].canaryReplicas", "greater than 0"),
    "zero gate interval": (
        minimal(gates={"interval": "0s"}), "meshlift:gates.interval", "must be positive"),
    "negative gate window": (
        minimal(gates={"window": -5}), "meshlift:gates.window", "must be positive"),
    # --- rules a careful operator expects -------------------------------------------
    "canary workload in a namespace enrolled by revision name": (
        minimal(namespaces=ns(revision="1-30-3", workloads=[{**WEB, "canary": True}])),
        "meshlift:namespaces[0].workloads[0].canary", "enrolled through a tag"),
    "chart repository that is not a URL": (
        minimal(chartRepository="istio-release"), "meshlift:chartRepository", "not a Helm repository URL"),
    "istiod values setting the revision": (
        minimal(revisions=[{"version": "1.30.3", "values": {"revision": "x"}}, {"version": "1.31.0"}]),
        "meshlift:revisions[0].values.revision", "meshlift sets this value"),
    "istiod values rendering revision tags": (
        minimal(revisions=[{"version": "1.30.3"}, {"version": "1.31.0", "values": {"revisionTags": ["stable"]}}]),
        "meshlift:revisions[1].values.revisionTags", "separate webhook objects"),
    "gateway values setting the revision": (
        minimal(gateways=gw(values={"revision": "1-31-0"})), "meshlift:gateways[0].values.revision",
        "meshlift sets this value"),
    "gateway values setting the replica count the 'replicas' key sets": (
        minimal(gateways=gw(values={"replicaCount": 5})), "meshlift:gateways[0].values.replicaCount",
        "set the gateway's 'replicas' key instead"),
    "gateway values setting the Service ports the 'service' key sets": (
        minimal(gateways=gw(values={"service": {"ports": [{"name": "tcp", "port": 31400}]}})),
        "meshlift:gateways[0].values.service.ports", "set the gateway's 'service.ports' key instead"),
    "a gateway port number used twice for one protocol": (
        minimal(gateways=gw(service={"ports": [{"name": "https", "port": 443},
                                               {"name": "tls", "port": 443, "protocol": "TCP"}]})),
        "meshlift:gateways[0].service.ports[1].port", "port 443/TCP is already used at [0]"),
    "gateway values renaming the Deployment meshlift labels": (
        minimal(gateways=gw(values={"name": "edge"})), "meshlift:gateways[0].values.name",
        "named after its 'name' key"),
    "gateway values labelling the Deployment with a revision": (
        minimal(gateways=gw(values={"labels": {"istio.io/rev": "1-30-3", "team": "edge"}})),
        "meshlift:gateways[0].values.labels.istio.io/rev", "meshlift sets the revision injecting its pods"),
    "base values setting the default revision": (
        minimal(baseValues={"defaultRevision": "1-31-0"}), "meshlift:baseValues.defaultRevision",
        "set meshlift:defaultRevision instead"),
    "default revision that is not installed": (
        minimal(defaultRevision="1-29-0"), "meshlift:defaultRevision", "is not installed"),
    "tag named like a revision": (
        minimal(tags={"1-30-3": "1-30-3", "stable": "1-30-3"}), "meshlift:tags.1-30-3", "has the name of a revision"),
    "default tag and default revision apart": (
        minimal(tags={"stable": "1-30-3", "default": "1-30-3"}, defaultRevision="1-31-0"), "meshlift:tags.default",
        "point both at the same revision"),
    "injection label set by hand on a namespace": (
        minimal(namespaces=ns(labels={"istio-injection": "enabled"})),
        "meshlift:namespaces[0].labels.istio-injection", "meshlift owns this label"),
    "control plane namespace enrolled": (
        minimal(namespaces=ns(name="istio-system")), "meshlift:namespaces[0].name", "not enrolled"),
    "gateway in an application namespace": (
        minimal(gateways=gw(namespace="shop")), "meshlift:gateways[0].namespace", "application namespace"),
    "workload listed twice": (
        minimal(namespaces=ns(workloads=[WEB, WEB])), "meshlift:namespaces[0].workloads[1].name", "listed twice"),
    "canary workload name too long for its canary": (
        minimal(namespaces=ns(workloads=[{**WEB, "name": "w" * 60, "canary": True}])),
        "meshlift:namespaces[0].workloads[0].name", "too long for its canary"),
    "workload named like another workload's canary": (
        minimal(namespaces=ns(workloads=[{**WEB, "canary": True}, {"name": "web-canary"}])),
        "meshlift:namespaces[0].workloads[1].name", "workload 'web''s canary"),
    "gateway named like another gateway's canary": (
        minimal(gateways=[*gw(), *gw(name="ingress-canary")]), "meshlift:gateways[1].name",
        "gateway 'ingress''s canary release"),
    "gateway ports clashing": (
        minimal(gateways=gw(service={"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]})),
        "meshlift:gateways[0].service.ports[1].port", "already used"),
    "downgrade instead of rollback": (
        minimal(rollout={**ROLLOUT, "from": "1.31.0", "to": "1.30.3"}), "meshlift:rollout.to", "not newer"),
    "replaced revision not installed": (
        minimal(revisions=[{"version": "1.31.0"}], tags={"stable": "1-31-0"}),
        "meshlift:rollout.from", "is not installed"),
    "more promoted waves than waves": (
        minimal(rollout={**ROLLOUT, "stage": "promote", "promotedWaves": 3}),
        "meshlift:rollout.promotedWaves", "only 1 wave(s)"),
    "waves promoted before the promote stage": (
        minimal(rollout={**ROLLOUT, "stage": "canary", "promotedWaves": 1}),
        "meshlift:rollout.promotedWaves", "promoted in the promote stage"),
    "promoting a tag that is not defined": (
        minimal(rollout={**ROLLOUT, "promoteTags": ["stabel"]}), "meshlift:rollout.promoteTags[0]", "not defined"),
    "unknown stage": (
        minimal(rollout={**ROLLOUT, "stage": "canry"}), "meshlift:rollout.stage", "'install', 'canary'"),
    "gate passes that cannot fit the window": (
        minimal(gates={"window": "10s", "interval": "5s", "consecutivePasses": 3}),
        "meshlift:gates.consecutivePasses", "cannot fit"),
    "gate interval longer than the window": (
        minimal(gates={"window": "5s", "interval": "10s"}), "meshlift:gates.interval", "longer than the window"),
    "no revisions": (
        minimal(revisions=[]), "meshlift:revisions", "at least 1 item"),
    "invalid Kubernetes name": (
        minimal(gateways=gw(name="Ingress_GW")), "meshlift:gateways[0].name", "not a valid Kubernetes name"),
    # --- taking over an installation --------------------------------------------------
    "adopted release without its namespace": (
        minimal(adopt=["istio-base"]), "meshlift:adopt[0]", "write '<namespace>/<release>'"),
    "adopted release meshlift does not declare": (
        minimal(adopt=["istio-system/istio-base", "istio-ingress/istio-ingressgateway"]), "meshlift:adopt[1]",
        "declares no Helm release 'istio-ingress/istio-ingressgateway'; it can take over istio-ingress/ingress"),
    "adopted release listed twice": (
        minimal(adopt=["istio-system/istio-base", "istio-system/istio-base"]), "meshlift:adopt[1]", "listed twice"),
    "adopting the istiod installed without a revision": (
        minimal(adopt=["istio-system/istiod"]), "meshlift:adopt[0]", "installs its revisions beside it"),
}


@pytest.mark.parametrize("config, key, reason", CASES.values(), ids=CASES.keys())
def test_bad_config_is_refused_with_its_key_path_before_anything_is_registered(config, key, reason):
    record = ProgramRun()
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, record=record)
    assert key in str(raised.value), f"the message must name {key}:\n{raised.value}"
    error = raised.value.__cause__
    assert isinstance(error, SpecError), f"unexpected failure: {error!r}"
    matching = [p for p in error.problems if p.key == key]
    assert matching, f"no problem at {key}; got {[str(p) for p in error.problems]}"
    assert any(reason in p.reason for p in matching), f"reason {reason!r} not in {[p.reason for p in matching]}"
    assert record.stack_urn, "the program itself ran"
    assert [r.urn for r in record] == [], "a bad config must not register any resource"


def test_a_stack_with_declared_workloads_gets_one_migration_error_per_key_and_the_rest_still_checked():
    old = [{"name": "web", "image": "example/web:1", "replicas": 2, "port": 8080, "labels": {"tier": "a"},
            "canary": True}]
    with pytest.raises(pulumi.RunError) as raised:
        run_program(minimal(namespaces=ns(workloads=old), gates={"minSuccessRate": 2}))
    problems = raised.value.__cause__.problems
    declared = [p.key for p in problems if "no longer declared" in p.reason]
    assert declared == [f"meshlift:namespaces[0].workloads[0].{key}" for key in ("image", "port", "replicas", "labels")]
    assert "meshlift:gates.minSuccessRate" in {p.key for p in problems}, "other problems are reported in the same run"


def test_one_run_reports_every_problem_at_once():
    config = minimal(gateways=gw(namespace="istio-system", replicas=0), gates={"minSuccessRate": 2})
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config)
    keys = {p.key for p in raised.value.__cause__.problems}
    assert {"meshlift:gateways[0].replicas", "meshlift:gates.minSuccessRate"} <= keys


def test_the_example_configs_themselves_are_valid():
    from meshmodel.spec_check import load_spec
    from tests.components.program import stack_config

    for env in ("dev", "staging", "prod"):
        assert load_spec(stack_config(env)).rollout is not None, env
