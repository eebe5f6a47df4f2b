"""What holds back the retirement of a takeover's unrevisioned istiod, on objects as the API server returns them."""

from __future__ import annotations

import json

import pytest

from meshmodel.spec_check import load_spec
from rollout.retirement import retirement_check
from tests.rollout.doubles import mesh_config
from tests.rollout.test_cli import project  # noqa: F401 (the CLI fixture)
from tests.rollout.test_leftovers import _namespace, _template, in_phase, on_revision, owned_by, recorded

# The stack lists shop and pay (revision tag stable); the rest of the cluster is the teams'.
NAMESPACES = [_namespace("shop", **{"istio.io/rev": "stable"}), _namespace("pay", **{"istio.io/rev": "stable"}),
              _namespace("legacy", **{"istio-injection": "enabled"}), _namespace("ingress"),
              _namespace("istio-system")]


def spec(**tags: str):
    return load_spec(mesh_config(**{"meshlift:tags": {"stable": "1-39-3", **tags}}))


def sources(*, namespaces=NAMESPACES, templates=()) -> dict:
    return {"namespaces": list(namespaces), "templates": list(templates), "gateways": []}


GATEWAY = _template("Deployment", "ingress", "istio-ingressgateway",
                    {"app": "istio-ingressgateway", "sidecar.istio.io/inject": "true"})


def kinds(check) -> list[tuple[str, str, str]]:
    return [(leftover.kind, leftover.namespace, leftover.name) for leftover in check.blocking]


def test_legacy_labelled_namespaces_and_inject_true_templates_of_every_kind_refuse_retirement_by_name():
    cronjob = _template("CronJob", "ingress", "rotate", {"sidecar.istio.io/inject": "true"})
    asks_a_tag = _template("Deployment", "ingress", "pinned", {"sidecar.istio.io/inject": "true",
                                                               "istio.io/rev": "stable"})
    in_labelled = _template("StatefulSet", "legacy", "db", {"sidecar.istio.io/inject": "true"})  # its namespace's
    check = retirement_check(spec(), [], sources(templates=[GATEWAY, cronjob, asks_a_tag, in_labelled]))

    assert check.refused
    assert kinds(check) == [("Namespace", "", "legacy"), ("Deployment", "ingress", "istio-ingressgateway"),
                            ("CronJob", "ingress", "rotate")]
    message = check.message
    assert message.startswith("Retirement refused: the unrevisioned istiod (istio-system/istiod) still serves")
    assert ("Namespace legacy: labelled istio-injection=enabled: only a default injector injects its new pods; "
            "list it under meshlift:namespaces (create: false)") in message
    assert ("Deployment ingress/istio-ingressgateway: its pod template is labelled sidecar.istio.io/inject=true in "
            "a namespace without an injection label") in message
    assert "declare the tag `default`" in message, "the other fix is named"


def test_a_listed_namespace_whose_legacy_label_came_back_is_named_with_its_own_fix():
    healed = _namespace("shop", **{"istio.io/rev": "stable", "istio-injection": "enabled"})
    check = retirement_check(spec(), [], sources(namespaces=[healed]))
    (leftover,) = check.blocking
    assert "the label came back after meshlift removed it" in leftover.hint
    assert "kubectl label namespace shop istio-injection-" in leftover.hint


def test_a_default_tag_serves_the_legacy_labels_so_only_pods_running_its_proxy_hold_it_back():
    injected = owned_by(on_revision(recorded()[0],
                                    "default", "1.39.3"), "ReplicaSet", "web-7d8f9c6b5", "apps/v1")
    pinned = _template("Deployment", "ingress", "asks-default", {"istio.io/rev": "default"})
    without = retirement_check(spec(), [injected], sources(templates=[GATEWAY, pinned]))
    assert {kind for kind, _, _ in kinds(without)} == {"Pod", "Namespace", "Deployment"}

    check = retirement_check(spec(default="1-39-3"), [injected], sources(templates=[GATEWAY, pinned]))
    assert [leftover.kind for leftover in check.blocking] == ["Pod"]
    assert "runs revision default's proxy" in check.message
    assert "declare the tag `default`" not in check.message


@pytest.mark.parametrize("phase, blocks", [("Running", True), ("Succeeded", False)])
def test_pods_the_unrevisioned_istiod_injected_hold_it_back_while_they_run(phase, blocks):
    pod = in_phase(on_revision(recorded()[0], "default", "1.39.3"), phase)
    check = retirement_check(spec(), [pod], sources(namespaces=[]))
    assert check.refused is blocks and len(check.leftovers) == 1


def test_nothing_left_says_how_to_uninstall_it():
    on_meshlifts = on_revision(recorded()[0], "1-39-3", "1.39.3")
    check = retirement_check(spec(), [on_meshlifts], sources(namespaces=NAMESPACES[:2], templates=[
        _template("Deployment", "shop", "web", {"sidecar.istio.io/inject": "true"})]))  # shop's label decides
    assert not check.refused and check.leftovers == []
    assert check.message == ("Nothing depends on the unrevisioned istiod (istio-system/istiod) any more: "
                             "uninstall it (helm uninstall istiod -n istio-system).")


def test_retire_check_refuses_with_exit_2_naming_each_dependent_then_says_how_to_uninstall(project, capsys):  # noqa: F811
    from rollout import cli
    from rollout.entry import run

    project.cluster.sources = sources(templates=[GATEWAY])
    assert run(cli.app, ["retire-check", "-s", "dev"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "Retirement refused: the unrevisioned istiod (istio-system/istiod) still serves these" in out
    assert "Namespace legacy: labelled istio-injection=enabled" in out
    assert "Deployment ingress/istio-ingressgateway" in out

    project.cluster.sources = sources(namespaces=NAMESPACES[:2])
    assert run(cli.app, ["retire-check", "-s", "dev", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "meshlift.retire/v1" and document["refused"] is False
    assert document["leftovers"] == [] and "helm uninstall istiod -n istio-system" in document["message"]
