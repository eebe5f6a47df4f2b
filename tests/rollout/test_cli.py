"""Exit codes and what each command prints, through `main()` (where errors become exit codes)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from rollout import cli
from rollout.entry import run
from rollout.platforms.kubernetes import KubernetesPlatform
from tests.rollout.doubles import FakeCluster, RecordingEngine, ScriptedGate, fake_discovery, mesh_config


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project dir with stacks/Pulumi.dev.yaml, a recording engine and a scripted gate."""
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": mesh_config()}))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    engine = RecordingEngine("dev", config=mesh_config())
    engine.up(message="initial")
    engine.calls.clear()
    gate = ScriptedGate()
    monkeypatch.setattr(cli, "_kubernetes", lambda stack: KubernetesPlatform(engine, discover=fake_discovery,
                                                                                  live=FakeCluster()))
    monkeypatch.setattr("rollout.gates.ChecksGate", lambda: gate)
    # The recording engine needs no Pulumi CLI, backend or cluster (tests/rollout/test_prerequisites.py).
    monkeypatch.setattr("rollout.prerequisites.check_cluster_prerequisites", lambda *args, **kwargs: None)
    cluster = FakeCluster()  # what `upgrade` and `plan` read before anything changes (rollout/preflight.py)
    monkeypatch.setattr("rollout.preflight.live_reader", lambda config, **kwargs: cluster)
    return type("Project", (), {"path": tmp_path, "engine": engine, "gate": gate, "cluster": cluster})


def _write(project, config):
    (project.path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))


def test_help_teaches_with_examples_and_exit_codes():
    result = CliRunner().invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    assert "meshlift rehearse --fault 5xx" in result.output and "3 rollback failed" in result.output


def test_validate_ok_and_invalid_config_lists_every_key_path(project, capsys):
    assert run(cli.app, ["validate", "-s", "dev"]) == 0
    _write(project, {**mesh_config(), "meshlift:gates": {"windw": "5s", "interval": "fast"}})
    assert run(cli.app, ["validate", "-s", "dev"]) == 2
    err = capsys.readouterr().err
    assert "meshlift:gates.windw: unknown key (did you mean 'window'?)" in err
    assert "meshlift:gates.interval" in err and "nothing changed" in err


def test_unknown_stack_is_a_usage_error(project, capsys):
    assert run(cli.app, ["validate", "-s", "nope"]) == 2
    assert "stacks here: dev" in capsys.readouterr().err


def test_plan_lists_stages_changes_and_gates(project, capsys):
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    stages = json.loads(capsys.readouterr().out)["stages"]
    assert [s["stage"] for s in stages] == ["install", "canary", "promote wave 1/2", "promote wave 2/2", "cleanup"]
    assert "restart pay/api (wave 2): 1-39-3 -> 1-40-0" in stages[3]["changes"]
    assert stages[1]["min_s"] == pytest.approx(0.2)
    assert run(cli.app, ["plan", "-s", "dev"]) == 2  # no rollout in the config and no --to


def test_upgrade_promoted_exits_0(project):
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    assert project.engine.named("set_config")[-1]["meshlift:rollout"]["stage"] == "cleanup"


def test_upgrade_gate_failure_exits_1_and_names_the_gate(project, capsys):
    project.gate.outcomes["wave 1"] = "failed"
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["phase"] == "RolledBack" and document["failure"]["gate"] == "wave 1"


def test_failed_rollback_exits_3(project):
    project.gate.outcomes["canary"] = "failed"
    project.engine.fail_up_on = {4, 5, 6}  # the initial up counted as 1; every rollback up fails
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 3


def test_invalid_upgrade_changes_nothing_and_exits_2(project, capsys):
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.38.0"]) == 2
    assert "not newer than 1.39.3" in capsys.readouterr().err
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "banana"]) == 2
    assert project.engine.named("set_config") == [] and project.engine.named("up") == []


def test_status_and_history_after_a_run(project, capsys):
    run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"])
    capsys.readouterr()
    assert run(cli.app, ["status", "-s", "dev", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["phase"] == "Succeeded"
    assert run(cli.app, ["history", "-s", "dev", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert entries[0]["describe"] == "1.39.3 -> 1.40.0 stage cleanup"


def test_rollback_by_hand_to_an_update_number(project, capsys):
    run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"])
    capsys.readouterr()
    assert run(cli.app, ["rollback", "-s", "dev", "--to", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rolled_back_to"] == 1
    assert "meshlift:rollout" in project.engine.named("remove_config")[-1], \
        "update 1 had no rollout: the key is removed, not left behind"
    assert run(cli.app, ["rollback", "-s", "dev", "--to", "99"]) == 2


def test_promote_without_a_run_is_a_usage_error(project):
    assert run(cli.app, ["promote", "-s", "dev"]) == 2


def test_rehearse_rejects_an_unknown_fault(project, capsys):
    assert run(cli.app, ["rehearse", "--fault", "meteor"]) == 2
    assert "5xx" in capsys.readouterr().err


def test_without_the_pulumi_cli_upgrade_is_an_environment_error_and_changes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": mesh_config()}))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` anywhere

    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 2
    captured = capsys.readouterr()
    assert "the Pulumi CLI (`pulumi`) is not on PATH" in captured.err and "Nothing was recorded" in captured.err
    assert json.loads(captured.out)["error"]["code"] == 2
    assert not (tmp_path / ".meshlift").exists(), "no run was recorded"
    assert yaml.safe_load((tmp_path / "stacks" / "Pulumi.dev.yaml").read_text()) == {"config": mesh_config()}


def test_upgrade_refuses_create_true_over_an_existing_namespace_before_anything_changes(project, capsys):
    project.cluster.namespace_list = [{"metadata": {"name": "pay", "labels": {"team": "pay"}}}]
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0"]) == 2
    err = capsys.readouterr().err
    assert "conflicts with what the cluster already holds (1 problem(s)); nothing changed" in err
    assert "meshlift:namespaces[1].create: namespace 'pay' already exists and was not created by meshlift" in err
    assert "Pulumi.dev.yaml:" in err  # the line of the key
    assert project.engine.calls == [] and not (project.path / ".meshlift" / "dev" / "run.json").exists()


def test_plan_shows_what_unlisting_a_namespace_does_and_what_upgrade_would_refuse(project, capsys):
    project.cluster.namespace_list = [
        {"metadata": {"name": "pay"}},
        {"metadata": {"name": "legacy", "labels": {"istio.io/rev": "stable"},
                      "managedFields": [{"manager": "meshlift-enroll-legacy", "operation": "Apply"}]}},
    ]
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    cluster = json.loads(capsys.readouterr().out)["cluster"]
    assert cluster["read"] is True
    assert [n.split(":")[0] for n in cluster["notes"]] == ["namespace legacy is no longer listed"]
    assert cluster["problems"][0].startswith("meshlift:namespaces[1].create: namespace 'pay' already exists")


def test_plan_without_a_reachable_cluster_still_plans_and_says_so(project, capsys):
    from rollout.errors import PlatformError

    project.cluster.fail_with = PlatformError("cannot list what runs in the cluster: connection refused")
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0"]) == 0
    out = capsys.readouterr().out
    assert "cluster not read (cannot list what runs in the cluster: connection refused)" in " ".join(out.split())


def _deny_all(revision: str) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "plural": "authorizationpolicies",
            "metadata": {"namespace": "shop", "name": "deny-all", "labels": {"istio.io/rev": revision}}}


def test_upgrade_refuses_while_istio_config_is_pinned_to_the_old_revision(project, capsys):
    project.cluster.custom_list = [_deny_all("1-39-3"), {**_deny_all("1-40-0"), "metadata": {
        "namespace": "pay", "name": "on-new", "labels": {"istio.io/rev": "1-40-0"}}}]
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("meshlift:pinnedConfig: 1 Istio config object(s) carry istio.io/rev=1-39-3: "
            "AuthorizationPolicy shop/deny-all. istiod 1-40-0 ignores them") in err
    assert "meshlift:pinnedConfig: leave" in err
    assert project.engine.calls == []


def test_upgrade_goes_on_when_the_stack_leaves_pinned_config_and_plan_lists_it(project, capsys):
    project.cluster.custom_list = [_deny_all("1-39-3")]
    _write(project, {**mesh_config(), "meshlift:pinnedConfig": "leave"})
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    cluster = json.loads(capsys.readouterr().out)["cluster"]
    assert cluster["problems"] == []
    assert cluster["notes"] == ["AuthorizationPolicy shop/deny-all carries istio.io/rev=1-39-3: it stops applying "
                                "to workloads once they run 1-40-0 (meshlift:pinnedConfig: leave)"]
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
