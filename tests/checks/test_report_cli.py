"""Presentation and the command line: rich report, JSON schema, exit codes."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from checks import render_report, report_to_json, run_checks
from checks.cli import EXIT_FAILED, EXIT_USAGE, app, load_settings
from localmesh import closed_port
from meshmodel.spec import GateSettings

from .recorded import FakeAdmin

runner = CliRunner()


async def failing_report():
    admin = FakeAdmin()
    admin.proxy("good")
    bad = admin.proxy("bad")
    bad.ready = (503, "DRAINING")
    bad.stats["server.dynamic_unknown_fields"] = 2
    async with admin.client() as client:
        return await run_checks([admin.target("good"), admin.target("bad", expected_version="1.40.0")], GateSettings(), client=client)


async def test_json_report_has_the_stable_schema() -> None:
    doc = json.loads(report_to_json(await failing_report()))
    assert doc["schema"] == "meshlift.checks/v2" and doc["success"] is False
    good, bad = doc["targets"]
    assert (good["success"], bad["success"]) == (True, False)
    keys = {"id", "category", "description", "result", "fatal", "no_data", "observed", "threshold", "message", "details", "hint"}
    for target in doc["targets"]:
        for check in target["checks"]:
            assert keys <= check.keys()
            assert check["result"] in {"pass", "warn", "fail", "error", "skip"}
    ready = next(c for c in bad["checks"] if c["id"] == "proxy-ready")
    assert ready["result"] == "fail" and ready["observed"] == "DRAINING" and ready["hint"].endswith("docs/checks.md#proxy-ready")


async def test_rich_report_groups_by_category_with_marks_and_hints() -> None:
    console = Console(record=True, width=120, color_system=None)
    console.print(render_report(await failing_report()))
    text = console.export_text()
    assert text.index("proxy\n-----") < text.index("configuration\n-------------") < text.index("traffic\n-------")
    assert "× proxy is ready (/ready LIVE): /ready answered 503 'DRAINING', not LIVE" in text
    flat = " ".join(text.split())
    assert "The proxy is not serving yet or is shutting down: look at its logs and at /ready on its admin " \
           "port. See https://" in flat and "docs/checks.md#proxy-ready" in flat
    assert "‼ dynamic config has no fields unknown to this proxy" in text
    assert "√ proxy is ready" in text  # the good proxy
    assert text.rstrip().endswith("Status check results: × failed")


def test_settings_from_stack_config_and_overrides(tmp_path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text("config:\n  meshlift:gates:\n    window: 2m\n    minSuccessRate: 0.95\n    skipChecks: [proxy-memory]\n")
    settings = load_settings(stack, {"min_requests": 50})
    assert (settings.window, settings.min_success_rate, settings.min_requests) == (120.0, 0.95, 50)
    assert settings.skip_checks == ["proxy-memory"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # no target at all
        ["--admin", "127.0.0.1:1", "--check", "no-such-check"],
        ["--admin", "127.0.0.1:1", "--min-success-rate", "1.5"],
        ["--admin", "127.0.0.1:1", "--window", "soon"],
        ["--admin", "127.0.0.1:1", "--namespace", "default"],  # both target forms
        ["--admin", "ftp://x"],
        ["--not-an-option"],
    ],
)
def test_usage_and_config_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_USAGE, result.output


def test_unreachable_admin_exits_1_with_errors_in_json() -> None:
    result = runner.invoke(app, ["--admin", f"127.0.0.1:{closed_port()}", "--json", "--timeout", "0.5"])
    assert result.exit_code == EXIT_FAILED
    doc = json.loads(result.stdout)
    assert doc["success"] is False and doc["error"] is None
    assert doc["targets"][0]["endpoint"]["status"] == "unreachable"
    assert {c["result"] for c in doc["targets"][0]["checks"]} <= {"error", "skip"}


def test_unreachable_admin_is_one_line_then_the_checks_it_prevented() -> None:
    port = closed_port()
    result = runner.invoke(app, ["--admin", f"127.0.0.1:{port}", "--timeout", "0.5"])
    assert result.exit_code == EXIT_FAILED
    text = " ".join(result.stdout.split())  # the console wraps at 80 columns
    assert text.count("cannot reach the admin endpoint") == 1 and text.count("Connect call failed") == 1
    assert "checks not run: proxy: proxy-ready, proxy-version" in text
    assert "traffic: upstream-success-rate" in text and "docs/checks.md#endpoint-unreachable" in text


@pytest.mark.parametrize("flag,value,expected", [
    ("--min-success-rate", "1.5", "--min-success-rate: Input should be less than or equal to 1"),
    ("--window", "soon", "--window: 'soon' is not a duration like 500ms, 5s or 2m"),
])
def test_a_bad_flag_is_reported_as_the_flag_not_as_a_config_key(flag, value, expected) -> None:
    result = runner.invoke(app, ["--admin", "127.0.0.1:1", flag, value, "--json"])
    assert result.exit_code == EXIT_USAGE
    assert expected in result.stderr and "meshlift:gates" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "meshlift.checks/v2" and expected in doc["error"]["message"]
    assert set(doc) == {"schema", "success", "taken_at", "targets", "error"}


def test_a_stack_config_problem_names_file_line_and_key(tmp_path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text("config:\n  meshlift:gates:\n    window: 2m\n    minSuccessRate: 7\n")
    result = runner.invoke(app, ["--admin", "127.0.0.1:1", "--stack-config", str(stack)])
    assert result.exit_code == EXIT_USAGE
    assert f"{stack}:4: meshlift:gates.minSuccessRate: Input should be less than or equal to 1" in \
        " ".join(result.stderr.split())


def test_a_bad_value_is_named_once() -> None:
    result = runner.invoke(app, ["--admin", "127.0.0.1:1", "--window", "soon"])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.count("soon") == 1, result.stderr


def test_a_misspelled_stack_config_key_gets_the_same_did_you_mean_as_validate(tmp_path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text("config:\n  meshlift:gates:\n    windw: 10s\n  meshlift:proxyProfile:\n    logLevl: info\n")
    result = runner.invoke(app, ["--admin", "127.0.0.1:1", "--stack-config", str(stack)])
    assert result.exit_code == EXIT_USAGE
    text = " ".join(result.stderr.split())
    assert f"{stack}:5: meshlift:proxyProfile.logLevl: unknown key (did you mean 'logLevel'?)" in text
    stack.with_name("g.yaml").write_text("config:\n  meshlift:gates:\n    windw: 10s\n")
    result = runner.invoke(app, ["--admin", "127.0.0.1:1", "--stack-config", str(stack.with_name("g.yaml"))])
    text = " ".join(result.stderr.split())
    assert f"g.yaml:3: meshlift:gates.windw: unknown key (did you mean 'window'?)" in text
    assert "Extra inputs" not in text


def test_list_checks_prints_the_catalog() -> None:
    result = runner.invoke(app, ["--list-checks", "--json"])
    assert result.exit_code == 0
    assert "upstream-success-rate" in {c["id"] for c in json.loads(result.stdout)}


def test_stack_config_gives_the_proxy_profile_check_its_expectation(tmp_path) -> None:
    from checks.cli import ConfigError, load_settings

    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text("config:\n  meshlift:proxyProfile:\n    logLevel: error\n")
    assert load_settings(stack).proxy_profile.log_level == "error"
    assert load_settings(None).proxy_profile is None
    stack.write_text("config:\n  meshlift:proxyProfile:\n    logLevel: loud\n")
    with pytest.raises(ConfigError, match="meshlift:proxyProfile.logLevel"):
        load_settings(stack)


@pytest.mark.parametrize("args, says", [
    ([], "give exactly one of --admin URL"),
    (["--admin", "http://127.0.0.1:1", "--diff", "x", "--against-baseline"], "use either --diff OTHER or --against-baseline"),
])
def test_inspect_usage_errors_print_the_inspect_document_and_one_marked_line(args, says):
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([str(Path(sys.executable).with_name("meshlift")), "inspect", *args, "--json"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == EXIT_USAGE
    document = json.loads(done.stdout)
    assert document["schema"] == "meshlift.inspect/v1" and document["proxies"] == [] and document["diffs"] == []
    assert document["error"]["code"] == 2 and says in document["error"]["message"]
    assert done.stderr.startswith("× meshlift inspect: ") and says in done.stderr


def test_check_help_shows_examples_and_names_the_check_id_option() -> None:
    from rollout.cli import app as meshlift

    result = runner.invoke(meshlift, ["check", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "meshlift check --list-checks" in result.stdout
    assert "--check ID" in result.stdout and "list[str]" not in result.stdout
    assert "implies --gate" in " ".join(result.stdout.split())


def test_checks_left_out_by_configuration_are_counted_not_listed() -> None:
    import io

    from rich.console import Console

    from checks.report import render_report
    from checks.result import SKIPPED_BY_CONFIGURATION, CheckResult, Report, Status, TargetReport

    results = (CheckResult("proxy-version", Status.PASS, "Envoy 1.40.0", category="configuration"),
               *(CheckResult(f"other-{n}", Status.SKIP, SKIPPED_BY_CONFIGURATION, category="traffic")
                 for n in range(16)),
               CheckResult("upstream-success-rate", Status.SKIP, "no traffic", category="traffic", no_data=True))
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(render_report(Report((TargetReport("p", "http://p", "proxy", results),))))
    text = buffer.getvalue()
    assert "proxy-version" in text and "other-" not in text
    assert "16 check(s) not run, as configured" in text
    assert "no traffic" in text, "a check skipped for its own reason is still listed"
