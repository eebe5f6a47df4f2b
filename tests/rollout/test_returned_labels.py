"""An `istio-injection` label put back on an enrolled namespace mid-run: warned before each stage and by status."""

from __future__ import annotations

import json

from rollout import cli
from rollout.entry import run
from rollout.phases import Phase
from tests.rollout.test_cli import project  # noqa: F401 (the CLI fixture)
from tests.rollout.test_namespace_checks import enrolled, owns_label

HEALED = enrolled("shop", labels={"istio-injection": "enabled"},
                  managed=[owns_label("argocd-application-controller", "Update", "istio-injection")])


def test_a_label_a_self_heal_puts_back_after_install_is_warned_about_once_before_the_next_stage(rig):
    clean = enrolled("shop", labels={}, managed=[])
    listings = []

    def namespaces():
        listings.append(rig.engine.ups)
        return [HEALED if rig.engine.ups else clean]  # Argo CD's self-heal, right after the install's `up`

    rig.cluster.namespaces = namespaces
    state = rig.run()

    assert state.phase is Phase.SUCCEEDED
    assert listings[:3] == [0, 1, 2], "read before every stage and gate, the first one included"
    warnings = [data["message"] for kind, data in rig.reporter.events if kind == "warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("namespace shop: its istio-injection=enabled label is back since meshlift "
                                  "enrolled it, set by 'argocd-application-controller' (Update)")
    applies = [i for i, (kind, data) in enumerate(rig.reporter.events) if kind == "apply" and data["status"] == "started"]
    warned = next(i for i, (kind, _) in enumerate(rig.reporter.events) if kind == "warning")
    assert applies[0] < warned < applies[1], "warned before the canary stage, the first one after the self-heal"


def test_status_says_which_enrolled_namespace_got_its_label_back_and_who_set_it(project, capsys):  # noqa: F811
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    capsys.readouterr()
    project.cluster.namespace_list = [HEALED]
    assert run(cli.app, ["status", "-s", "dev", "--json"]) == 0
    (warning,) = json.loads(capsys.readouterr().out)["warnings"]
    assert "namespace shop: its istio-injection=enabled label is back" in warning
    assert "'argocd-application-controller' (Update)" in warning and "kubectl label namespace shop" in warning
    assert run(cli.app, ["status", "-s", "dev"]) == 0
    assert "‼ namespace shop: its istio-injection=enabled label is back" in capsys.readouterr().out


def test_plan_notes_a_label_put_back_by_hand_and_leaves_a_declared_one_to_the_refusal(project, capsys):  # noqa: F811
    declared = enrolled("pay", labels={"istio-injection": "enabled"},
                        managed=[owns_label("kustomize-controller", "Apply", "istio-injection")])
    project.cluster.namespace_list = [HEALED, declared]
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    cluster = json.loads(capsys.readouterr().out)["cluster"]
    assert [note for note in cluster["notes"] if "label is back" in note] == [
        note for note in cluster["notes"] if note.startswith("namespace shop: its istio-injection=enabled")]
    assert len([note for note in cluster["notes"] if "label is back" in note]) == 1
    assert [problem for problem in cluster["problems"] if "namespace 'pay'" in problem], cluster["problems"]


def test_status_says_when_it_could_not_read_the_cluster_and_still_reports_the_run(project, capsys):  # noqa: F811
    from rollout.errors import PlatformError

    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    capsys.readouterr()
    project.cluster.fail_with = PlatformError("cannot list what runs in the cluster: connection refused")
    assert run(cli.app, ["status", "-s", "dev", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["run"]["phase"] == "Succeeded"
    assert document["warnings"] == ["cannot check the enrolled namespaces' istio-injection labels: cannot list what "
                                    "runs in the cluster: connection refused"]
