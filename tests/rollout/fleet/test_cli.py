"""`meshlift fleet ...` through `main()`: exit codes, JSON documents, errors that change nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from rollout import cli
from rollout.entry import run
from tests.rollout.doubles import mesh_config

FLEET = {"rings": [{"name": "dev", "stacks": ["dev"], "soak": "1m"},
                   {"name": "prod", "stacks": ["prod"], "maxParallel": 1, "gate": {"window": "4s"}}]}


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "stacks").mkdir()
    for stack in ("dev", "prod"):
        (tmp_path / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": mesh_config()}))
    (tmp_path / "stacks" / "fleet.yaml").write_text(yaml.safe_dump(FLEET))
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    return tmp_path


def test_help_teaches_the_commands_and_exit_codes():
    assert run(cli.app, ["fleet", "--help"]) == 0


def test_plan_validates_every_stack_and_shows_the_rings_as_json(project, capsys):
    assert run(cli.app, ["fleet", "plan", "--to", "1.40.0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "meshlift.fleet/v1"
    assert [r["name"] for r in document["rings"]] == ["dev", "prod"]
    prod = document["rings"][1]
    assert prod["soak_s"] == 0 and prod["gate"]["window"] == 4.0 and prod["gate"]["overrides"] == {"window": 4.0}
    assert prod["stacks"][0]["stages"] == ["install", "canary", "promote wave 1/2", "promote wave 2/2", "cleanup"]


def test_a_version_one_stack_cannot_take_is_exit_2_naming_the_stack_file(project, capsys):
    config = mesh_config(**{"meshlift:revisions": [{"version": "1.36.0"}], "meshlift:tags": {"stable": "1-36-0"}})
    (project / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))

    assert run(cli.app, ["fleet", "upgrade", "--to", "1.40.0"]) == 2

    err = capsys.readouterr().err
    assert "stacks/Pulumi.prod.yaml: meshlift:rollout.to: 1.36.0 -> 1.40.0 spans more than 2 minor" in err
    assert "Traceback" not in err and not (project / ".meshlift").exists()


def test_a_missing_stack_file_and_a_bad_fleet_file_are_exit_2(project, capsys):
    (project / "stacks" / "Pulumi.prod.yaml").unlink()
    assert run(cli.app, ["fleet", "plan", "--to", "1.40.0"]) == 2
    assert "no stack file stacks/Pulumi.prod.yaml" in capsys.readouterr().err

    (project / "stacks" / "fleet.yaml").write_text(yaml.safe_dump({"rings": [{"name": "dev", "stacks": ["dev"],
                                                                              "maxParalel": 2}]}))
    assert run(cli.app, ["fleet", "plan", "--to", "1.40.0"]) == 2
    assert "stacks/fleet.yaml: invalid fleet file (1 problem(s)); nothing changed: rings[0].maxParalel: unknown key (did you mean 'maxParallel'?)" \
        in capsys.readouterr().err.replace("\n", " ")


def test_usage_errors_of_the_rehearsal_options(project, capsys):
    assert run(cli.app, ["fleet", "upgrade", "--to", "1.40.0", "--fault", "5xx@dev"]) == 2
    assert "--fault needs --rehearse" in capsys.readouterr().err
    assert run(cli.app, ["fleet", "upgrade", "--rehearse", "--fault", "meteor@dev"]) == 2
    assert run(cli.app, ["fleet", "upgrade", "--rehearse", "--fault", "5xx@nowhere"]) == 2
    assert run(cli.app, ["fleet", "upgrade", "--rehearse", "--to", "1.41.0"]) == 2
    assert run(cli.app, ["fleet", "upgrade"]) == 2  # --to is required on real stacks


def test_status_and_resume_without_a_fleet_run(project, capsys):
    assert run(cli.app, ["fleet", "status", "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert empty["schema"] == "meshlift.fleet/v1" and empty["fleet"] == "fleet"
    assert empty["run"] is None and empty["rings"] == [] and empty["error"] is None, "the same keys in every outcome"
    assert run(cli.app, ["fleet", "resume"]) == 2
    assert "no unfinished run to resume" in capsys.readouterr().err
    assert run(cli.app, ["fleet", "resume", "--json"]) == 2
    refused = json.loads(capsys.readouterr().out)
    assert set(refused) == set(empty) and refused["schema"] == "meshlift.fleet/v1"
    assert refused["error"]["code"] == 2 and "no unfinished run to resume" in refused["error"]["message"]


def test_fleet_errors_with_json_keep_the_fleet_schema_and_list_each_problem(project, capsys):
    assert run(cli.app, ["fleet", "plan", "--to", "9.99.0", "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "meshlift.fleet/v1" and document["error"]["code"] == 2
    assert document["error"]["details"], "each problem is a detail, not packed into the message"
    assert all("Pulumi." in detail for detail in document["error"]["details"])


def test_status_of_an_interrupted_fleet_shows_rings_stacks_and_phases(project, capsys):
    from rollout.fleet.driver import FleetDriver
    from rollout.fleet.model import load_fleet
    from rollout.fleet.view import JsonFleetView
    from tests.rollout.fleet.conftest import RecordedStacks, StackGate

    source = RecordedStacks(project, ["dev", "prod"], name="fleet")
    driver = FleetDriver(fleet=load_fleet(project / "stacks" / "fleet.yaml"), fleet_name="fleet", source=source,
                         view=JsonFleetView(), gate=StackGate(interrupt_on=("dev", "wave 1")), retry_wait_s=0)
    with pytest.raises(KeyboardInterrupt):
        driver.run("1.40.0")

    assert run(cli.app, ["fleet", "status"]) == 0
    out = capsys.readouterr().out
    assert "fleet fleet: upgrade to 1.40.0 on kubernetes — Running" in out
    assert "Promoting" in out and "NotStarted" in out and "meshlift fleet resume" in out
    assert run(cli.app, ["fleet", "status", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"], r["soak_s"]) for r in document["rings"]] == [("dev", "upgrading", 60.0),
                                                                                  ("prod", "pending", 0.0)]
    assert document["rings"][0]["stacks"][0]["phase"] == "Promoting" and document["exit_code"] is None
