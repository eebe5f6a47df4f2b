"""config-parity and proxy-profile against real Envoys of both versions the project runs: each passes
on a healthy canary and fails for the right reason when the condition is provoked for real."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

import pytest

import localmesh as lm
from checks import AdminClient, Status, Target, run_checks
from checks._exceptions import AdminStatusError
from checks.config_dump import parse_config_dump
from checks.observe import _FETCHERS, Read
from meshmodel.spec_check import load_spec

pytestmark = pytest.mark.envoy

_serial = itertools.count()
VERSIONS = ("1.40.0", "1.39.3")


def _spec(**gates: object):
    """A stack's spec with the rehearsal's profile (overload actions on), as the gates get it."""
    return load_spec({
        "meshlift:revisions": [{"version": "1.30.3"}],
        "meshlift:gates": gates,
        "meshlift:proxyProfile": {"overload": {"enabled": True, "maxHeapBytes": 1 << 30}},
    })


@pytest.fixture
def start(binaries, started, plane, tmp_path) -> Callable[..., lm.Proxy]:
    """Start a proxy of `version` running the spec's profile (or `profile=None`: none at all)."""
    from rollout.platforms.local_profile import local_profile

    def make(version: str, *, profile: object = "spec", **options: object) -> lm.Proxy:
        name = f"p{next(_serial)}"
        rendered = local_profile(_spec().proxy_profile, tmp_path / name) if profile == "spec" else profile
        return started(binaries[version], name=name, tls=True, overload=lm.OverloadThresholds(),
                       control_plane=plane, profile=rendered, **options)

    return make


def canary(proxy: lm.Proxy) -> Target:
    return Target(name="shop/web-canary-0", admin_url=proxy.admin_url, role="canary",
                  labels={"namespace": "shop", "workload": "web-canary"})


def baseline(proxy: lm.Proxy, name: str = "shop/web-0", workload: str = "web") -> Target:
    return Target(name=name, admin_url=proxy.admin_url, role="baseline",
                  labels={"namespace": "shop", "workload": workload})


async def judge(targets: list[Target], check: str, settings=None, previous=None):
    report = await run_checks(targets, settings or _spec().gates, only=[check], previous=previous)
    return report, report.targets[0].result(check)


@pytest.mark.parametrize("canary_version", VERSIONS)
async def test_a_canary_serving_what_its_baseline_serves_passes(start, canary_version) -> None:
    other = next(v for v in VERSIONS if v != canary_version)
    can, base = start(canary_version), start(other)
    _, result = await judge([canary(can), baseline(base)], "config-parity")
    assert result.status is Status.PASS, result.message
    assert result.details["baselines"] == ["shop/web-0"]
    assert "2 listeners" in result.message and "4 routes" in result.message


@pytest.mark.parametrize("canary_version", VERSIONS)
async def test_a_canary_given_a_listener_push_without_a_route_fails_naming_it(start, canary_version) -> None:
    other = next(v for v in VERSIONS if v != canary_version)
    can, base = start(canary_version), start(other)
    before = can.stat("listener_manager.lds.update_success")
    lm.inject_fault(can, "missing-route")
    lm.wait_until(lambda: can.stat("listener_manager.lds.update_success") > before, timeout_s=5)
    # Nothing a stats-based check reads moved: the push was accepted and traffic flows.
    assert can.stat("listener_manager.lds.update_rejected") == 0
    assert lm.send_traffic(can.url, requests=5).statuses == {200: 5}

    report, result = await judge([canary(can), baseline(base)], "config-parity")

    assert result.status is Status.FAIL and not report.success
    assert result.details["missing"] == {"route": ["http/local_route/all/status", "https/local_route/all/status"]}
    assert "serves less than its baseline: route 'http/local_route/all/status'" in result.message
    # The baseline is judged too (listener states) but never compared with anything.
    assert report.targets[1].result("config-parity").status is Status.PASS


async def test_an_allowlisted_difference_passes_and_only_that_one(start) -> None:
    can, base = start("1.40.0"), start("1.39.3")
    lm.inject_fault(can, "missing-route")
    lm.wait_until(lambda: can.stat("listener_manager.lds.update_success") >= 2, timeout_s=5)

    _, allowed = await judge([canary(can), baseline(base)], "config-parity",
                             _spec(parityAllow=["route:*/local_route/all/status"]).gates)
    _, half = await judge([canary(can), baseline(base)], "config-parity",
                          _spec(parityAllow=["route:http/*"]).gates)

    assert allowed.status is Status.PASS, allowed.message
    assert half.status is Status.FAIL and half.details["missing"] == {"route": ["https/local_route/all/status"]}


async def test_only_the_baselines_of_the_same_workload_are_the_reference(start) -> None:
    can, base, other_app = start("1.40.0"), start("1.39.3"), start("1.39.3")
    other_app.xds.push_clusters([*other_app.clusters(), lm._bootstrap.static_cluster(name="payments", port=9)])
    lm.wait_until(lambda: other_app.stat("cluster_manager.cds.update_success") >= 2, timeout_s=5)

    _, result = await judge([canary(can), baseline(base), baseline(other_app, "pay/api-0", "api")], "config-parity")

    assert result.status is Status.PASS, result.message
    assert result.details["baselines"] == ["shop/web-0"]


async def test_a_listener_stuck_warming_fails_on_the_second_sample(start) -> None:
    can = start("1.40.0")
    # A listener whose routes come from RDS over ADS: the stand-in control plane never
    # answers, and without an initial-fetch timeout the listener warms for ever.
    warming = lm._bootstrap.http_listener(name="waits-for-rds", port=lm.free_port(), cluster="upstream")
    hcm = warming["filter_chains"][0]["filters"][0]["typed_config"]
    del hcm["route_config"]
    hcm["rds"] = {"route_config_name": "never", "config_source": {"ads": {}, "initial_fetch_timeout": "0s",
                                                                   "resource_api_version": "V3"}}
    can.xds.push_listeners([*can.listeners(), warming])
    lm.wait_until(lambda: can.stat("listener_manager.total_listeners_warming") == 1, timeout_s=5)

    first, once = await judge([canary(can)], "config-parity")
    _, twice = await judge([canary(can)], "config-parity", previous=first)

    assert once.status is Status.WARN and once.details["warming_listeners"] == ["waits-for-rds"]
    assert twice.status is Status.FAIL and "'waits-for-rds' still warming" in twice.message


async def test_a_rejected_listener_fails_parity_as_failed(start) -> None:
    can = start("1.39.3")
    lm.inject_fault(can, "reject-config")
    lm.wait_until(lambda: can.stat("listener_manager.lds.update_rejected") >= 1, timeout_s=5)
    _, result = await judge([canary(can)], "config-parity")
    assert result.status is Status.FAIL and "listener 'http' failed" in result.message


async def test_an_unreadable_baseline_fails_the_canary_closed(start) -> None:
    can = start("1.40.0")
    gone = Target(name="shop/web-0", admin_url=f"http://127.0.0.1:{lm.closed_port()}", role="baseline",
                  labels={"namespace": "shop", "workload": "web"})
    report, result = await judge([canary(can), gone], "config-parity")
    assert result.status is Status.ERROR and "cannot read baseline shop/web-0" in result.message
    assert not report.success


# ------------------------------------------------------------------ proxy-profile


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_proxy_running_the_profile_passes(start, version, tmp_path) -> None:
    proxy = start(version)
    lm.send_traffic(proxy.url, requests=3)
    _, result = await judge([canary(proxy)], "proxy-profile")
    assert result.status is Status.PASS, result.message
    assert "access log on 2 HTTP connection manager(s)" in result.message and "heap overload actions" in result.message
    access_log = tmp_path / proxy.spec.name / "access.log"
    lm.wait_until(lambda: access_log.exists() and access_log.read_text().count("\n") >= 3, timeout_s=5)
    assert f'"127.0.0.1:{proxy.upstream.port}"' in access_log.read_text()  # %UPSTREAM_HOST% of every line


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_proxy_that_dropped_the_profile_fails_naming_each_part(start, version) -> None:
    proxy = start(version, profile=None)
    _, result = await judge([canary(proxy)], "proxy-profile")
    problems = result.details["problems"]
    assert result.status is Status.FAIL
    assert any(p.startswith("no access log with %RESPONSE_FLAGS% %UPSTREAM_HOST% %DURATION% on 2") for p in problems)
    assert "no fixed_heap overload monitor in the bootstrap" in problems
    assert "no TCP keepalive toward the control plane (cluster 'xds_cluster')" in problems
    assert "no TCP keepalive on 1 upstream cluster(s): upstream" in problems
    assert "log level info, expected warning" in problems


async def test_other_thresholds_and_levels_than_the_profiles_fail(start, tmp_path) -> None:
    from rollout.platforms.local_profile import local_profile

    drifted = local_profile(load_spec({
        "meshlift:revisions": [{"version": "1.30.3"}],
        "meshlift:proxyProfile": {"overload": {"enabled": True, "maxHeapBytes": 1 << 30, "disableKeepaliveAt": 0.9},
                                  "componentLogLevel": "misc:info"},
    }).proxy_profile, tmp_path)
    proxy = start("1.40.0", profile=drifted)
    _, result = await judge([canary(proxy)], "proxy-profile")
    assert result.status is Status.FAIL
    assert result.details["problems"] == ["disable_http_keepalive at heap 0.90, expected 0.95",
                                          "component log level lacks misc:error"]


async def test_profile_check_skips_without_a_profile(start, settings) -> None:
    proxy = start("1.40.0")
    result = (await run_checks([canary(proxy)], settings, only=["proxy-profile"])).targets[0].result("proxy-profile")
    assert result.status is Status.SKIP and not result.no_data


async def test_bootstrap_listeners_need_no_access_log(start, tmp_path) -> None:
    # Like Istio's 15090 stats and 15021 health listeners: baked into the bootstrap, never logged.
    proxy = start("1.40.0", workdir=tmp_path / "work")
    proxy.process.stop(grace_s=2)
    boot = json.loads(proxy.layout.bootstrap.read_text())
    bare = lm._bootstrap.http_listener(name="health", port=lm.free_port(), cluster="xds_cluster")
    boot["static_resources"]["listeners"].append({k: v for k, v in bare.items() if k != "@type"})
    proxy.layout.bootstrap.write_text(json.dumps(boot))
    proxy.spawn()
    proxy.wait_ready()

    _, result = await judge([canary(proxy)], "proxy-profile")

    assert result.status is Status.PASS, result.message
    assert "access log on 2 HTTP connection manager(s)" in result.message


async def test_a_log_level_the_team_set_on_its_workload_warns_naming_it(start, tmp_path) -> None:
    from dataclasses import replace

    from checks import PodFacts
    from rollout.platforms.local_profile import local_profile

    # The team's pod template says sidecar.istio.io/logLevel: debug; the clone carries it into the canary.
    team = replace(local_profile(_spec().proxy_profile, tmp_path / "team"), log_level="debug")
    proxy = start("1.40.0", profile=team)
    annotated = PodFacts(namespace="shop", name="web-canary-0", revision="1-31-0", log_level="debug")
    own = Target(name="shop/web-canary-0", admin_url=proxy.admin_url, role="canary",
                 labels={"namespace": "shop", "workload": "web-canary"}, pod=annotated)
    _, result = await judge([own], "proxy-profile")
    assert result.status is Status.WARN, result.message
    assert result.message == ("profile in force but for the workload's own setting: log level debug, expected "
                              "warning (pod annotation sidecar.istio.io/logLevel: debug)")
    # Without the annotation, the same proxy breaks the profile.
    _, breach = await judge([canary(proxy)], "proxy-profile")
    assert breach.status is Status.FAIL and breach.details["problems"] == ["log level debug, expected warning"]


class _CountingClient(AdminClient):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[dict[str, str], int]] = []

    async def get(self, base_url, path, params=None, **kw):  # type: ignore[override]
        response = await super().get(base_url, path, params, **kw)
        self.bodies.append((dict(params or {}), len(response.body)))
        return response


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_scoped_config_reads_see_what_the_whole_dump_shows_for_a_fraction_of_its_bytes(
        start, version) -> None:
    proxy = start(version)
    proxy.xds.push_clusters([*proxy.clusters(), *(lm._bootstrap.static_cluster(name=f"svc{i}", port=9)
                                                   for i in range(30))])
    lm.wait_until(lambda: proxy.stat("cluster_manager.active_clusters") >= 31, timeout_s=5)
    async with _CountingClient() as client:
        whole = await client.get(proxy.admin_url, "/config_dump")
        client.bodies.clear()
        scoped = await _FETCHERS[Read.CONFIG](client, proxy.admin_url, "")

    assert scoped == parse_config_dump(json.loads(whole.body))
    assert len(scoped.inventory["cluster"]) >= 31 and scoped.overload_actions and scoped.hcm_logging
    assert all(params for params, _ in client.bodies)  # never the whole dump
    assert sum(size for _, size in client.bodies) < len(whole.body) / 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_envoy_refuses_a_mask_across_config_types_or_through_a_repeated_field(start, version) -> None:
    proxy = start(version)
    async with AdminClient(attempts=1) as client:
        for params in ({"mask": "static_listeners,dynamic_active_clusters"},
                       {"resource": "dynamic_listeners", "mask": "active_state.listener.filter_chains.name"}):
            with pytest.raises(AdminStatusError) as refused:
                await client.get(proxy.admin_url, "/config_dump", params)
            assert refused.value.status == 400
        # What the scoped reads rely on instead: one type per mask, `{}` for an empty resource.
        assert (await client.get_json(proxy.admin_url, "/config_dump", {"resource": "dynamic_route_configs"})) == {}
