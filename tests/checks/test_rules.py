"""Each check's judgement on recorded Envoy answers, edited to show one condition at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from checks import CATALOG, Report, Status, run_checks, select_checks
from meshmodel.spec import GateSettings

from .recorded import FakeAdmin, fixture

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


async def judge(admin: FakeAdmin, name: str, check_id: str, settings: GateSettings, *, previous: Report | None = None, **target_kw):
    async with admin.client() as client:
        report = await run_checks([admin.target(name, **target_kw)], settings, client=client, previous=previous,
                                  only=[check_id], wall_clock=lambda: NOW)
    return report, report.targets[0].result(check_id)


async def sample(admin: FakeAdmin, names: list[str], settings: GateSettings, previous: Report | None = None, **kw) -> Report:
    async with admin.client() as client:
        return await run_checks([admin.target(n) for n in names], settings, client=client, previous=previous,
                                wall_clock=lambda: NOW, **kw)


# ---- the catalog is data -------------------------------------------------------------

def test_catalog_ids_unique_and_complete() -> None:
    ids = [c.id for c in CATALOG]
    assert len(ids) == len(set(ids))
    for spec in CATALOG:
        assert spec.reads and spec.description and spec.threshold
        assert spec.hint.endswith("#" + spec.id)


def test_unknown_check_ids_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no-such-check"):
        select_checks(GateSettings(skip_checks=["no-such-check"]))


async def test_skipped_checks_are_reported_as_skipped_by_configuration() -> None:
    admin = FakeAdmin()
    report = await sample(admin, ["p"], GateSettings(skip_checks=["proxy-memory"]))
    result = report.targets[0].result("proxy-memory")
    assert result.status is Status.SKIP and "configuration" in result.message
    assert any(r.url.path == "/certs" for r in admin.requests)  # the other checks still read


async def test_only_the_reads_and_stats_the_selected_checks_need_are_fetched(settings) -> None:
    admin = FakeAdmin()
    await judge(admin, "p", "proxy-memory", settings)
    assert [r.url.path for r in admin.requests] == ["/stats"]
    assert admin.requests[0].url.params["filter"] == r"(?:^server\.memory_(allocated|heap_size)$)"


# ---- proxy ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["PRE_INITIALIZING", "INITIALIZING", "DRAINING"])
async def test_proxy_not_live_fails_ready(body: str, settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").ready = (503, body + "\n")
    _, result = await judge(admin, "p", "proxy-ready", settings)
    assert result.status is Status.FAIL and body in result.message


async def test_ready_200_with_unexpected_body_is_not_live(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").ready = (200, "hello")
    _, result = await judge(admin, "p", "proxy-ready", settings)
    assert result.status is Status.FAIL


async def test_version_from_istio_metadata_wins_over_envoy_version(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").server_info["node"]["metadata"] = {"ISTIO_VERSION": "1.28.1"}
    _, ok = await judge(admin, "p", "proxy-version", settings, expected_version="1-28-1")
    _, bad = await judge(admin, "p", "proxy-version", settings, expected_version="1.40.0")
    assert ok.status is Status.PASS and ok.observed == "1.28.1"
    assert bad.status is Status.FAIL and bad.message == "proxy runs ISTIO_VERSION 1.28.1, expected 1.40.0"


async def test_version_prefix_matches_but_other_minor_does_not(settings) -> None:
    admin = FakeAdmin()
    _, minor = await judge(admin, "p", "proxy-version", settings, expected_version="1.40")
    _, other = await judge(admin, "p", "proxy-version", settings, expected_version="1.4")
    assert minor.status is Status.PASS and other.status is Status.FAIL


async def test_stopped_listeners_fail_and_draining_listeners_warn(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["listener_manager.total_listeners_draining"] = 1
    _, warn = await judge(admin, "p", "proxy-not-draining", settings)
    admin.proxy("p").stats["listener_manager.listener_stopped"] = 2
    _, fail = await judge(admin, "p", "proxy-not-draining", settings)
    assert warn.status is Status.WARN
    assert fail.status is Status.FAIL and "2 listener(s) stopped" in fail.message


MIB = 1024 * 1024


async def judge_memory(settings, canary_mib: float, baseline_mib: float | None):
    admin = FakeAdmin()
    admin.proxy("canary").stats["server.memory_allocated"] = int(canary_mib * MIB)
    targets = [admin.target("canary", role="canary", labels={"app": "gateway", "namespace": "istio-ingress"})]
    if baseline_mib is not None:
        admin.proxy("stable").stats["server.memory_allocated"] = int(baseline_mib * MIB)
        targets.append(admin.target("stable", role="baseline", labels={"app": "gateway", "namespace": "istio-ingress"}))
    async with admin.client() as client:
        report = await run_checks(targets, settings, client=client, only=["proxy-memory"], wall_clock=lambda: NOW)
    return report.targets[0].result("proxy-memory")


async def test_memory_judged_against_the_baseline_not_an_absolute_figure(settings) -> None:
    assert settings.max_memory_bytes is None
    gateway = await judge_memory(settings, canary_mib=900, baseline_mib=800)  # a big gateway, as before
    assert gateway.status is Status.PASS
    assert gateway.message == "memory allocated 900.0 MiB <= 2 x baseline stable's 800.0 MiB + 32.0 MiB"
    leak = await judge_memory(settings, canary_mib=700, baseline_mib=300)
    assert leak.status is Status.FAIL and leak.threshold == 632 * MIB
    assert leak.message == "memory allocated 700.0 MiB > 2 x baseline stable's 300.0 MiB + 32.0 MiB"
    alone = await judge_memory(settings, canary_mib=900, baseline_mib=None)
    assert alone.status is Status.PASS and "no baseline of this workload" in alone.message


async def test_memory_above_an_absolute_cap_fails_when_one_is_set(settings) -> None:
    capped = settings.model_copy(update={"max_memory_bytes": 256 * MIB})
    result = await judge_memory(capped, canary_mib=300, baseline_mib=290)
    assert result.status is Status.FAIL and result.threshold == 256 * MIB
    assert result.message == "memory allocated 300.0 MiB > 256.0 MiB (maxMemoryBytes)"


# ---- configuration -------------------------------------------------------------------

async def test_fresh_canary_that_rejected_its_first_push_fails_before_any_window(settings) -> None:
    admin = FakeAdmin()
    stats = admin.proxy("canary").stats
    stats.update({"cluster_manager.cds.update_rejected": 2, "cluster_manager.cds.update_success": 0,
                  "cluster_manager.cds.version_text": ""})
    _, result = await judge(admin, "canary", "xds-config-accepted", settings)
    assert result.status is Status.FAIL
    assert "CDS: 2 update(s) rejected and no version ever accepted" in result.message


async def test_listener_error_state_in_effect_fails_with_envoys_reason(settings) -> None:
    admin = FakeAdmin()
    proxy = admin.proxy("p")
    proxy.listeners = fixture("listeners_rejected.json")
    proxy.stats.update({"listener_manager.lds.update_rejected": 1})
    _, result = await judge(admin, "p", "xds-config-accepted", settings)
    assert result.status is Status.FAIL
    assert "listener 'http' update rejected at 2026-11-21T11:25:13.249Z" in result.message
    assert "same matching rules" in result.message


async def test_old_listener_rejection_superseded_by_accepted_update_passes(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats.update({"listener_manager.lds.update_rejected": 1, "listener_manager.lds.update_success": 9,
                                   "listener_manager.lds.version_text": "9"})
    _, result = await judge(admin, "p", "xds-config-accepted", settings)
    assert result.status is Status.PASS, result.message


async def test_rejection_during_the_window_fails_even_when_later_superseded(settings) -> None:
    admin = FakeAdmin()
    first, _ = await judge(admin, "p", "xds-config-accepted", settings)
    admin.proxy("p").add("cluster_manager.cds.update_rejected", 1)
    admin.proxy("p").add("cluster_manager.cds.update_success", 1)
    _, result = await judge(admin, "p", "xds-config-accepted", settings, previous=first)
    assert result.status is Status.FAIL and "CDS: 1 update(s) rejected during the window" in result.message


async def test_update_failure_is_fatal_for_files_a_reconnect_over_grpc_and_a_warning_while_cut_off(settings) -> None:
    files = FakeAdmin()
    first, _ = await judge(files, "p", "xds-config-accepted", settings)
    files.proxy("p").add("listener_manager.lds.update_failure", 1)
    _, on_files = await judge(files, "p", "xds-config-accepted", settings, previous=first)

    grpc = FakeAdmin()
    grpc.proxy("p").stats["control_plane.connected_state"] = 1
    first, _ = await judge(grpc, "p", "xds-config-accepted", settings)
    grpc.proxy("p").add("listener_manager.lds.update_failure", 3)
    _, reconnected = await judge(grpc, "p", "xds-config-accepted", settings, previous=first)
    grpc.proxy("p").stats["control_plane.connected_state"] = 0
    _, cut_off = await judge(grpc, "p", "xds-config-accepted", settings, previous=first)
    assert on_files.status is Status.FAIL
    # The control plane closed the stream and the proxy opened a new one: not a failure.
    assert reconnected.status is Status.PASS and reconnected.observed["reconnects"] == {"LDS": 3}
    assert cut_off.status is Status.WARN  # control-plane-connected fails it


async def test_control_plane_absent_skips_and_disconnected_fails(settings) -> None:
    admin = FakeAdmin()
    _, absent = await judge(admin, "p", "control-plane-connected", settings)
    admin.proxy("p").stats["control_plane.connected_state"] = 0
    _, lost = await judge(admin, "p", "control-plane-connected", settings)
    assert absent.status is Status.SKIP and not absent.no_data
    assert lost.status is Status.FAIL


async def test_a_first_sample_between_two_istiod_streams_warns_and_a_second_one_fails(settings) -> None:
    admin = FakeAdmin()
    stats = admin.proxy("p").stats
    stats.update({"control_plane.connected_state": 0, "cluster.xds-grpc;.upstream_rq_total": 4,
                  "cluster.xds-grpc;.upstream_rq_active": 0, "cluster.xds-grpc;.upstream_cx_connect_fail": 0})
    first, between = await judge(admin, "p", "control-plane-connected", settings)
    _, still = await judge(admin, "p", "control-plane-connected", settings, previous=first)
    stats["cluster.xds-grpc;.upstream_rq_total"] = 0  # never had a stream: cut off from the start
    _, never = await judge(admin, "p", "control-plane-connected", settings)
    assert between.status is Status.WARN and "had a stream before" in between.message
    assert still.status is Status.FAIL
    assert never.status is Status.FAIL


async def test_unknown_fields_only_warn(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["server.dynamic_unknown_fields"] = 4
    report, result = await judge(admin, "p", "xds-unknown-fields", settings)
    assert result.status is Status.WARN and report.success


# ---- security ------------------------------------------------------------------------

def with_expiry(admin: FakeAdmin, when: datetime, rounded_days: str) -> None:
    entry = admin.proxy("p").certs["certificates"][0]["cert_chain"][0]
    entry["expiration_time"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    entry["days_until_expiration"] = rounded_days


async def test_certificate_judged_on_exact_expiry_not_rounded_days(settings) -> None:
    admin = FakeAdmin()
    with_expiry(admin, NOW + timedelta(days=6, hours=23), "7")  # a rounded value would pass
    _, result = await judge(admin, "p", "certificates-valid", settings)
    assert result.status is Status.FAIL and "expires in 6.96 days < 7 days" in result.message


async def test_certificate_expired_and_expiring_tonight_are_told_apart(settings) -> None:
    admin = FakeAdmin()
    with_expiry(admin, NOW - timedelta(days=2), "0")
    _, expired = await judge(admin, "p", "certificates-valid", settings)
    with_expiry(admin, NOW + timedelta(hours=6), "0")
    _, tonight = await judge(admin, "p", "certificates-valid", settings)
    assert expired.status is Status.FAIL and "expired 2.0 days ago" in expired.message
    assert tonight.status is Status.FAIL and "expires in 0.25 days" in tonight.message


async def test_certificate_valid_long_enough_passes_and_none_loaded_skips(settings) -> None:
    admin = FakeAdmin()
    with_expiry(admin, NOW + timedelta(days=30), "30")
    _, ok = await judge(admin, "p", "certificates-valid", settings)
    admin.proxy("p").certs = {"certificates": []}
    _, none = await judge(admin, "p", "certificates-valid", settings)
    assert ok.status is Status.PASS and ok.observed == pytest.approx(30)
    assert none.status is Status.SKIP and not none.no_data


# ---- overload ------------------------------------------------------------------------

async def test_overload_active_fails_and_scaling_warns(settings) -> None:
    admin = FakeAdmin()
    stats = admin.proxy("p").stats
    stats["overload.envoy.overload_actions.reduce_timeouts.scale_percent"] = 40
    _, scaled = await judge(admin, "p", "overload-inactive", settings)
    stats["overload.envoy.overload_actions.stop_accepting_requests.active"] = 1
    _, active = await judge(admin, "p", "overload-inactive", settings)
    assert scaled.status is Status.WARN and "reduce_timeouts 40%" in scaled.message
    assert active.status is Status.FAIL and active.message == "overload action(s) active: stop_accepting_requests"


# ---- traffic -------------------------------------------------------------------------

async def test_success_rate_counts_only_data_plane_clusters(settings) -> None:
    admin = FakeAdmin()
    stats = admin.proxy("p").stats
    # The control plane's own cluster failing is not application traffic.
    stats.update({"cluster.xds-grpc.upstream_cx_connect_fail": 50, "cluster.xds-grpc.upstream_rq_completed": 50,
                  "cluster.xds-grpc.upstream_rq_5xx": 50})
    _, result = await judge(admin, "p", "upstream-success-rate", settings)
    assert result.status is Status.PASS and result.observed == 1.0  # 50 recorded 2xx, no 5xx counter yet


async def test_no_traffic_is_its_own_outcome(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["cluster.upstream.upstream_rq_completed"] = 3
    _, result = await judge(admin, "p", "upstream-success-rate", settings)
    assert result.status is Status.SKIP and result.no_data
    assert result.message == "no traffic: 3 request(s) since proxy start < 10"


async def test_one_unlucky_5xx_warns_while_a_real_breach_fails(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats.update({"cluster.upstream.upstream_rq_completed": 60, "cluster.upstream.upstream_rq_5xx": 1})
    _, noise = await judge(admin, "p", "upstream-success-rate", settings)
    admin.proxy("p").stats.update({"cluster.upstream.upstream_rq_completed": 250, "cluster.upstream.upstream_rq_5xx": 22})
    _, breach = await judge(admin, "p", "upstream-success-rate", settings)
    assert noise.status is Status.WARN
    assert breach.status is Status.FAIL and breach.headline == "upstream success rate 91.20% < 99.00%"


async def test_connect_failures_warn_since_start_and_fail_per_sample(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["cluster.upstream.upstream_cx_connect_fail"] = 5
    first, since_start = await judge(admin, "p", "upstream-connect-failures", settings)
    _, quiet = await judge(admin, "p", "upstream-connect-failures", settings, previous=first)
    admin.proxy("p").add("cluster.upstream.upstream_cx_connect_fail", 2)
    _, fresh = await judge(admin, "p", "upstream-connect-failures", settings, previous=first)
    assert since_start.status is Status.WARN
    assert quiet.status is Status.PASS and quiet.observed == 0
    assert fresh.status is Status.FAIL and fresh.observed == 2


async def test_outlier_ejections_warn(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["cluster.upstream.outlier_detection.ejections_active"] = 1
    report, result = await judge(admin, "p", "outlier-ejections", settings)
    assert result.status is Status.WARN and report.success


async def test_static_config_without_dynamic_listeners_is_not_an_error(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").listeners = fixture("listeners_static.json")  # what Envoy answers: {}
    _, result = await judge(admin, "p", "xds-config-accepted", settings)
    assert result.status is Status.PASS, result.message


async def test_listener_state_of_the_wrong_shape_is_an_error(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").listeners = {"configs": "nope"}
    report, result = await judge(admin, "p", "xds-config-accepted", settings)
    assert result.status is Status.ERROR and not report.success


def test_docs_document_every_check_under_its_hint_anchor() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "checks.md").read_text()
    sections = dict(re.findall(r"^### (\S+)\n(.*?)(?=^### |^## |\Z)", readme, re.M | re.S))
    for spec in CATALOG:
        assert spec.id in sections, spec.id
        assert "**Hint:**" in sections[spec.id], spec.id


async def test_accepted_updates_with_an_empty_version_are_still_accepted(settings) -> None:
    admin = FakeAdmin()
    first, _ = await judge(admin, "p", "xds-config-accepted", settings)
    admin.proxy("p").stats.update({"cluster_manager.cds.update_rejected": 1, "cluster_manager.cds.update_success": 4,
                                   "cluster_manager.cds.version_text": ""})
    _, in_gate = await judge(admin, "p", "xds-config-accepted", settings, previous=first)
    _, one_off = await judge(admin, "p", "xds-config-accepted", settings)
    assert in_gate.status is Status.FAIL and "during the window" in in_gate.message
    assert one_off.status is Status.WARN  # superseded or not, Envoy cannot say: not "never accepted"


async def test_duplicate_target_names_are_a_configuration_error(settings) -> None:
    admin = FakeAdmin()
    with pytest.raises(ValueError, match="unique"):
        async with admin.client() as client:
            await run_checks([admin.target("p"), admin.target("p")], settings, client=client)


async def test_restart_between_samples_fails_by_uptime_or_reset_counters(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats["server.uptime"] = 600
    first, one_off = await judge(admin, "p", "proxy-not-restarted", settings)
    admin.proxy("p").stats["server.uptime"] = 3
    _, by_uptime = await judge(admin, "p", "proxy-not-restarted", settings, previous=first)
    assert one_off.status is Status.PASS
    assert by_uptime.status is Status.FAIL and by_uptime.message.startswith("proxy restarted between samples")

    admin = FakeAdmin()
    admin.proxy("p").stats.update({"server.uptime": 0, "http.admin.downstream_rq_total": 40})
    first, _ = await judge(admin, "p", "proxy-not-restarted", settings)
    admin.proxy("p").stats["http.admin.downstream_rq_total"] = 3  # within the same second
    _, by_counter = await judge(admin, "p", "proxy-not-restarted", settings, previous=first)
    assert by_counter.status is Status.FAIL and "http.admin.downstream_rq_total went back" in by_counter.message


async def test_a_cluster_removed_and_readded_is_not_a_restart(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").stats.update({"server.uptime": 100, "cluster.upstream.upstream_rq_completed": 500})
    first, _ = await judge(admin, "p", "proxy-not-restarted", settings)
    admin.proxy("p").stats.update({"server.uptime": 101, "cluster.upstream.upstream_rq_completed": 2})
    _, result = await judge(admin, "p", "proxy-not-restarted", settings, previous=first)
    assert result.status is Status.PASS
