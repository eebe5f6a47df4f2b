"""The real Automation API adapter's translation code (no Pulumi CLI on these machines)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from pulumi.automation import UpdateSummary

from rollout.errors import PlatformError
from rollout.platforms.automation import (
    AutomationEngine,
    backend_url,
    config_json,
    entry_from_summary,
    workspace_env,
)


def test_default_backend_is_a_file_backend_inside_the_project(tmp_path):
    assert backend_url(tmp_path, {}) == f"file://{tmp_path.resolve()}/.pulumi-state"
    assert backend_url(tmp_path, {"PULUMI_BACKEND_URL": "s3://bucket"}) == "s3://bucket"
    assert backend_url(tmp_path, {"MESHLIFT_BACKEND_URL": "https://api.pulumi.com",
                                  "PULUMI_BACKEND_URL": "s3://bucket"}) == "https://api.pulumi.com"


def test_file_backend_gets_its_directory_and_a_passphrase(tmp_path):
    env = workspace_env(tmp_path, {})
    assert (tmp_path / ".pulumi-state").is_dir()
    assert env["PULUMI_CONFIG_PASSPHRASE"] == ""
    assert "PULUMI_CONFIG_PASSPHRASE" not in workspace_env(tmp_path, {"PULUMI_BACKEND_URL": "s3://b"})


def test_config_json_keeps_objects_as_objects_for_set_all():
    document = json.loads(config_json({"meshlift:rollout": {"from": "1.39.3", "stage": "canary"},
                                       "meshlift:flag": True, "aws:region": "eu-west-1"}))
    assert document["meshlift:rollout"]["objectValue"] == {"from": "1.39.3", "stage": "canary"}
    assert json.loads(document["meshlift:rollout"]["value"]) == {"from": "1.39.3", "stage": "canary"}
    assert document["meshlift:flag"] == {"value": "true", "secret": False}
    assert document["aws:region"] == {"value": "eu-west-1", "secret": False}


def test_history_entry_from_an_update_summary_keeps_config_and_hides_secrets():
    summary = UpdateSummary(
        kind="update", start_time=datetime(2026, 11, 21, 10, 0), message="meshlift: canary",
        environment={}, result="succeeded", version=12,
        config={"meshlift:rollout": {"value": '{"from":"1.39.3","to":"1.40.0","stage":"canary"}', "secret": False},
                "meshlift:token": {"secret": True}},
        resource_changes={"update": 2},
    )
    entry = entry_from_summary(summary)
    assert (entry.version, entry.kind, entry.result, entry.good) == (12, "update", "succeeded", True)
    assert entry.stage.value == "canary"
    assert entry.config["meshlift:token"] == "[secret]" and entry.secret_keys == {"meshlift:token"}


class _FakeWorkspace:
    def __init__(self):
        self.env_vars = {"PULUMI_BACKEND_URL": "file:///x"}


class _FakeStack:
    """Stands in for automation.Stack; records what the adapter asked for."""

    def __init__(self, fail: bool = False):
        self.workspace = _FakeWorkspace()
        self.fail = fail
        self.seen_env = None
        self.calls = []

    def up(self, **kwargs):
        self.seen_env = dict(self.workspace.env_vars)
        self.calls.append(("up", kwargs["message"]))
        if self.fail:
            from pulumi.automation import CommandError

            raise CommandError(type("R", (), {"stdout": "", "stderr": "error: kube unreachable", "code": 255,
                                              "__str__": lambda s: "r"})())
        summary = UpdateSummary(kind="update", start_time=datetime.now(), message=kwargs["message"],
                                environment={}, config={}, result="succeeded", version=3,
                                resource_changes={"create": 1})
        return type("UpResult", (), {"summary": summary})()

    def set_all_config_json(self, text):
        self.calls.append(("set_all_config_json", json.loads(text)))


def _engine(stack) -> AutomationEngine:
    engine = AutomationEngine(Path("/nonexistent"), "dev")
    engine._stack = stack
    return engine


def test_up_runs_with_the_gated_env_only_for_that_update():
    stack = _FakeStack()
    result = _engine(stack).up(message="meshlift: canary", env={"MESHLIFT_GATED": "1"})
    assert (result.version, result.result, result.changes) == (3, "succeeded", {"create": 1})
    assert stack.seen_env["MESHLIFT_GATED"] == "1"
    assert "MESHLIFT_GATED" not in stack.workspace.env_vars


def test_a_failed_up_becomes_a_platform_error_with_the_cli_output():
    with pytest.raises(PlatformError, match="pulumi up failed"):
        _engine(_FakeStack(fail=True)).up(message="m")


def test_set_config_goes_through_set_all_json():
    stack = _FakeStack()
    _engine(stack).set_config({"meshlift:rollout": {"stage": "install"}})
    assert stack.calls == [("set_all_config_json", {"meshlift:rollout": {
        "value": '{"stage": "install"}', "objectValue": {"stage": "install"}, "secret": False}})]


def test_updates_of_a_backend_that_does_not_number_them_are_numbered_by_position():
    from rollout.history import HistoryEntry
    from rollout.platforms.automation import numbered

    # What the file backend's `pulumi stack history --json` gives: newest first, every version 0.
    raw = [HistoryEntry(version=0, kind="update", result=r, config={}, message=m)
           for r, m in (("succeeded", "canary"), ("succeeded", "install"), ("succeeded", "initial"))]
    assert [(e.version, e.message) for e in numbered(raw, complete=True)] == [
        (3, "canary"), (2, "install"), (1, "initial")]
    cloud = [HistoryEntry(version=v, kind="update", result="succeeded", config={}, message="") for v in (14, 13)]
    assert numbered(cloud, complete=False) == cloud, "numbers a backend gives are kept"
