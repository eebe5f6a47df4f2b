"""What one sample reads: /server_info once per proxy process, /config_dump only with LDS,
/certs while no certificate can have changed, readiness and stats every time (recorded Envoy
answers over the real client)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx

from checks import AdminClient, Report, Status, run_checks
from checks.observe import CERTS_MAX_AGE_S, SERVER_INFO_MAX_AGE_S, Read, carry_limit
from meshmodel.spec import GateSettings

from .recorded import FakeAdmin

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
PROCESS = {"server.uptime": 120, "server.version": 10376576, "http.admin.downstream_rq_total": 50}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watched(admin: FakeAdmin, name: str = "p") -> None:
    """A proxy whose stats carry what proves it is still the same process."""
    admin.proxy(name).stats.update(PROCESS)


async def sample(admin: FakeAdmin, settings: GateSettings, previous: Report | None = None, *, clock: Clock | None = None,
                 names: tuple[str, ...] = ("p",), **target_kw) -> Report:
    async with admin.client() as client:
        return await run_checks([admin.target(n, **target_kw) for n in names], settings, client=client,
                                previous=previous, wall_clock=lambda: NOW, clock=clock or Clock())


def paths(admin: FakeAdmin) -> list[str]:
    taken = [r.url.path for r in admin.requests]
    admin.requests.clear()
    return taken


def next_sample(admin: FakeAdmin, name: str = "p", *, requests: int = 4, seconds: float = 1) -> None:
    """What happens to a live proxy between two samples: our reads count, uptime goes on."""
    proxy = admin.proxy(name)
    proxy.add("http.admin.downstream_rq_total", requests)
    proxy.add("server.uptime", seconds)


async def test_server_info_is_read_once_per_process_and_the_version_check_still_judges_it(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    first = await sample(admin, settings, expected_version="1.40.0")
    assert paths(admin).count("/server_info") == 1
    next_sample(admin)
    second = await sample(admin, settings, first, expected_version="1.40.0")
    assert "/server_info" not in paths(admin)
    result = second.targets[0].result("proxy-version")
    assert result.status is Status.PASS and result.observed == "1.40.0"
    obs = second.history["p"][-1]
    assert obs.carried[Read.SERVER_INFO] == first.history["p"][-1].taken_at


async def test_the_config_dump_is_carried_while_no_xds_counter_moves_and_read_again_after_a_push(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    first = await sample(admin, settings)
    assert _full_dumps(admin) == 1
    next_sample(admin)
    second = await sample(admin, settings, first)
    assert _full_dumps(admin) == 0
    assert second.history["p"][-1].carried[Read.CONFIG] == first.history["p"][-1].taken_at
    # A push: LDS accepted a new version. What the proxy serves may have changed.
    proxy = admin.proxy("p")
    proxy.add("listener_manager.lds.update_success", 1)
    proxy.stats["listener_manager.lds.version_text"] = "99"
    next_sample(admin)
    third = await sample(admin, settings, second)
    assert _full_dumps(admin) == 1
    assert Read.CONFIG not in third.history["p"][-1].carried


def _full_dumps(admin: FakeAdmin) -> int:
    """How many times the served config was read (its scoped reads include the routes once)."""
    found = [r for r in admin.requests if r.url.path == "/config_dump"
             and r.url.params.get("mask") == "dynamic_route_configs"]
    admin.requests.clear()
    return len(found)


async def test_server_info_is_read_again_when_the_stats_show_a_restart(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    first = await sample(admin, settings, expected_version="1.40.0")
    paths(admin)
    # A new process: counters from zero, and it runs another version.
    admin.proxy("p").stats.update({"server.uptime": 0, "http.admin.downstream_rq_total": 3})
    admin.proxy("p").server_info["version"] = "abc/1.39.3/Clean/RELEASE/BoringSSL"
    second = await sample(admin, settings, first, expected_version="1.40.0")
    assert paths(admin).count("/server_info") == 1
    by_id = {r.check_id: r for r in second.targets[0].results}
    assert by_id["proxy-version"].status is Status.FAIL and "1.39.3" in by_id["proxy-version"].message
    assert by_id["proxy-not-restarted"].status is Status.FAIL


async def test_another_build_is_a_restart_even_when_the_counters_grew(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    first = await sample(admin, settings, expected_version="1.40.0")
    paths(admin)
    next_sample(admin, requests=500, seconds=30)
    admin.proxy("p").stats["server.version"] = 1234567
    admin.proxy("p").server_info["version"] = "abc/1.39.3/Clean/RELEASE/BoringSSL"
    second = await sample(admin, settings, first, expected_version="1.40.0")
    assert paths(admin).count("/server_info") == 1
    assert second.targets[0].result("proxy-version").status is Status.FAIL
    restarted = second.targets[0].result("proxy-not-restarted")
    assert restarted.status is Status.FAIL and "server.version changed" in restarted.message


async def test_no_proof_of_the_same_process_means_reading_server_info_again(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    report = await sample(admin, settings)
    paths(admin)
    # The admin request count did not grow although this very read counts itself: not provably
    # the same process (a young replacement that already served as many admin requests).
    report = await sample(admin, settings, report)
    assert paths(admin).count("/server_info") == 1
    # Stats that do not say (uptime not reported) prove nothing either.
    del admin.proxy("p").stats["server.uptime"]
    next_sample(admin)
    report = await sample(admin, settings, report)
    assert paths(admin).count("/server_info") == 1


async def test_carried_server_info_is_read_again_after_its_maximum_age(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    clock = Clock()
    report = await sample(admin, settings, clock=clock)
    limit = carry_limit("p", SERVER_INFO_MAX_AGE_S)
    fetched = []
    for elapsed in (limit - 1, limit + 0.5, 2 * limit - 0.5, 2 * limit + 1):
        paths(admin)
        next_sample(admin, seconds=elapsed - (clock.now - 100.0))
        clock.now = 100.0 + elapsed
        report = await sample(admin, settings, report, clock=clock)
        fetched.append(paths(admin).count("/server_info"))
    assert fetched == [0, 1, 0, 1]


def test_each_proxy_carries_its_reads_for_its_own_share_of_the_maximum_age() -> None:
    limits = [carry_limit(f"shop/web-{i}", CERTS_MAX_AGE_S) for i in range(1000)]
    assert all(CERTS_MAX_AGE_S / 2 <= limit < CERTS_MAX_AGE_S for limit in limits)
    assert limits == [carry_limit(f"shop/web-{i}", CERTS_MAX_AGE_S) for i in range(1000)]  # stable
    # Spread, so proxies first read together are read again over several samples, not in one.
    per_second = Counter(int(limit) for limit in limits)
    assert sorted(per_second) == [5, 6, 7, 8, 9] and max(per_second.values()) < 300


async def test_certs_are_carried_until_an_sds_update_or_their_maximum_age(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    clock = Clock()
    report = await sample(admin, settings, clock=clock)
    assert paths(admin).count("/certs") == 1
    next_sample(admin)
    clock.now += 1
    report = await sample(admin, settings, report, clock=clock)
    assert "/certs" not in paths(admin)
    assert report.history["p"][-1].carried[Read.CERTS] == 100.0
    # An SDS push: the proxy may serve another certificate from now on.
    admin.proxy("p").add("sds.server_cert.update_success", 1)
    next_sample(admin)
    clock.now += 1
    report = await sample(admin, settings, report, clock=clock)
    assert paths(admin).count("/certs") == 1
    assert Read.CERTS not in report.history["p"][-1].carried
    # No stat moves (Istio's stats matcher keeps no sds.*): read again at its maximum age.
    fetched = []
    for _ in range(int(CERTS_MAX_AGE_S)):
        next_sample(admin)
        clock.now += 1
        report = await sample(admin, settings, report, clock=clock)
        fetched.append(paths(admin).count("/certs"))
    first_read_again = fetched.index(1) + 1  # seconds after the last read
    assert first_read_again == math.ceil(carry_limit("p", CERTS_MAX_AGE_S))
    assert sum(fetched[:first_read_again]) == 1


async def test_a_carried_certificate_that_expires_meanwhile_fails_at_once(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    clock = Clock()
    expires = NOW + timedelta(days=settings.min_cert_validity_days, seconds=2)
    _serve_one_certificate(admin, expires)
    first = await sample(admin, settings, clock=clock)
    assert first.targets[0].result("certificates-valid").status is Status.PASS
    paths(admin)
    next_sample(admin)
    clock.now += 3
    async with admin.client() as client:
        later = await run_checks([admin.target("p")], settings, client=client, previous=first, clock=clock,
                                 wall_clock=lambda: NOW + timedelta(seconds=3))
    assert "/certs" not in paths(admin)
    assert later.targets[0].result("certificates-valid").status is Status.FAIL


def _serve_one_certificate(admin: FakeAdmin, expires: datetime) -> None:
    entry = admin.proxy("p").certs["certificates"][0]["cert_chain"][0]
    entry["expiration_time"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    admin.proxy("p").certs = {"certificates": [{"cert_chain": [entry], "ca_cert": []}]}


async def test_certs_that_failed_or_came_from_another_process_are_read_again(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    admin.proxy("p").certs = {"no": "certificates"}
    first = await sample(admin, settings)
    assert first.targets[0].result("certificates-valid").status is Status.ERROR
    paths(admin)
    admin.proxy("p").certs = FakeAdmin().proxy("p").certs
    next_sample(admin)
    second = await sample(admin, settings, first)
    assert paths(admin).count("/certs") == 1
    assert second.targets[0].result("certificates-valid").status is Status.PASS
    admin.proxy("p").stats.update({"server.uptime": 0, "http.admin.downstream_rq_total": 3})  # a restart
    await sample(admin, settings, second)
    assert paths(admin).count("/certs") == 1


async def test_server_info_that_failed_is_never_carried(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    admin.proxy("p").server_info = {"no": "version"}
    first = await sample(admin, settings, expected_version="1.40.0")
    assert first.targets[0].result("proxy-version").status is Status.ERROR
    paths(admin)
    next_sample(admin)
    second = await sample(admin, settings, first, expected_version="1.40.0")
    assert paths(admin).count("/server_info") == 1
    assert second.targets[0].result("proxy-version").status is Status.ERROR


async def test_server_info_is_not_carried_to_another_admin_address(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    watched(admin, "q")
    first = await sample(admin, settings)
    paths(admin)
    next_sample(admin)
    next_sample(admin, "q")
    # The same target name now answers at another address (a new port-forward, a new pod).
    moved = Report(first.targets, taken_at=first.taken_at, history={"q": first.history["p"]})
    await sample(admin, settings, moved, names=("q",))
    assert paths(admin).count("/server_info") == 1


async def test_draining_is_seen_at_once_while_server_info_is_carried(settings) -> None:
    admin = FakeAdmin()
    watched(admin)
    first = await sample(admin, settings)
    paths(admin)
    next_sample(admin)
    admin.proxy("p").ready = (503, "DRAINING\n")
    second = await sample(admin, settings, first)
    assert "/server_info" not in paths(admin)
    by_id = {r.check_id: r for r in second.targets[0].results}
    assert by_id["proxy-not-draining"].status is Status.FAIL and "DRAINING" in by_id["proxy-not-draining"].message
    assert by_id["proxy-ready"].status is Status.FAIL


async def test_a_failed_ready_read_is_an_error_of_the_draining_check_too(settings) -> None:
    admin = FakeAdmin()
    admin.proxy("p").ready = (500, "boom")
    report = await sample(admin, settings)
    assert report.targets[0].result("proxy-not-draining").status is Status.ERROR


async def test_config_dump_is_read_only_for_proxies_with_an_lds_subscription(settings) -> None:
    admin = FakeAdmin()
    watched(admin, "static")
    watched(admin, "lds")
    static = admin.proxy("static")
    for name in [n for n in static.stats if n.startswith("listener_manager.lds.")]:
        del static.stats[name]
    static.listeners = {"configs": "would be an error if read"}
    report = await sample(admin, settings, names=("static", "lds"))
    hosts = [r.url.host for r in admin.requests if _listener_state_read(r)]
    assert hosts == ["lds.test"]
    assert report.targets[0].result("xds-config-accepted").status is Status.PASS
    # From the second sample on, a proxy with LDS gets /config_dump with its other reads.
    paths(admin)
    next_sample(admin, "static")
    next_sample(admin, "lds")
    await sample(admin, settings, report, names=("static", "lds"))
    assert [r.url.host for r in admin.requests if _listener_state_read(r)] == ["lds.test"]


def _listener_state_read(request: httpx.Request) -> bool:
    """The masked read of dynamic listeners' states (not the whole dump config-parity reads)."""
    return request.url.path == "/config_dump" and request.url.params.get("resource") == "dynamic_listeners"


async def test_a_failed_stats_read_means_config_dump_is_read_anyway(settings) -> None:
    admin = FakeAdmin()
    target = admin.target("p")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/stats":
            admin.requests.append(request)
            return httpx.Response(500, text="stats broke")
        return admin.handle(request)

    async with AdminClient(transport=httpx.MockTransport(handler)) as client:
        report = await run_checks([target], settings, client=client, wall_clock=lambda: NOW)
    assert "/config_dump" in paths(admin)
    assert report.targets[0].result("xds-config-accepted").status is Status.ERROR


async def test_server_info_is_kept_without_the_extension_list(settings) -> None:
    admin = FakeAdmin()
    info = admin.proxy("p").server_info
    info["node"]["extensions"] = [{"name": f"envoy.ext.{i}", "category": "x"} for i in range(500)]
    info["node"]["metadata"] = {"ISTIO_VERSION": "1.28.1"}
    report = await sample(admin, settings, expected_version="1.28.1")
    kept = report.history["p"][-1].reads[Read.SERVER_INFO]
    assert "extensions" not in kept["node"] and kept["node"]["metadata"] == {"ISTIO_VERSION": "1.28.1"}
    assert kept["version"] == info["version"] and kept["state"] == info["state"]
    assert report.targets[0].result("proxy-version").status is Status.PASS


async def test_a_baseline_pod_is_read_only_for_what_the_canaries_compare_with_it(settings) -> None:
    admin = FakeAdmin()
    for name in ("can", "base"):
        watched(admin, name)
    async with admin.client() as client:
        report = await run_checks([admin.target("can", role="canary", expected_version="1.40.0"),
                                   admin.target("base", role="baseline", expected_version="1.39.3")],
                                  settings, client=client, wall_clock=lambda: NOW, clock=Clock())

    read = {host: sorted({r.url.path for r in admin.requests if r.url.host == f"{host}.test"})
            for host in ("can", "base")}
    assert read["can"] == ["/certs", "/config_dump", "/ready", "/server_info", "/stats"]
    assert read["base"] == ["/config_dump", "/stats"]
    base = report.targets[1]
    assert base.result("proxy-version").status is Status.SKIP
    assert "only the canaries' reference" in base.result("certificates-valid").message
    assert base.result("config-parity").status is not Status.SKIP
    assert report.targets[0].result("config-parity").details["baselines"] == ["base"]
