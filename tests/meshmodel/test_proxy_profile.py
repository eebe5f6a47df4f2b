"""The proxy profile in the Helm values of the program's istiod releases (Pulumi mocks), and its validation."""

from __future__ import annotations

import json

import pytest

from meshmodel.proxy_profile import REQUIRED_LOG_FIELDS
from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from tests.components.configs import minimal
from tests.components.program import run_program, with_rollout


def _istiod_releases(run):
    return [r for r in run if r.name.startswith("istiod-") and r.name.endswith("-release")]


def test_every_revisions_istiod_release_carries_the_default_profile():
    run = run_program(with_rollout(minimal(), stage="install"))
    releases = _istiod_releases(run)
    assert {r.name for r in releases} == {"istiod-1-30-3-release", "istiod-1-31-0-release"}
    for release in releases:
        values = release.inputs["values"]
        mesh = values["meshConfig"]
        assert mesh["accessLogFile"] == "/dev/stdout", release.urn
        assert mesh["accessLogEncoding"] == "TEXT", release.urn
        assert all(f in mesh["accessLogFormat"] for f in REQUIRED_LOG_FIELDS), release.urn
        assert mesh["tcpKeepalive"] == {"time": "300s", "interval": "75s", "probes": 9}, release.urn
        assert values["global"]["proxy"]["logLevel"] == "warning", release.urn
        assert values["global"]["proxy"]["componentLogLevel"] == "misc:error", release.urn
        # The profile joins meshlift's defaults; it does not replace them.
        assert mesh["defaultConfig"]["holdApplicationUntilProxyStarts"] is True, release.urn
        assert values["global"]["proxy"]["holdApplicationUntilProxyStarts"] is True, release.urn


def test_a_configured_profile_renders_json_access_logs_and_its_levels():
    config = minimal()
    config["meshlift:proxyProfile"] = json.dumps({
        "accessLog": {"encoding": "JSON", "path": "/var/log/envoy/access.log"},
        "upstreamKeepalive": {"time": "2m", "interval": "30s", "probes": 4},
        "logLevel": "info", "componentLogLevel": "misc:error,upstream:warning",
    })
    release = run_program(config).named("istiod-1-31-0-release")
    mesh = release.inputs["values"]["meshConfig"]
    assert mesh["accessLogFile"] == "/var/log/envoy/access.log"
    assert mesh["accessLogEncoding"] == "JSON"
    fields = json.loads(mesh["accessLogFormat"])
    assert fields["response_flags"] == "%RESPONSE_FLAGS%" and fields["upstream_host"] == "%UPSTREAM_HOST%"
    assert mesh["tcpKeepalive"] == {"time": "120s", "interval": "30s", "probes": 4}
    assert release.inputs["values"]["global"]["proxy"]["componentLogLevel"] == "misc:error,upstream:warning"


def test_a_revisions_own_values_still_win_over_the_profile():
    config = minimal(revisions=[{"version": "1.30.3", "values": {"meshConfig": {"accessLogFile": ""}}},
                                {"version": "1.31.0"}])
    run = run_program(config)
    own = run.named("istiod-1-30-3-release").inputs["values"]["meshConfig"]
    assert own["accessLogFile"] == "" and own["accessLogEncoding"] == "TEXT"
    other = run.named("istiod-1-31-0-release").inputs["values"]["meshConfig"]
    assert other["accessLogFile"] == "/dev/stdout"


def test_disabled_access_logging_renders_the_charts_off_switch():
    config = minimal()
    config["meshlift:proxyProfile"] = {"accessLog": {"enabled": False}, "upstreamKeepalive": None}
    mesh = run_program(config).named("istiod-1-31-0-release").inputs["values"]["meshConfig"]
    assert mesh["accessLogFile"] == "" and "tcpKeepalive" not in mesh


@pytest.mark.parametrize(("profile", "key", "reason"), [
    ({"accessLog": {"format": "%START_TIME% %RESPONSE_CODE%"}}, "meshlift:proxyProfile.accessLog",
     "%RESPONSE_FLAGS%, %UPSTREAM_HOST%, %DURATION%"),
    ({"accessLog": {"encoding": "JSON", "format": "not json %RESPONSE_FLAGS%"}}, "meshlift:proxyProfile.accessLog",
     "JSON object"),
    ({"accessLog": {"path": "stdout"}}, "meshlift:proxyProfile.accessLog.path", "absolute file path"),
    ({"overload": {"disableKeepaliveAt": 0.99, "stopAcceptingRequestsAt": 0.95}}, "meshlift:proxyProfile.overload",
     "below stopAcceptingRequestsAt"),
    ({"overload": {"stopAcceptingRequestsAt": 1.5}}, "meshlift:proxyProfile.overload.stopAcceptingRequestsAt",
     "less than or equal to 1"),
    ({"controlPlaneKeepalive": {"time": "1.5s"}}, "meshlift:proxyProfile.controlPlaneKeepalive.time", "whole seconds"),
    ({"logLevel": "loud"}, "meshlift:proxyProfile.logLevel", "'warning'"),
    ({"componentLogLevel": "misc=error"}, "meshlift:proxyProfile.componentLogLevel", "component:level"),
    ({"acessLog": {}}, "meshlift:proxyProfile.acessLog", "did you mean 'accessLog'"),
])
def test_a_bad_profile_names_its_key_path(profile, key, reason):
    config = {**minimal(), "meshlift:proxyProfile": profile}
    with pytest.raises(SpecError) as raised:
        load_spec(config)
    problems = {p.key: p.reason for p in raised.value.problems}
    assert key in problems, problems
    assert reason in problems[key], problems[key]


@pytest.mark.parametrize("entry", ["routes:*", "cluster", "cluster:", "listener"])
def test_a_bad_parity_allow_entry_names_its_key_path(entry):
    config = {**minimal(), "meshlift:gates": {"parityAllow": ["route:*/status", entry]}}
    with pytest.raises(SpecError) as raised:
        load_spec(config)
    assert [p.key for p in raised.value.problems] == ["meshlift:gates.parityAllow"]
    assert repr(entry) in raised.value.problems[0].reason


def test_the_gates_of_a_spec_expect_its_profile():
    spec = load_spec({**minimal(), "meshlift:proxyProfile": {"logLevel": "error"}})
    assert spec.gates.proxy_profile is spec.proxy_profile
    assert spec.gates.proxy_profile.log_level == "error"
