"""The checks on recorded istio-proxy evidence from Istio's own repositories (fixtures/istio/README.md).

What a local upstream Envoy cannot show is judged here: the agent's real
workload certificate and root, Istio's `istio_requests_total` series, and the
bootstrap pilot-agent writes (stats matcher, `;` stat names, node metadata).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from checks import Status, parse_prometheus, run_checks
from checks.istio_metrics import RequestSeries, from_prometheus, parse_request_stat
from checks.rules_traffic import CONTROL_CLUSTERS, data_clusters
from checks.stats import Stats
from components.control_plane import DEFAULT_ISTIOD_VALUES
from meshmodel.spec import GateSettings

from .recorded import FakeAdmin

ISTIO = Path(__file__).parent / "fixtures" / "istio"


def load(name: str) -> Any:
    return json.loads((ISTIO / name).read_text())


# ---- certificates: the agent's real SDS secrets -----------------------------------------

def _secret_pem(secret: dict[str, Any]) -> x509.Certificate:
    body = secret.get("tls_certificate", {}).get("certificate_chain") or secret["validation_context"]["trusted_ca"]
    return x509.load_pem_x509_certificate(base64.b64decode(body["inline_bytes"]))


def _certs_entry(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    """The /certs entry Envoy prints for a served certificate (fields as 1.39.3 and 1.40.0 print them)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:  # the root has none
        uris = []
    expires = cert.not_valid_after_utc
    return {
        "path": "<inline>",
        "serial_number": format(cert.serial_number, "x"),
        "subject_alt_names": [{"uri": u} for u in uris],
        "days_until_expiration": str(max(0, (expires - now).days)),
        "valid_from": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiration_time": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def sidecar_secrets() -> dict[str, x509.Certificate]:
    (dump,) = load("secrets_config_dump.json")["configs"]
    return {s["name"]: _secret_pem(s["secret"]) for s in dump["dynamic_active_secrets"]}


def test_the_recorded_workload_certificate_is_a_24h_spiffe_certificate_beside_a_10_year_root() -> None:
    secrets = sidecar_secrets()
    leaf, root = secrets["default"], secrets["ROOTCA"]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24, minutes=2)  # 2 min backdated
    assert root.not_valid_after_utc.year - root.not_valid_before_utc.year == 10
    assert "spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint" in _certs_entry(leaf, leaf.not_valid_before_utc)["subject_alt_names"][0]["uri"]


async def judge_certs(at: datetime, settings: GateSettings):
    secrets = sidecar_secrets()
    admin = FakeAdmin()
    admin.proxy("sidecar").certs = {"certificates": [
        {"cert_chain": [_certs_entry(secrets["default"], at)], "ca_cert": [_certs_entry(secrets["ROOTCA"], at)]},
    ]}
    async with admin.client() as client:
        report = await run_checks([admin.target("sidecar")], settings, client=client, only=["certificates-valid"],
                                  wall_clock=lambda: at)
    return report.targets[0].result("certificates-valid")


ISSUED = datetime(2023, 5, 15, 1, 30, 52, tzinfo=timezone.utc)  # the recorded leaf's notBefore


@pytest.mark.parametrize(("hours", "status", "fragment"), [
    (7, Status.PASS, "1 workload certificate(s), 29% of its 24.0 h lifetime used"),
    (12, Status.PASS, "50% of its 24.0 h lifetime used"),  # due for renewal, not yet late
    (19, Status.FAIL, "is 79% through its 24.0 h lifetime (> 75%): rotation stalled"),
    (25, Status.FAIL, "expired 0.0 days ago"),
])
async def test_recorded_sidecar_certificate_judged_on_its_own_lifetime(hours, status, fragment, settings) -> None:
    result = await judge_certs(ISSUED + timedelta(hours=hours), settings)
    assert result.status is status, result.message
    assert fragment in result.message, result.message


async def test_recorded_root_is_judged_in_days(settings) -> None:
    # The root expires 2033-05-02: 3640 days after the leaf was issued; ask for more.
    strict = settings.model_copy(update={"min_cert_validity_days": 3650})
    result = await judge_certs(ISSUED + timedelta(hours=2), strict)
    assert result.status is Status.FAIL
    assert result.message == "certificate ca_cert <inline> expires in 3640.01 days < 3650 days"


# ---- istio_requests_total: Istio's standard metric ---------------------------------------

def request_total(template: str, *, count: int, code: str = "200") -> list[tuple[str, str]]:
    """The labels (in order) of one series of istio/proxy's expected metric, rendered for `count`/`code`."""
    text = (ISTIO / template).read_text()
    text = re.sub(r"\{\{- if \.Vars\.GrpcResponseStatus \}\}.*?\{\{- else \}\}(.*?)\{\{- end \}\}", r"\1", text, flags=re.S)
    text = re.sub(r"\{\{- if \.Vars\.ResponseCodeClass \}\}.*?\{\{- end \}\}", f'\n    value: "{code}"', text, flags=re.S)
    text = text.replace("{{ .Vars.RequestCount }}", str(count)).replace("{{ .Vars.GrpcResponseStatus }}", "")
    family = yaml.safe_load(text)
    assert family["name"] == "istio_requests_total" and family["type"] == "COUNTER"
    (metric,) = family["metric"]
    assert metric["counter"]["value"] == count
    return [(label["name"], str(label["value"])) for label in metric["label"]]


def prometheus_line(labels: list[tuple[str, str]], count: int) -> str:
    return "istio_requests_total{" + ",".join(f'{k}="{v}"' for k, v in labels) + f"}} {count}"


def stat_name(labels: list[tuple[str, str]]) -> str:
    """The `/stats` name Envoy gives the istio.stats filter's tagged counter (namespace `istiocustom`)."""
    return "istiocustom.istio_requests_total" + "".join(f".{k}.{v}" if v else f".{k}" for k, v in labels)


def test_client_and_server_series_read_alike_from_prometheus_and_from_stats() -> None:
    client = request_total("metric_client_request_total.yaml.tmpl", count=40)
    server = request_total("metric_server_request_total.yaml.tmpl", count=7, code="503")
    text = "\n".join(["# TYPE istio_requests_total counter", prometheus_line(client, 40), prometheus_line(server, 7)])
    assert from_prometheus(parse_prometheus(text)) == {
        RequestSeries("source", "200", "-"): 40, RequestSeries("destination", "503", "-"): 7}
    assert parse_request_stat(stat_name(client)) == RequestSeries("source", "200", "-")
    assert parse_request_stat(stat_name(server)) == RequestSeries("destination", "503", "-")
    # The value after `destination_service` has dots; the empty grpc_response_status leaves its tag alone.
    assert ".destination_service.server.default.svc.cluster.local." in stat_name(client)
    assert ".grpc_response_status.response_flags.-." in stat_name(client)


def test_wasm_era_names_read_too() -> None:
    name = ("reporter=.=destination;.;source_workload=.=productpage-v1;.;response_code=.=504;.;"
            "grpc_response_status=.=;.;response_flags=.=UT;.;connection_security_policy=.=mutual_tls;.;"
            "_istio_requests_total")
    assert parse_request_stat(name) == RequestSeries("destination", "504", "UT")
    assert parse_request_stat("cluster.outbound|80||web;.upstream_rq_5xx") is None


def istio_sidecar_stats(ok: int, failed: int, *, code: str = "503") -> dict[str, float]:
    """A sidecar under Istio's default stats matcher: its xds-grpc cluster and its request metric only."""
    stats: dict[str, float] = {"cluster.xds-grpc;.upstream_cx_active": 1, "cluster.xds-grpc;.upstream_cx_connect_fail": 0}
    if ok:
        stats[stat_name(request_total("metric_client_request_total.yaml.tmpl", count=ok))] = ok
    if failed:
        stats[stat_name(request_total("metric_server_request_total.yaml.tmpl", count=failed, code=code))] = failed
    return stats


async def judge(admin: FakeAdmin, check_id: str, settings: GateSettings, *baselines: str):
    async with admin.client() as client:
        report = await run_checks([admin.target("canary", role="canary"),
                                   *(admin.target(b, role="baseline") for b in baselines)],
                                  settings, client=client, only=[check_id])
    return report.targets[0].result(check_id)


async def test_success_rate_from_istio_requests_total_both_reporters(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("canary").stats = istio_sidecar_stats(ok=900, failed=100)
    result = await judge(admin, "upstream-success-rate", settings)
    assert result.status is Status.FAIL
    assert result.message.startswith("upstream success rate 90.00% < 99.00% (100/1000 failed")
    assert result.details["evidence"] == "istio_requests_total"
    admin.proxy("canary").stats = istio_sidecar_stats(ok=900, failed=100, code="404")  # a 4xx is an answer
    assert (await judge(admin, "upstream-success-rate", settings)).status is Status.PASS


async def test_canary_vs_baseline_on_istio_requests_total(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("canary").stats = istio_sidecar_stats(ok=450, failed=50)
    admin.proxy("stable").stats = istio_sidecar_stats(ok=2000, failed=0)
    result = await judge(admin, "canary-vs-baseline", settings, "stable")
    assert result.status is Status.FAIL
    assert "canary error rate 10.00% exceeds baseline 0.00%" in result.message


async def test_connect_failures_from_requests_flagged_uf(settings) -> None:
    admin = FakeAdmin()
    stats = istio_sidecar_stats(ok=10, failed=0)
    labels = [(k, "UF" if k == "response_flags" else v)
              for k, v in request_total("metric_client_request_total.yaml.tmpl", count=3, code="503")]
    stats[stat_name(labels)] = 3
    admin.proxy("canary").stats = stats
    result = await judge(admin, "upstream-connect-failures", settings)
    assert result.status is Status.WARN  # one-off: counted since proxy start
    assert result.message.startswith("3 request(s) that found no upstream connection (istio_requests_total "
                                      "response_flags UF) since proxy start")


@pytest.mark.parametrize("check_id", ["upstream-success-rate", "upstream-connect-failures", "canary-vs-baseline"])
async def test_istio_proxy_without_evidence_says_so_and_names_the_fix(check_id, settings) -> None:
    admin = FakeAdmin()
    admin.proxy("canary").stats = istio_sidecar_stats(ok=0, failed=0)
    admin.proxy("stable").stats = istio_sidecar_stats(ok=100, failed=0)
    result = await judge(admin, check_id, settings, "stable")
    assert result.status is Status.SKIP and result.no_data
    assert "no traffic evidence: no istio_requests_total and no per-cluster upstream counters" in result.message
    assert "proxyStatsMatcher" in result.message and "telemetry" in result.message


# ---- the bootstrap pilot-agent writes ----------------------------------------------------

def kept(matcher: dict[str, Any], name: str) -> bool:
    """Envoy's inclusion list: prefix, suffix, or a safe_regex matching the whole name."""
    for pattern in matcher["inclusion_list"]["patterns"]:
        if ("prefix" in pattern and name.startswith(pattern["prefix"])
                or "suffix" in pattern and name.endswith(pattern["suffix"])
                or "safe_regex" in pattern and re.fullmatch(pattern["safe_regex"]["regex"], name)):
            return True
    return False


OUTBOUND = "cluster.outbound|80||web.shop.svc.cluster.local;"
ISTIO_REQUEST = "istiocustom.istio_requests_total.reporter.source.response_code.503"


def test_istio_default_stats_matcher_keeps_the_request_metric_and_xds_grpc_but_no_cluster_counters() -> None:
    matcher = load("bootstrap_default_golden.json")["stats_config"]["stats_matcher"]
    assert kept(matcher, ISTIO_REQUEST) and kept(matcher, "cluster.xds-grpc;.upstream_cx_active")
    assert not kept(matcher, OUTBOUND + ".upstream_rq_5xx")
    assert not kept(matcher, "control_plane.connected_state")


def test_meshlift_revisions_keep_what_the_gates_read() -> None:
    """meshlift's proxyStatsMatcher, rendered as Istio renders proxyStatsMatcher (the stats_inclusion golden)."""
    golden = load("bootstrap_stats_inclusion_golden.json")["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]
    # Extra inclusion regexps land verbatim as safe_regex patterns beside Istio's own.
    assert {"safe_regex": {"regex": r"vhost\..*\.route\..*"}} in golden
    assert {"safe_regex": {"regex": r"http.[0-9]*\.[0-9]*\.[0-9]*\.[0-9]*_8080.downstream_rq_time"}} in golden
    ours = DEFAULT_ISTIOD_VALUES["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]
    default = load("bootstrap_default_golden.json")["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]
    matcher = {"inclusion_list": {"patterns": [
        *default, *({"prefix": p} for p in ours["inclusionPrefixes"]),
        *({"safe_regex": {"regex": r}} for r in ours["inclusionRegexps"])]}}
    for suffix in ("upstream_rq_completed", "upstream_rq_5xx", "upstream_cx_connect_fail",
                   "outlier_detection.ejections_active"):
        assert kept(matcher, f"{OUTBOUND}.{suffix}"), suffix
        assert kept(matcher, f"cluster.inbound|8080||;.{suffix}"), suffix
    for name in ("control_plane.connected_state", "overload.envoy.overload_actions.stop_accepting_requests.active",
                 "http.admin.downstream_rq_total", "sds.default.update_success", "sds.ROOTCA.version_text"):
        assert kept(matcher, name), name
        assert not kept({"inclusion_list": {"patterns": default}}, name), name
    assert not kept(matcher, OUTBOUND + ".upstream_rq_2xx")  # only what the gates read


def test_every_bootstrap_cluster_is_control_traffic_with_its_semicolon() -> None:
    clusters = load("bootstrap_default_golden.json")["static_resources"]["clusters"]
    assert {c["alt_stat_name"] for c in clusters} == {f"{c['name']};" for c in clusters}
    assert {c["name"] for c in clusters} <= CONTROL_CLUSTERS
    stats = Stats({f"cluster.{c['alt_stat_name']}.upstream_cx_connect_fail": 1 for c in clusters}
                  | {OUTBOUND + ".upstream_cx_connect_fail": 0})
    assert data_clusters(stats) == ["outbound|80||web.shop.svc.cluster.local;"]


async def test_proxy_version_read_from_the_agent_node_metadata(settings) -> None:
    node = load("bootstrap_default_golden.json")["node"]
    admin = FakeAdmin()
    admin.proxy("sidecar").server_info = {**admin.proxy("sidecar").server_info, "node": node}
    async with admin.client() as client:
        report = await run_checks([admin.target("sidecar", expected_version=node["metadata"]["ISTIO_VERSION"])],
                                  settings, client=client, only=["proxy-version"])
    result = report.targets[0].result("proxy-version")
    assert result.status is Status.PASS, result.message
