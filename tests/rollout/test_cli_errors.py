"""The CLI's one error path, promote/abandon at the command line, prerequisites before state.

Usage errors run the installed `meshlift` entry point in a subprocess (what a user
runs); the rest go through `rollout.entry.run` with the recording engine of test_cli.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rollout import cli
from rollout.entry import run
from rollout.journal import Journal, RunState
from rollout.phases import Phase
from rollout.prerequisites import check_cluster_prerequisites, kube_context_problem, pulumi_cli_problem
from rollout.errors import PrerequisiteMissing
from tests.rollout.doubles import ScriptedGate, mesh_config
from tests.rollout.test_cli import project  # noqa: F401 - the fixture

MESHLIFT = str(Path(sys.executable).with_name("meshlift"))


def _meshlift(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MESHLIFT, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "message"), [
    ([], "meshlift: no command given; commands: validate, plan, upgrade, promote, rollback, abandon, status"),
    (["vaildate"], "meshlift: no such command 'vaildate'. Did you mean 'validate'? Try 'meshlift --help'."),
    (["plan", "--bogus"], "meshlift plan: no such option: --bogus. Try 'meshlift plan --help'."),
    (["plan", "-s"], "option '-s' requires a value"),
])
def test_usage_errors_are_one_paragraph_exit_2_no_traceback(args, message):
    done = _meshlift(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, "one paragraph"


@pytest.mark.parametrize(("args", "message"), [
    (["rehearse", "--approve-from", "promote"], "× --approve-from: only with --require-approval"),
    (["rehearse", "--approval-timeout", "5m"], "× --approval-timeout: only with --require-approval"),
    (["rehearse", "--cluster", "--require-approval", "--approve-from", "promote"],
     "× --require-approval --approve-from: the cluster rehearsal does not wait for an approval"),
])
def test_approval_options_that_would_be_ignored_are_refused(args, message):
    done = _meshlift(*args)
    assert done.returncode == 2 and done.stderr.startswith(message), done.stderr


def test_version_prints_the_package_version():
    done = _meshlift("--version")
    assert done.returncode == 0 and done.stdout.strip() == "meshlift 0.1.0"


def test_a_bug_prints_one_line_and_writes_the_trace_to_a_file(project, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MESHLIFT_CRASH_DIR", str(tmp_path / "crashes"))

    def broken(self):
        raise ZeroDivisionError("the orchestrator divided by zero")

    monkeypatch.setattr(Journal, "load", broken)
    assert run(cli.app, ["status", "-s", "dev"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("× internal error: ZeroDivisionError: the orchestrator divided by zero (a bug in meshlift")
    assert "Traceback" not in err
    (trace,) = (tmp_path / "crashes").iterdir()
    assert str(trace) in err and "Traceback" in trace.read_text() and "def broken" not in err


def test_a_stack_file_problem_names_the_line_of_each_key(project, capsys):
    (project.path / "stacks" / "Pulumi.dev.yaml").write_text(
        "config:\n  meshlift:revisions:\n    - version: 1.39.3\n  meshlift:gates:\n    windw: 5s\n"
        "    interval: fast\n")
    assert run(cli.app, ["validate", "-s", "dev"]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml:5: meshlift:gates.windw: unknown key (did you mean 'window'?)" in err
    assert "Pulumi.dev.yaml:6: meshlift:gates.interval: 'fast' is not a duration" in err


def test_a_problem_of_the_target_version_is_put_on_to_not_on_a_line_of_the_stack_file(project, capsys):
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.10.0"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("× --to 1.10.0: the stack cannot be upgraded to this version (2 problem(s)); nothing changed")
    assert "meshlift:rollout.to: 1.10.0 is not newer than 1.39.3" in err
    assert "Pulumi.dev.yaml:" not in err, "no line of the file holds 1.10.0"


def test_validate_json_has_the_same_shape_valid_or_not(project, capsys):
    assert run(cli.app, ["validate", "-s", "dev", "--json"]) == 0
    good = json.loads(capsys.readouterr().out)
    (project.path / "stacks" / "Pulumi.dev.yaml").write_text(
        yaml.safe_dump({"config": {**mesh_config(), "meshlift:gates": {"windw": "5s"}}}))
    assert run(cli.app, ["validate", "-s", "dev", "--json"]) == 2
    bad = json.loads(capsys.readouterr().out)
    assert list(good) == list(bad) and good["error"] is None and bad["error"]["code"] == 2
    assert bad["problems"][0]["key"] == "meshlift:gates.windw" and bad["problems"][0]["line"] is not None


def test_status_json_has_the_same_shape_with_and_without_a_run(project, capsys):
    assert run(cli.app, ["status", "-s", "dev", "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"])
    capsys.readouterr()
    assert run(cli.app, ["status", "-s", "dev", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert list(empty) == list(full) == ["schema", "stack", "run", "events", "warnings", "error"]
    assert empty["run"] is None and full["run"]["phase"] == "Succeeded"
    assert full["run"]["started_at"].endswith("Z") and full["events"][0]["ts"].endswith("Z")


# ---- promote --------------------------------------------------------------------------------

def _stop_while_waiting(project, monkeypatch):
    """Run an upgrade that requires approval and is interrupted while waiting (Ctrl-C)."""
    monkeypatch.setattr("rollout.console.stdin_can_answer", lambda stream=None: False)
    project.gate.interrupt_on = None

    class Interrupt:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def poll(self):
            raise KeyboardInterrupt

    monkeypatch.setattr("rollout.console.StdinApproval", Interrupt)
    monkeypatch.setattr("rollout.console.stdin_can_answer", lambda stream=None: True)
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--require-approval", "--json"]) == 130
    state = Journal.for_stack(project.path, "dev").load()
    assert state.phase is Phase.WAITING_APPROVAL and state.awaiting["gate"] == "canary"
    monkeypatch.setattr("rollout.console.stdin_can_answer", lambda stream=None: False)
    return state


def test_promote_on_a_run_not_waiting_is_refused_and_approves_nothing(project, capsys):
    journal = Journal.for_stack(project.path, "dev")
    state = RunState.new(stack="dev", command="upgrade", params={"to": "1.40.0"}, waves_total=2)
    journal.save(state)
    journal.transition(state, Phase.INSTALLING)

    assert run(cli.app, ["promote", "-s", "dev", "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"run {state.run_id} on stack 'dev' is at Installing, not waiting for approval: nothing approved" in err
    assert not journal.approval_path.exists()
    assert not [e for e in journal.events() if e["event"] == "approval"]


def test_promote_names_what_it_approves_records_who_and_resumes(project, monkeypatch, capsys):
    state = _stop_while_waiting(project, monkeypatch)
    capsys.readouterr()

    assert run(cli.app, ["promote", "-s", "dev", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"approved run {state.run_id} (upgrade to 1.40.0), gate canary: canary passed" in out
    journal = Journal.for_stack(project.path, "dev")
    assert journal.load().phase is Phase.SUCCEEDED
    approved = next(e for e in journal.events() if e.get("status") == "approved")
    assert approved["via"] == "meshlift promote" and "@" in approved["by"] and approved["at"].endswith("Z")


def test_promote_of_another_run_id_is_refused(project, monkeypatch, capsys):
    _stop_while_waiting(project, monkeypatch)
    assert run(cli.app, ["promote", "-s", "dev", "--run", "0123456789ab", "--yes"]) == 2
    assert "--run 0123456789ab: the run waiting on stack 'dev' is" in capsys.readouterr().err


def test_upgrade_approved_through_a_pipe(project, monkeypatch):
    read_end, write_end = os.pipe()
    os.write(write_end, b"y\n")
    os.close(write_end)
    with os.fdopen(read_end) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--require-approval", "--json"]) == 0
    approved = next(e for e in Journal.for_stack(project.path, "dev").events() if e.get("status") == "approved")
    assert approved["via"] == "prompt"


def test_without_a_terminal_or_pipe_an_approval_run_refuses_to_start(project, monkeypatch, capsys):
    with open(os.devnull) as devnull:
        monkeypatch.setattr(sys, "stdin", devnull)
        assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--require-approval"]) == 2
    assert "stdin is neither a terminal nor a pipe" in capsys.readouterr().err
    assert not (project.path / ".meshlift").exists() and project.engine.named("up") == []


# ---- abandon --------------------------------------------------------------------------------

def test_abandon_gives_up_a_run_that_applied_nothing_and_frees_the_stack(project, capsys):
    journal = Journal.for_stack(project.path, "dev")
    stuck = RunState.new(stack="dev", command="upgrade", params={"to": "1.39.9"}, waves_total=2)
    journal.save(stuck)
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0"]) == 2, "blocked by the stuck run"
    capsys.readouterr()

    assert run(cli.app, ["abandon", "-s", "dev"]) == 0
    assert f"abandoned run {stuck.run_id}" in capsys.readouterr().out
    assert journal.load().phase is Phase.ABANDONED
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0


def test_abandon_refuses_a_run_that_may_have_changed_the_mesh(project, capsys):
    journal = Journal.for_stack(project.path, "dev")
    state = RunState.new(stack="dev", command="upgrade", params={"to": "1.40.0"}, waves_total=2)
    journal.save(state)
    journal.transition(state, Phase.INSTALLING)
    assert run(cli.app, ["abandon", "-s", "dev"]) == 2
    assert "may have changed the mesh" in capsys.readouterr().err
    assert journal.load().phase is Phase.INSTALLING


# ---- prerequisites --------------------------------------------------------------------------

def _kubeconfig(path: Path, *contexts: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0] if contexts else "",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u"}} for name in contexts]}))
    return path


def test_prerequisites_pass_with_pulumi_on_path_and_the_stack_context(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "pulumi").chmod(0o755)
    env = {"PATH": str(bin_dir), "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", "kind-dev"))}
    check_cluster_prerequisites(tmp_path, {"kubernetes:context": "kind-dev"}, environ=env)


def test_each_missing_prerequisite_is_named(tmp_path):
    env = {"PATH": str(tmp_path), "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", "kind-other"))}
    assert "the Pulumi CLI (`pulumi`) is not on PATH" in pulumi_cli_problem(env)
    problem = kube_context_problem({"kubernetes:context": "kind-dev"}, env)
    assert problem == ("the stack's kubernetes:context 'kind-dev' is not a context of the kubeconfig "
                       "(contexts: kind-other)")
    with pytest.raises(PrerequisiteMissing, match="Nothing was recorded or changed"):
        check_cluster_prerequisites(tmp_path, {"kubernetes:context": "kind-dev"}, environ=env)
    env["KUBECONFIG"] = str(tmp_path / "missing")
    assert "no Kubernetes context" in kube_context_problem({}, env)


def test_the_stacks_own_kubeconfig_is_read_as_the_provider_reads_it_a_path_or_its_content(tmp_path):
    env = {"PATH": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}  # and no ~/.kube/config is read
    path = _kubeconfig(tmp_path / "stack-kubeconfig", "kwok-dev")
    assert kube_context_problem({"kubernetes:kubeconfig": str(path), "kubernetes:context": "kwok-dev"}, env) is None
    inline = {"kubernetes:kubeconfig": path.read_text(), "kubernetes:context": "kwok-dev"}
    assert kube_context_problem(inline, env) is None
    assert "'kwok-prod' is not a context" in kube_context_problem({**inline, "kubernetes:context": "kwok-prod"}, env)
    problem = kube_context_problem({"kubernetes:kubeconfig": str(tmp_path / "nope")}, env)
    assert "no Kubernetes context" in problem and "the stack's kubernetes:kubeconfig" in problem


def test_text_output_shows_no_python_reprs(project, capsys):
    journal = Journal.for_stack(project.path, "dev")
    state = RunState.new(stack="dev", command="rehearse", params={"to": "1.40.0", "approval": True, "fault": None},
                         waves_total=2)
    state.failure = {"gate": "canary", "message": "Halt", "checks": []}
    journal.save(state)
    journal.append(state, "approval", status="waiting", samples={"gates": 3, "passed": 3, "last": None})
    assert run(cli.app, ["status", "-s", "dev"]) == 0
    out = capsys.readouterr().out
    for repr_text in ("True", "None", "{'", "['"):
        assert repr_text not in out, out
    assert "approval=yes" in out and "gates 3, last -, passed 3" in out
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0"]) == 2
    err = capsys.readouterr().err
    assert "approval=yes, fault=-, to=1.40.0" in err and "True" not in err
