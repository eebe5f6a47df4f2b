"""`meshlift inspect` against real Envoys of both versions: the summary, `--diff` showing a route the
canary lacks, `--against-baseline` over a targets file, JSON, usage errors, and secrets never shown."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import localmesh as lm
from checks.config_dump import REDACTED, redact
from checks.target import Target
from checks.targets_file import write_targets
from rollout import cli
from rollout.entry import run

pytestmark = pytest.mark.envoy

VERSIONS = ("1.40.0", "1.39.3")


@pytest.fixture
def start(binaries, started) -> Callable[..., lm.Proxy]:
    return lambda version, name: started(binaries[version], name=name, tls=True, overload=lm.OverloadThresholds())


def inspect(capsys, *args: str) -> tuple[int, str, str]:
    code = run(cli.app, ["inspect", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _missing_route(proxy: lm.Proxy) -> None:
    before = proxy.stat("listener_manager.lds.update_success")
    lm.inject_fault(proxy, "missing-route")
    lm.wait_until(lambda: proxy.stat("listener_manager.lds.update_success") > before, timeout_s=5)


@pytest.mark.parametrize("canary_version", VERSIONS)
def test_diff_shows_the_route_the_canary_lacks(start, capsys, monkeypatch, canary_version) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    canary = start(canary_version, "web-canary-0")
    baseline = start(next(v for v in VERSIONS if v != canary_version), "web-0")
    _missing_route(canary)

    code, out, _ = inspect(capsys, "--admin", canary.admin_url, "--diff", baseline.admin_url)

    assert code == 1
    assert f"Envoy {canary_version}" in out and "local_route (inline in listener http): virtual host all ['*']: default" in out
    assert "route         only in b: http/local_route/all/status" in out
    assert "route         only in b: https/local_route/all/status" in out
    assert "only in a" not in out

    code, out, _ = inspect(capsys, "--admin", canary.admin_url, "--diff", baseline.admin_url, "--json")
    document = json.loads(out)
    assert code == 1 and document["schema"] == "meshlift.inspect/v1"
    (diff,) = document["diffs"]
    assert diff["kinds"] == {"route": {"only_in_a": [], "only_in_b": ["http/local_route/all/status",
                                                                       "https/local_route/all/status"]}}
    canary_doc = document["proxies"][0]
    assert canary_doc["server"]["envoy_version"] == canary_version
    assert {x["type"]: x["version"] for x in canary_doc["xds"]}["LDS"] == "2"
    assert [(x["name"], x["state"]) for x in canary_doc["listeners"]] == [("http", "active"), ("https", "active")]
    (cert,) = canary_doc["certificates"]
    assert cert["expires_at"].endswith("Z") and cert["days_left"] >= 89
    assert [c["healthy"] for c in canary_doc["clusters"]] == [1]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_rejected_listener_push_shows_with_its_reason(start, capsys, version) -> None:
    proxy = start(version, "nack")
    lm.inject_fault(proxy, "reject-config")
    lm.wait_until(lambda: proxy.stat("listener_manager.lds.update_rejected") >= 1, timeout_s=5)

    code, out, _ = inspect(capsys, "--admin", proxy.admin_url, "--json")

    (lds,) = [x for x in json.loads(out)["proxies"][0]["xds"] if x["type"] == "LDS"]
    assert code == 0 and lds["version"] == "1" and lds["rejected"] == 1
    assert lds["last_error"].startswith("listener 'http': ") and "filter chain" in lds["last_error"]
    states = {(x["name"], x["state"]) for x in json.loads(out)["proxies"][0]["listeners"]}
    assert ("http", "failed") in states and ("http", "active") in states


def test_against_baseline_pairs_each_canary_with_its_workload_from_a_targets_file(start, capsys, tmp_path) -> None:
    canary, baseline, other = start("1.40.0", "c"), start("1.39.3", "b"), start("1.39.3", "o")
    path = tmp_path / "targets.json"
    write_targets(path, [
        Target(name="shop/web-canary-0", admin_url=canary.admin_url, role="canary",
               labels={"namespace": "shop", "workload": "web-canary"}),
        Target(name="shop/web-0", admin_url=baseline.admin_url, role="baseline",
               labels={"namespace": "shop", "workload": "web"}),
        Target(name="pay/api-0", admin_url=other.admin_url, role="baseline",
               labels={"namespace": "pay", "workload": "api"}),
    ])
    code, out, _ = inspect(capsys, "--targets-file", str(path), "--against-baseline", "--json")
    document = json.loads(out)
    assert code == 0
    assert [(d["a"], d["b"], d["identical"]) for d in document["diffs"]] == [("shop/web-canary-0", "shop/web-0", True)]

    _missing_route(canary)
    code, out, _ = inspect(capsys, "--targets-file", str(path), "--against-baseline", "--allow", "route:http/*", "--json")
    (diff,) = json.loads(out)["diffs"]
    assert code == 1 and diff["kinds"]["route"]["only_in_b"] == ["https/local_route/all/status"]


def test_an_unreachable_proxy_is_shown_as_an_error_and_exits_1(start, capsys) -> None:
    proxy = start("1.40.0", "alive")
    dead = f"http://127.0.0.1:{lm.closed_port()}"
    code, out, _ = inspect(capsys, "--admin", proxy.admin_url, "--admin", dead, "--timeout", "0.5")
    assert code == 1
    assert "× cannot read this proxy: cannot connect to" in out and "nothing inspected" in out
    assert "Envoy 1.40.0" in out, "the reachable proxy is still shown in full"
    dead_block = out.split(f"({dead}, proxy)", 1)[1]
    assert "listeners (0)" not in dead_block and "clusters (0)" not in dead_block, "no empty sections as if read"


@pytest.mark.parametrize("version", VERSIONS)
def test_secrets_in_the_config_never_reach_the_output(start, capsys, version) -> None:
    proxy = start(version, "secrets")
    token = "Bearer s3cr3t-t0ken-do-not-print"
    listeners = proxy.listeners()
    vhost = listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    vhost["request_headers_to_add"] = [{"header": {"key": "Authorization", "value": token}}]
    proxy.xds.push_listeners(listeners)
    cert = lm.generate_cert(common_name="secrets", valid_days=30)
    proxy.xds.push_secrets([{
        "@type": lm._bootstrap.SECRET_TYPE, "name": lm._bootstrap.SERVER_CERT,
        "tls_certificate": {"certificate_chain": {"inline_string": cert.cert_pem.decode()},
                            "private_key": {"inline_string": cert.key_pem.decode()}},
    }])
    lm.wait_until(lambda: proxy.stat("listener_manager.lds.update_success") >= 2
                  and proxy.stat("sds.server_cert.update_success") >= 2, timeout_s=5)
    _, raw = lm._admin.request(proxy.admin_port, "/config_dump?include_eds")
    assert token in raw, "the condition is real: Envoy's own dump shows the header's token"
    assert "PRIVATE KEY" not in raw and '"[redacted]"' in raw, "Envoy redacts inline SDS keys itself"

    code, out, _ = inspect(capsys, "--admin", proxy.admin_url, "--json", "--config-dump")

    assert code == 0
    assert token not in out and "s3cr3t" not in out and "PRIVATE KEY" not in out
    assert '"key": "Authorization"' in out and f'"value": "{REDACTED}"' in out
    assert "BEGIN CERTIFICATE" in out, "public certificates are not secrets"


def test_redaction_covers_keys_tokens_and_headers_in_any_resource() -> None:
    dump = {
        "private_key": {"inline_bytes": "LS0tLS1CRUdJTi..."},
        "sds": {"private_key": {"filename": "/etc/certs/key.pem"}},
        "grpc": {"call_credentials": [{"access_token": "ya29.token"}]},
        "oauth": {"token_secret": {"name": "t"}, "hmac_secret": {"inline_string": "k"}},
        "headers": [{"key": "cookie", "value": "session=1"}, {"key": "x-trace", "value": "keep"}],
        "note": "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    }
    clean = redact(dump)
    assert clean["private_key"] == {"inline_bytes": REDACTED}
    assert clean["sds"]["private_key"] == {"filename": "/etc/certs/key.pem"}
    assert clean["grpc"]["call_credentials"][0]["access_token"] == REDACTED
    assert clean["oauth"]["hmac_secret"] == {"inline_string": REDACTED}
    assert clean["headers"] == [{"key": "cookie", "value": REDACTED}, {"key": "x-trace", "value": "keep"}]
    assert clean["note"] == REDACTED
    assert dump["grpc"]["call_credentials"][0]["access_token"] == "ya29.token", "the input is left alone"


@pytest.mark.parametrize(("args", "says"), [
    ((), "give exactly one of --admin URL"),
    (("--admin", "http://127.0.0.1:1", "--rehearsal"), "give exactly one of"),
    (("--admin", "http://127.0.0.1:1", "--diff", "x", "--against-baseline"), "not both"),
    (("--admin", "http://127.0.0.1:1", "--allow", "routes:*"), "unknown kind 'routes'"),
    (("--admin", "http://127.0.0.1:1", "--config-dump"), "--config-dump needs --json"),
    (("--targets-file", "/nonexistent/targets.json"), "cannot read targets file /nonexistent/targets.json"),
])
def test_usage_errors_exit_2_with_one_clear_line(capsys, args, says) -> None:
    code, out, err = inspect(capsys, *args)
    assert code == 2 and says in err and "Traceback" not in err + out


def test_rehearsal_without_a_running_rehearsal_says_so(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MESHLIFT_PROJECT_DIR", str(tmp_path))
    code, _, err = inspect(capsys, "--rehearsal")
    assert code == 2 and "no running rehearsal" in err and "meshlift rehearse" in err
