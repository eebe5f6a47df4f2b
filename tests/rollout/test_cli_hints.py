"""What the CLI tells a user to do next works when typed; bad input from the environment is exit 2;
a command outside a project never reads meshlift's own example stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollout import cli
from rollout.entry import run
from rollout.journal import Journal, RunState
from rollout.phases import Phase
from tests.rollout.test_cli import project  # noqa: F401 - the fixture

MESHLIFT = str(Path(sys.executable).with_name("meshlift"))


def _meshlift(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MESHLIFT_PROJECT_DIR"}
    return subprocess.run([MESHLIFT, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _run(project_dir: Path, stack: str, command: str, params: dict, phase: Phase) -> RunState:
    journal = Journal.for_stack(project_dir, stack)
    state = RunState.new(stack=stack, command=command, params=params, waves_total=2)
    state.phase = phase
    if phase is Phase.WAITING_APPROVAL:
        state.awaiting = {"run": state.run_id, "gate": "canary", "evidence": "3 passing samples", "since": "now"}
    journal.save(state)
    return state


@pytest.mark.parametrize("value, says", [
    ("{window: 6s", "$MESHLIFT_REHEARSAL_GATES: not JSON"),
    ('{"windw": "6s"}', "meshlift:gates.windw: unknown key (did you mean 'window'?)"),
    ("[1, 2]", "expected a JSON object of meshlift:gates keys"),
])
def test_a_bad_rehearsal_gates_variable_is_exit_2_naming_it(tmp_path, value, says):
    done = _meshlift("rehearse", cwd=tmp_path, env={"MESHLIFT_REHEARSAL_GATES": value})

    assert done.returncode == 2, done.stderr
    assert "$MESHLIFT_REHEARSAL_GATES" in done.stderr and says in done.stderr, done.stderr
    assert "internal error" not in done.stderr and done.stdout == "", "no progress table before the error"
    assert not (tmp_path / ".meshlift").exists(), "nothing recorded"


def test_outside_a_project_a_stack_is_missing_not_taken_from_meshlifts_examples(tmp_path):
    done = _meshlift("validate", "-s", "prod", cwd=tmp_path)

    assert done.returncode == 2, done.stdout
    assert f"no stack file {tmp_path}/stacks/Pulumi.prod.yaml" in done.stderr
    assert "no meshlift project here" in done.stderr and "MESHLIFT_PROJECT_DIR" in done.stderr


def test_validate_names_the_file_it_read(project, capsys):  # noqa: F811
    assert run(cli.app, ["validate", "-s", "dev"]) == 0
    assert "stacks/Pulumi.dev.yaml is valid" in capsys.readouterr().out


def test_status_of_a_stack_that_does_not_exist_is_exit_2(project, capsys):  # noqa: F811
    assert run(cli.app, ["status", "-s", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no stack file" in err and "stacks here: dev" in err
    assert run(cli.app, ["status", "-s", "dev"]) == 0, "a stack with no run yet is fine"


def test_status_of_a_waiting_rehearsal_names_the_stack_in_every_command_it_suggests(project, capsys):  # noqa: F811
    _run(project.path, "rehearsal", "rehearse", {"to": "1.40.0", "fault": "5xx", "approval": True},
         Phase.WAITING_APPROVAL)

    assert run(cli.app, ["status", "-s", "rehearsal"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`meshlift promote -s rehearsal`" in out
    assert "`meshlift rehearse --fault 5xx --require-approval`" in out


def test_status_tells_a_run_driven_by_a_live_process_from_one_to_resume(project, capsys):  # noqa: F811
    _run(project.path, "dev", "upgrade", {"to": "1.40.0"}, Phase.PROMOTING)
    with Journal.for_stack(project.path, "dev").locked():
        assert run(cli.app, ["status", "-s", "dev"]) == 0
    held = " ".join(capsys.readouterr().out.split())
    assert "a meshlift process is driving this run now" in held and "resume" not in held

    assert run(cli.app, ["status", "-s", "dev"]) == 0
    assert "resume it with `meshlift upgrade -s dev --to 1.40.0`" in " ".join(capsys.readouterr().out.split())


def test_abandon_on_an_interrupted_rehearsal_suggests_the_rehearsal_not_a_rollback(project, capsys):  # noqa: F811
    _run(project.path, "rehearsal", "rehearse", {"to": "1.40.0", "fault": "none", "approval": False},
         Phase.PROMOTING)

    assert run(cli.app, ["abandon", "-s", "rehearsal"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "resume it with `meshlift rehearse`" in err and "rollback" not in err


def test_abandon_with_nothing_to_abandon_leaves_nothing_behind(project, capsys):  # noqa: F811
    assert run(cli.app, ["abandon", "-s", "dev"]) == 2
    assert not (project.path / ".meshlift" / "dev").exists()


def test_history_limit_is_never_negative_and_0_means_all(project, capsys):  # noqa: F811
    assert run(cli.app, ["history", "-s", "dev", "--limit", "-1", "--json"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert run(cli.app, ["history", "-s", "dev", "--limit", "0", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["entries"]
    assert run(cli.app, ["history", "-s", "dev", "--json"]) == 0
    assert every and every == json.loads(capsys.readouterr().out)["entries"]
