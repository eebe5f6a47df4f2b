"""Which pods stop cleanup from removing the old revision, decided on pods as the API server returns them.

The pods are the recorded `GET /api/v1/pods` list of a bookinfo namespace
(tests/checks/fixtures, injected by 1-40-0), with what a pod carries changed
the way the injector and the controllers would: the `sidecar.istio.io/status`
revision, the `istio-proxy` image tag, owners and phases.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout.leftovers import cleanup_refusal, injected_revision, old_revision_pods, proxy_image_tag
from tests.rollout.doubles import mesh_config

FIXTURE = Path(__file__).parents[1] / "checks" / "fixtures" / "pods_bookinfo_1-40-0.json"
OLD, OLD_VERSION = "1-39-3", "1.39.3"


def recorded() -> list[dict]:
    return json.loads(FIXTURE.read_text())["items"]


def by_name(name: str) -> dict:
    return copy.deepcopy(next(p for p in recorded() if p["metadata"]["name"] == name))


def on_revision(pod: dict, revision: str, version: str, *, annotation: bool = True) -> dict:
    """The pod as the injector of `revision` would have left it."""
    annotations = pod["metadata"]["annotations"]
    status = json.loads(annotations["sidecar.istio.io/status"])
    if annotation:
        annotations["sidecar.istio.io/status"] = json.dumps({**status, "revision": revision})
    else:
        del annotations["sidecar.istio.io/status"]
    annotations.pop("istio.io/rev", None)
    pod["metadata"]["labels"].pop("istio.io/rev", None)  # not set by injectors since 1.10
    for container in [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])]:
        if container["name"] == "istio-proxy":
            container["image"] = f"docker.io/istio/proxyv2:{version}"
    return pod


def owned_by(pod: dict, kind: str, name: str, api_version: str = "batch/v1") -> dict:
    pod["metadata"]["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": name,
                                           "uid": "8b0e1c52-2f55-4d2c-9a55-2b0cfb1d3b10",
                                           "controller": True, "blockOwnerDeletion": True}]
    pod["metadata"]["name"] = f"{name}-x7k2p"
    return pod


def in_phase(pod: dict, phase: str) -> dict:
    pod["status"]["phase"] = phase
    return pod


def leftovers(pods: list[dict], enrolled: tuple[str, ...] = ("bookinfo",)):
    return old_revision_pods(pods, old_revision=OLD, old_version=OLD_VERSION, enrolled_namespaces=enrolled)


def test_pods_on_the_new_revision_are_not_leftovers():
    assert leftovers(recorded()) == []


def test_the_revision_comes_from_the_status_annotation_and_the_proxy_image_tag_not_the_label():
    pod = by_name("reviews-v1-7d8f9c6b5-abcde")
    assert (injected_revision(pod), proxy_image_tag(pod)) == ("1-40-0", "1.40.0")
    native = by_name("details-v1-6f7b8c9d4-klmno")  # istio-proxy as a native sidecar (initContainers)
    assert proxy_image_tag(native) == "1.40.0"
    assert proxy_image_tag(by_name("mysql-0")) is None, "no proxy, no revision"


def test_a_running_deployment_pod_on_the_old_proxy_blocks_and_says_which_deployment_to_restart():
    [found] = leftovers([on_revision(by_name("reviews-v1-7d8f9c6b5-abcde"), OLD, OLD_VERSION)])
    assert (found.name, found.owner, found.phase, found.blocking) == (
        "reviews-v1-7d8f9c6b5-abcde", "ReplicaSet/reviews-v1-7d8f9c6b5", "Running", True)
    assert "kubectl rollout restart deployment/reviews-v1" in found.hint


def test_the_proxy_image_alone_tells_an_old_pod_whose_status_annotation_is_gone():
    pod = on_revision(by_name("details-v1-6f7b8c9d4-klmno"), OLD, OLD_VERSION, annotation=False)
    assert [p.name for p in leftovers([pod])] == ["details-v1-6f7b8c9d4-klmno"]


def test_a_running_job_pod_blocks_but_finished_and_failed_pods_are_only_listed():
    running_job = owned_by(on_revision(by_name("ratings-v1-5c9d7b8f4-fghij"), OLD, OLD_VERSION), "Job", "backup-29100")
    done_job = in_phase(owned_by(on_revision(by_name("reviews-v1-7d8f9c6b5-abcde"), OLD, OLD_VERSION),
                                 "Job", "report-29099"), "Succeeded")
    failed = in_phase(on_revision(by_name("reviews-v1-7d8f9c6b5-pqrst"), OLD, OLD_VERSION), "Failed")
    found = {p.name: p for p in leftovers([running_job, done_job, failed])}
    assert set(found) == {"backup-29100-x7k2p", "report-29099-x7k2p", "reviews-v1-7d8f9c6b5-pqrst"}
    assert found["backup-29100-x7k2p"].blocking and "Job" in found["backup-29100-x7k2p"].hint
    assert not found["report-29099-x7k2p"].blocking and "delete it to tidy up" in found["report-29099-x7k2p"].hint
    assert not found["reviews-v1-7d8f9c6b5-pqrst"].blocking


def test_a_pending_pod_on_the_old_revision_blocks():
    pending = on_revision(by_name("reviews-v1-7d8f9c6b5-pqrst"), OLD, OLD_VERSION)
    assert [p.blocking for p in leftovers([pending])] == [True]


@pytest.mark.parametrize("enrolled, pinned", [((), True), (("bookinfo",), False)],
                         ids=["namespace without injection label", "meshlift-enrolled namespace wins"])
def test_a_pod_pinned_to_the_old_revision_by_its_own_label_blocks_outside_enrolled_namespaces(enrolled, pinned):
    pod = by_name("reviews-v1-7d8f9c6b5-abcde")  # runs 1-40-0 today, but asks for 1-39-3 next time
    pod["metadata"]["labels"]["istio.io/rev"] = OLD
    found = leftovers([pod], enrolled=enrolled)
    assert bool(found) is pinned
    if pinned:
        assert found[0].blocking and "pins it to 1-39-3" in found[0].reason


def cleanup_plan(**overrides):
    config = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
                            "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "cleanup"}, **overrides})
    return plan_for(load_spec(config))


def test_cleanup_is_refused_naming_every_blocking_pod_and_what_to_do_then_allowed_once_they_are_gone():
    old_pod = on_revision(by_name("reviews-v1-7d8f9c6b5-abcde"), OLD, OLD_VERSION)
    failed = in_phase(on_revision(by_name("reviews-v1-7d8f9c6b5-pqrst"), OLD, OLD_VERSION), "Failed")
    refusal = cleanup_refusal(cleanup_plan(), [old_pod, failed, *recorded()[1:4]])
    assert refusal is not None and refusal.refused
    assert [p.name for p in refusal.blocking] == ["reviews-v1-7d8f9c6b5-abcde"]
    assert "bookinfo/reviews-v1-7d8f9c6b5-abcde" in refusal.message
    assert "kubectl rollout restart deployment/reviews-v1" in refusal.message
    assert "bookinfo/reviews-v1-7d8f9c6b5-pqrst" in refusal.message, "finished pods are listed to tidy up"
    assert "run the same command again" in refusal.message
    only_finished = cleanup_refusal(cleanup_plan(), [failed, *recorded()])
    assert only_finished is not None and not only_finished.refused
    assert cleanup_refusal(cleanup_plan(), recorded()) is None


def test_cleanup_is_refused_while_the_default_revision_would_be_removed():
    plan = cleanup_plan()
    broken = type(plan)(**{**plan.__dict__, "default_revision": OLD})
    refusal = cleanup_refusal(broken, recorded())
    assert refusal is not None and refusal.refused
    assert "default revision" in refusal.message and OLD in refusal.message


def test_outside_cleanup_nothing_is_refused():
    plan = plan_for(load_spec(mesh_config(**{
        "meshlift:revisions": [{"version": "1.39.3"}, {"version": "1.40.0"}],
        "meshlift:rollout": {"from": "1.39.3", "to": "1.40.0", "stage": "promote", "promotedWaves": 2}})))
    assert cleanup_refusal(plan, [on_revision(by_name("reviews-v1-7d8f9c6b5-abcde"), OLD, OLD_VERSION)]) is None


def test_the_old_revisions_own_istiod_pods_are_not_in_the_way_of_its_cleanup():
    istiod = {"metadata": {"namespace": "istio-system", "name": "istiod-1-39-3-68d74b6d4c-5wrmk",
                           "labels": {"app": "istiod", "istio.io/rev": OLD},
                           "ownerReferences": [{"kind": "ReplicaSet", "name": "istiod-1-39-3-68d74b6d4c"}]},
              "spec": {"containers": [{"name": "discovery", "image": f"docker.io/istio/pilot:{OLD_VERSION}"}]},
              "status": {"phase": "Running"}}
    assert leftovers([istiod]) == []
    elsewhere = copy.deepcopy(istiod)
    elsewhere["metadata"]["namespace"] = "tools"  # an app that happens to call itself istiod is still judged
    assert [found.name for found in leftovers([elsewhere])] == ["istiod-1-39-3-68d74b6d4c-5wrmk"]


# ---------------------------------------------------------------- where the old revision can come back from


def _template(kind: str, namespace: str, name: str, pod_labels: dict, **extra) -> dict:
    template = {"metadata": {"labels": pod_labels}, "spec": {"containers": [{"name": "app", "image": "x:1"}]}}
    spec = {"jobTemplate": {"spec": {"template": template}}} if kind == "CronJob" else {"template": template}
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, **extra}, "spec": spec}


def _namespace(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


NAMESPACES = [_namespace("bookinfo", **{"istio.io/rev": "stable"}), _namespace("batch"), _namespace("istio-system")]


def sources(*, namespaces=NAMESPACES, templates=(), gateways=()) -> dict:
    return {"namespaces": list(namespaces), "templates": list(templates), "gateways": list(gateways)}


def test_a_cronjob_between_runs_pinned_to_the_old_revision_refuses_cleanup_until_it_is_not():
    cronjob = _template("CronJob", "batch", "report", {"app": "report", "istio.io/rev": OLD})
    refusal = cleanup_refusal(cleanup_plan(), recorded(), sources(templates=[cronjob]))
    assert refusal is not None and refusal.refused
    [found] = refusal.blocking
    assert (found.kind, found.namespace, found.name) == ("CronJob", "batch", "report")
    assert "CronJob batch/report: its pod template pins istio.io/rev=1-39-3" in refusal.message
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] = "stable"
    assert cleanup_refusal(cleanup_plan(), recorded(), sources(templates=[cronjob])) is None


def test_a_template_in_a_labelled_namespace_pins_nothing_and_owned_history_is_judged_through_its_owner():
    in_enrolled = _template("Deployment", "bookinfo", "web", {"istio.io/rev": OLD})  # the namespace label wins
    old_replicaset = _template("ReplicaSet", "batch", "web-5d9c7b", {"istio.io/rev": OLD},
                               ownerReferences=[{"kind": "Deployment", "name": "web", "controller": True}])
    job_of_cron = _template("Job", "batch", "report-29100", {"istio.io/rev": OLD},
                            ownerReferences=[{"kind": "CronJob", "name": "report", "controller": True}])
    finished = _template("Job", "batch", "migrate", {"istio.io/rev": OLD})
    finished["status"] = {"completionTime": "2026-12-01T00:00:00Z", "succeeded": 1}
    refusal = cleanup_refusal(cleanup_plan(), recorded(),
                              sources(templates=[in_enrolled, old_replicaset, job_of_cron, finished]))
    assert refusal is not None and not refusal.refused, refusal.message
    assert [(p.kind, p.name, p.blocking) for p in refusal.pods] == [("Job", "migrate", False)]


def test_a_namespace_and_a_gateway_labelled_with_the_old_revision_refuse_cleanup():
    gateway = {"kind": "Gateway", "metadata": {"name": "waypoint", "namespace": "bookinfo",
                                               "labels": {"istio.io/rev": OLD}}}
    refusal = cleanup_refusal(cleanup_plan(), recorded(),
                              sources(namespaces=[*NAMESPACES, _namespace("legacy", **{"istio.io/rev": OLD})],
                                      gateways=[gateway]))
    assert refusal is not None
    assert [(p.kind, p.name) for p in refusal.blocking] == [("Namespace", "legacy"), ("Gateway", "waypoint")]
    assert "kubectl label namespace legacy istio.io/rev=<tag> --overwrite" in refusal.message


def test_hints_follow_the_owner_chain_to_what_really_exists():
    def pod_of(owner: str) -> dict:
        kind, name = owner.split("/")
        return owned_by(on_revision(by_name("reviews-v1-7d8f9c6b5-abcde"), OLD, OLD_VERSION), kind, name,
                        api_version="apps/v1")

    deployment_rs = _template("ReplicaSet", "bookinfo", "reviews-v1-7d8f9c6b5", {},
                              ownerReferences=[{"kind": "Deployment", "name": "reviews", "controller": True}])
    argo_rs = _template("ReplicaSet", "bookinfo", "canary-7f9", {},
                        ownerReferences=[{"kind": "Rollout", "name": "canary", "controller": True}])
    bare_rs = _template("ReplicaSet", "bookinfo", "legacy", {})
    on_delete = _template("StatefulSet", "bookinfo", "ledger", {})
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    partitioned = _template("StatefulSet", "bookinfo", "queue", {})
    partitioned["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    paused_rs = _template("ReplicaSet", "bookinfo", "batch-5f6", {},
                          ownerReferences=[{"kind": "Deployment", "name": "batch", "controller": True}])
    paused = _template("Deployment", "bookinfo", "batch", {})
    paused["spec"]["paused"] = True
    operated_rs = _template("ReplicaSet", "bookinfo", "hello-6c7", {},
                            ownerReferences=[{"kind": "Deployment", "name": "hello", "controller": True}])
    operated = _template("Deployment", "bookinfo", "hello", {},
                         ownerReferences=[{"kind": "Revision", "name": "hello-00001", "controller": True}])
    listed = sources(templates=[deployment_rs, argo_rs, bare_rs, on_delete, partitioned, paused_rs, paused,
                                operated_rs, operated])
    hints = {p.owner: p.hint for p in old_revision_pods(
        [pod_of("ReplicaSet/reviews-v1-7d8f9c6b5"), pod_of("ReplicaSet/canary-7f9"), pod_of("ReplicaSet/legacy"),
         pod_of("StatefulSet/ledger"), pod_of("StatefulSet/queue"), pod_of("ReplicaSet/batch-5f6"),
         pod_of("ReplicaSet/hello-6c7")],
        old_revision=OLD, old_version=OLD_VERSION, enrolled_namespaces=("bookinfo",), sources=listed)}
    assert "partition 2" in hints["StatefulSet/queue"] and "kubectl delete pod queue-x7k2p" in hints["StatefulSet/queue"]
    assert "kubectl rollout resume deployment/batch -n bookinfo" in hints["ReplicaSet/batch-5f6"]
    assert "through Revision/hello-00001, which owns Deployment/hello" in hints["ReplicaSet/hello-6c7"]
    assert "kubectl rollout restart deployment/reviews -n bookinfo" in hints["ReplicaSet/reviews-v1-7d8f9c6b5"]
    assert "kubectl argo rollouts restart canary -n bookinfo" in hints["ReplicaSet/canary-7f9"]
    assert "has no Deployment" in hints["ReplicaSet/legacy"] and "deployment/" not in hints["ReplicaSet/legacy"]
    assert "OnDelete" in hints["StatefulSet/ledger"] and "kubectl delete pod" in hints["StatefulSet/ledger"]


def test_ztunnel_and_an_unrevisioned_istiod_of_the_same_version_never_block():
    ztunnel = {"metadata": {"namespace": "istio-system", "name": "ztunnel-abcde", "labels": {"app": "ztunnel"},
                            "ownerReferences": [{"kind": "DaemonSet", "name": "ztunnel", "controller": True}]},
               "spec": {"containers": [{"name": "istio-proxy", "image": f"docker.io/istio/ztunnel:{OLD_VERSION}"}]},
               "status": {"phase": "Running"}}
    ztunnel_unlabelled = copy.deepcopy(ztunnel)
    ztunnel_unlabelled["metadata"]["labels"] = {}
    default_injected = by_name("reviews-v1-7d8f9c6b5-abcde")  # injected by the unrevisioned istiod, same version
    default_injected = on_revision(default_injected, "default", OLD_VERSION)
    assert leftovers([ztunnel, ztunnel_unlabelled, default_injected]) == []


def test_the_distroless_proxy_of_an_old_pod_whose_status_annotation_is_gone_is_recognised():
    pod = on_revision(by_name("details-v1-6f7b8c9d4-klmno"), OLD, OLD_VERSION, annotation=False)
    for container in [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])]:
        if container["name"] == "istio-proxy":
            container["image"] = f"docker.io/istio/proxyv2:{OLD_VERSION}-distroless"
    assert [p.name for p in leftovers([pod])] == ["details-v1-6f7b8c9d4-klmno"]
