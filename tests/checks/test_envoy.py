"""Each check against real Envoy processes: passes on a healthy proxy, and fails for
the right reason when the condition is provoked for real (localmesh faults)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator

import pytest

import localmesh as lm
from checks import AdminClient, GateOutcome, Report, Status, Target, run_checks, run_gate
from meshmodel.spec import GateSettings

pytestmark = pytest.mark.envoy

_serial = itertools.count()
WAIT_S = 8.0  # longest any provoked condition takes to show in the admin interface


@pytest.fixture(scope="module")
def target_bin() -> lm.EnvoyBinary:
    return lm.target_envoy()


@pytest.fixture(scope="module")
def stable_bin() -> lm.EnvoyBinary:
    return lm.stable_envoy()


@pytest.fixture(scope="module")
def healthy(target_bin: lm.EnvoyBinary, upstream: lm.Upstream, plane: lm.ControlPlane) -> Iterator[lm.Proxy]:
    """A full-featured 1.40 proxy that stays healthy: every test here only reads it."""
    proxy = lm.start_proxy(
        target_bin, upstream, name="healthy", tls=True, overload=lm.OverloadThresholds(),
        control_plane=plane,
    )
    lm.send_traffic(proxy.url, requests=60)
    yield proxy
    proxy.stop()


@pytest.fixture
def fresh(target_bin: lm.EnvoyBinary, started: Callable[..., lm.Proxy]) -> Callable[..., lm.Proxy]:
    """A factory of throw-away 1.40 proxies for faults that leave traces (rejections, drains)."""
    return lambda **options: started(target_bin, name=f"fresh{next(_serial)}", **options)


def _live(proxy: lm.Proxy) -> bool:
    try:
        return proxy.ready() == (200, "LIVE")
    except OSError:
        return False  # admin port not bound yet


def target_of(proxy: lm.Proxy, **kw: object) -> Target:
    return Target(name=proxy.spec.name, admin_url=proxy.admin_url, **kw)  # type: ignore[arg-type]


async def check_once(proxy: lm.Proxy, settings: GateSettings, *, previous: Report | None = None, **kw: object) -> Report:
    return await run_checks([target_of(proxy, **kw)], settings, previous=previous)


async def wait_for_status(proxy: lm.Proxy, check_id: str, status: Status, settings: GateSettings, **kw: object):
    """Re-check until `check_id` reaches `status` (the condition needs a moment to show)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        result = (await check_once(proxy, settings, **kw)).targets[0].result(check_id)
        if result.status is status or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_healthy_proxy_passes_every_applicable_check(healthy: lm.Proxy, settings: GateSettings) -> None:
    report = await check_once(healthy, settings, expected_version="1.40.0")
    by_id = {r.check_id: r for r in report.targets[0].results}
    assert report.success, [r.message for r in by_id.values() if r.status is not Status.PASS]
    for check_id in ("proxy-ready", "proxy-version", "proxy-not-draining", "proxy-not-restarted", "proxy-memory",
                     "control-plane-connected", "xds-config-accepted", "xds-unknown-fields", "certificates-valid",
                     "overload-inactive", "upstream-success-rate", "upstream-connect-failures", "outlier-ejections"):
        assert by_id[check_id].status is Status.PASS, (check_id, by_id[check_id].message)
    assert by_id["certificates-valid"].observed > 80  # the 90-day certificate, to the second


async def test_wrong_proxy_version_fails_on_the_stable_binary(
    stable_bin: lm.EnvoyBinary, upstream: lm.Upstream, healthy: lm.Proxy, settings: GateSettings
) -> None:
    with lm.start_proxy(stable_bin, upstream, name="stable") as old:
        report = await run_checks(
            [target_of(old, expected_version="1-40-0"), target_of(healthy, expected_version="1-40-0")], settings,
            only=["proxy-version"],
        )
    stale, current = (t.result("proxy-version") for t in report.targets)
    assert stale.status is Status.FAIL and "1.39.3" in stale.message
    assert current.status is Status.PASS and current.observed == "1.40.0"


async def test_upstream_5xx_fails_the_success_rate(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    before = await check_once(proxy, settings)
    with lm.inject_fault(proxy, "5xx"):
        sent = lm.send_traffic(proxy.url, requests=40)
    assert sent.server_errors == 40
    result = (await check_once(proxy, settings, previous=before)).targets[0].result("upstream-success-rate")
    assert result.status is Status.FAIL
    assert result.headline == "upstream success rate 0.00% < 99.00%"


async def test_upstream_down_fails_connect_failures_and_success_rate(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    before = await check_once(proxy, settings)
    connect_fail = "cluster.upstream.upstream_cx_connect_fail"
    failures_before = proxy.stat(connect_fail)
    with lm.inject_fault(proxy, "upstream-down"):
        lm.send_traffic(proxy.url, requests=20)
        report = await check_once(proxy, settings, previous=before)
        failures = proxy.stat(connect_fail) - failures_before
    target = report.targets[0]
    # Envoy may serve several queued requests from one failed attempt (17-20 of 20
    # seen under load), so the check must report exactly what Envoy counted.
    assert failures > settings.max_connect_failures
    assert target.result("upstream-connect-failures").status is Status.FAIL
    assert target.result("upstream-connect-failures").observed == failures
    assert target.result("upstream-success-rate").status is Status.FAIL


async def test_rejected_listener_update_fails_while_in_effect_and_passes_once_superseded(
    fresh, settings: GateSettings
) -> None:
    proxy = fresh()
    fault = lm.inject_fault(proxy, "reject-config")
    rejected = await wait_for_status(proxy, "xds-config-accepted", Status.FAIL, settings)
    assert rejected.status is Status.FAIL
    assert "listener 'http'" in rejected.message and "still in effect" in rejected.message
    fault.revert()  # the control plane pushes a good version: the rejection is superseded
    superseded = await wait_for_status(proxy, "xds-config-accepted", Status.PASS, settings)
    assert superseded.status is Status.PASS, superseded.message
    assert superseded.observed["rejected"] >= 1  # the counter remembers; the check knows better


async def test_rejected_listener_update_during_the_window_fails_even_if_superseded(
    fresh, settings: GateSettings
) -> None:
    proxy = fresh()
    start = await check_once(proxy, settings)
    with lm.inject_fault(proxy, "reject-config"):
        lm.wait_until(lambda: proxy.stat("listener_manager.lds.update_rejected") >= 1, timeout_s=WAIT_S)
    lm.wait_until(lambda: proxy.stat("listener_manager.lds.update_success") >= 2, timeout_s=WAIT_S)
    result = (await check_once(proxy, settings, previous=start)).targets[0].result("xds-config-accepted")
    assert result.status is Status.FAIL
    assert "LDS: 1 update(s) rejected during the window" in result.message


async def test_rejected_cluster_update_fails(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    start = await check_once(proxy, settings)
    lm.inject_fault(proxy, "reject-cluster-config")
    lm.wait_until(lambda: proxy.stat("cluster_manager.cds.update_rejected") >= 1, timeout_s=WAIT_S)
    result = (await check_once(proxy, settings, previous=start)).targets[0].result("xds-config-accepted")
    assert result.status is Status.FAIL
    assert "CDS: 1 update(s) rejected during the window" in result.message
    # One-off, with no window: Envoy keeps no per-cluster error state, so it can only warn.
    alone = (await check_once(proxy, settings)).targets[0].result("xds-config-accepted")
    assert alone.status is Status.WARN and "CDS" in alone.message


@pytest.mark.parametrize(
    ("fault", "fragment"), [("cert-expiry", "expires in 2."), ("cert-expired", "expired 1.0 days ago")]
)
async def test_certificate_within_threshold_or_expired_fails(fresh, settings: GateSettings, fault: str, fragment: str) -> None:
    proxy = fresh(tls=True)
    lm.inject_fault(proxy, fault)
    result = await wait_for_status(proxy, "certificates-valid", Status.FAIL, settings)
    assert result.status is Status.FAIL
    assert fragment in result.message, result.message
    assert result.threshold == settings.min_cert_validity_days


async def test_overload_action_active_fails_while_ready_stays_live(fresh, settings: GateSettings) -> None:
    proxy = fresh(overload=lm.OverloadThresholds())
    with lm.inject_fault(proxy, "overload"):
        result = await wait_for_status(proxy, "overload-inactive", Status.FAIL, settings)
        ready = (await check_once(proxy, settings)).targets[0].result("proxy-ready")
    assert result.status is Status.FAIL and "stop_accepting_requests" in result.message
    assert ready.status is Status.PASS  # /ready stays LIVE: only the overload check sees it


async def test_draining_fails_ready_and_not_draining(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    lm.inject_fault(proxy, "draining")
    target = (await check_once(proxy, settings)).targets[0]
    assert target.result("proxy-ready").status is Status.FAIL
    assert "DRAINING" in target.result("proxy-ready").message
    assert target.result("proxy-not-draining").status is Status.FAIL


async def test_control_plane_unreachable_fails(fresh, settings: GateSettings) -> None:
    plane = lm.ControlPlane()
    plane.start()
    try:
        proxy = fresh(control_plane=plane)
        connected = await wait_for_status(proxy, "control-plane-connected", Status.PASS, settings)
        assert connected.status is Status.PASS
        lm.inject_fault(proxy, "control-plane-down")
        lost = await wait_for_status(proxy, "control-plane-connected", Status.FAIL, settings)
    finally:
        plane.stop()
    assert lost.status is Status.FAIL and lost.observed == 0


async def test_gate_passes_on_healthy_canary_and_halts_on_5xx(
    fresh, stable_bin: lm.EnvoyBinary, upstream: lm.Upstream
) -> None:
    settings = GateSettings(interval=0.25, window=8.0, consecutive_passes=3)
    canary = fresh()
    with lm.start_proxy(stable_bin, upstream, name="baseline") as baseline:
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                lm.send_traffic(canary.url, requests=20, rate_per_s=100)
                lm.send_traffic(baseline.url, requests=20, rate_per_s=100)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            await asyncio.sleep(0.3)
            targets = dict(baseline_targets=[target_of(baseline, role="baseline")])
            passed = await run_gate([target_of(canary, role="canary", expected_version="1.40.0")], settings, **targets)
            with lm.inject_fault(canary, "5xx"):
                failed = await run_gate([target_of(canary, role="canary")], settings, **targets, name="canary 1-40-0")
        finally:
            stop.set()
            worker.join(timeout=10)
    assert passed.outcome is GateOutcome.PASSED, passed.message
    assert failed.outcome is GateOutcome.FAILED
    assert failed.message.startswith("Halt canary 1-40-0 advancement: ")
    assert "upstream-success-rate" in failed.failing_checks
    assert len(failed.samples) <= 3  # decided within a couple of samples of the fault


def test_cli_exit_codes_against_real_envoy(healthy: lm.Proxy) -> None:
    from typer.testing import CliRunner

    from checks.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["--admin", healthy.admin_url, "--expected-version", "1.40.0"])
    wrong = runner.invoke(app, ["--admin", healthy.admin_url, "--expected-version", "1.39.3", "--json"])
    assert ok.exit_code == 0, ok.output
    assert "Status check results: √ passed" in ok.output
    assert wrong.exit_code == 1
    doc = json.loads(wrong.stdout)
    version = next(c for c in doc["targets"][0]["checks"] if c["id"] == "proxy-version")
    assert (version["result"], version["observed"], version["threshold"]) == ("fail", "1.40.0", "1.39.3")


def test_the_admin_port_is_an_envoy_admin_and_the_traffic_port_is_not(healthy: lm.Proxy) -> None:
    """--admin pointed at the proxy's data-plane listener (a common slip) is named as not an Envoy admin."""
    from typer.testing import CliRunner

    from checks.cli import app

    runner = CliRunner()
    admin = json.loads(runner.invoke(app, ["--admin", healthy.admin_url, "--json"]).stdout)
    assert admin["targets"][0]["endpoint"]["status"] == "ok"
    assert admin["taken_at"].endswith("Z") and admin["error"] is None
    traffic = runner.invoke(app, ["--admin", healthy.url])
    text = " ".join(traffic.stdout.split())
    assert traffic.exit_code == 1
    assert f"{healthy.url} answers, but it is not an Envoy admin interface" in text
    assert text.count("not an Envoy admin interface") == 1 and "checks not run: proxy: proxy-ready" in text
    assert "docs/checks.md#endpoint-not-envoy" in text


def test_cli_gate_passes_with_traffic(healthy: lm.Proxy) -> None:
    from typer.testing import CliRunner

    from checks.cli import app

    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            lm.send_traffic(healthy.url, requests=20, rate_per_s=100)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        result = CliRunner().invoke(
            app, ["--admin", healthy.admin_url, "--gate", "--interval", "0.3s", "--window", "6s", "--json"]
        )
    finally:
        stop.set()
        worker.join(timeout=10)
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, doc["message"]
    assert doc["schema"] == "meshlift.gate/v2" and doc["outcome"] == "passed"
    assert len(doc["samples"]) == 3


async def test_control_plane_at_a_closed_port_fails_after_the_proxy_goes_live(fresh, settings: GateSettings) -> None:
    proxy = fresh(control_plane_port=lm.closed_port())  # went LIVE after the initial fetch timeout
    result = (await check_once(proxy, settings)).targets[0].result("control-plane-connected")
    assert result.status is Status.FAIL and result.observed == 0


async def test_fresh_proxy_that_rejected_its_first_cluster_push_fails_without_a_window(
    target_bin: lm.EnvoyBinary, upstream: lm.Upstream, settings: GateSettings
) -> None:
    name = f"first-nack{next(_serial)}"
    proxy = lm.Proxy(lm.ProxySpec(binary=target_bin, name=name), upstream=upstream.endpoint(name))
    proxy.xds.push_bad_clusters()  # the very first CDS it will ever read is invalid
    proxy.spawn()  # not start(): that insists on active listeners, and the listener's route is broken too
    try:
        lm.wait_until(lambda: _live(proxy), timeout_s=10, what="LIVE")
        target = (await check_once(proxy, settings)).targets[0]
    finally:
        proxy.stop()
    result = target.result("xds-config-accepted")
    assert result.status is Status.FAIL
    assert "CDS: 1 update(s) rejected and no version ever accepted" in result.message
    assert target.result("proxy-ready").status is Status.PASS  # LIVE all the same: only this check sees it


async def test_kube_targets_reach_a_real_admin_through_the_port_forward_bridge(
    healthy: lm.Proxy, settings: GateSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pods from an API-shaped PodList; the API server's port-forward stream is replaced by a
    socket to a real Envoy's admin port, so our local listener and bridge carry real HTTP."""
    from kubernetes import client as k8s

    import checks.portforward
    from checks.kube import kube_targets

    from .test_kube import PODS, RecordedApiServer

    opened: list[tuple[str, str, int]] = []

    class AdminStream:
        """A connection to the real admin port, in place of the API server's channel stream."""

        async def open(self) -> AdminStream:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", healthy.admin_port)
            return self

        async def send(self, data: bytes) -> None:
            self.writer.write(data)
            await self.writer.drain()

        async def __aiter__(self):
            while chunk := await self.reader.read(65536):
                yield chunk

        async def close(self) -> None:
            self.writer.close()

    async def fake_stream(configuration, namespace: str, name: str, port: int) -> AdminStream:
        assert configuration.host == "https://kube.test:6443"
        opened.append((namespace, name, port))
        return await AdminStream().open()

    monkeypatch.setattr(checks.portforward, "open_pod_stream", fake_stream)
    api_client = k8s.ApiClient(k8s.Configuration(host="https://kube.test:6443"))
    api_client.rest_client.pool_manager = RecordedApiServer(PODS.read_bytes())
    with kube_targets(k8s.CoreV1Api(api_client), namespace="bookinfo", revision="1-40-0",
                      expected_version="1.40.0") as targets:
        report = await run_checks(targets, settings, only=["proxy-ready", "proxy-version", "app-started-after-proxy"])
    by_pod = {t.target.split("/")[1].split("-")[0]: t for t in report.targets}
    assert all(t.result("proxy-ready").status is Status.PASS for t in report.targets)
    assert all(t.result("proxy-version").status is Status.PASS for t in report.targets)
    assert by_pod["ratings"].result("app-started-after-proxy").status is Status.WARN
    assert by_pod["reviews"].result("app-started-after-proxy").status is Status.PASS
    assert {(ns, port) for ns, _, port in opened} == {("bookinfo", 15000)}


async def test_restart_between_samples_fails(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    lm.send_traffic(proxy.url, requests=20)
    for _ in range(3):  # a proxy that has been watched for a while (uptime is still 0 s)
        before = await check_once(proxy, settings)
    proxy.stop(keep_workdir=True)
    proxy.start()  # same ports, same config: only the process is new
    result = (await check_once(proxy, settings, previous=before)).targets[0].result("proxy-not-restarted")
    assert result.status is Status.FAIL, result.message
    assert "http.admin.downstream_rq_total went back" in result.message


class CountingClient(AdminClient):
    """The real client, remembering which admin paths it read."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.paths: list[str] = []

    async def get(self, base_url, path, params=None, **kw):  # type: ignore[override]
        self.paths.append(path)
        return await super().get(base_url, path, params, **kw)

    def taken(self) -> list[str]:
        taken, self.paths = self.paths, []
        return taken


async def test_gate_samples_reuse_their_connections_to_a_real_admin(healthy: lm.Proxy, settings: GateSettings) -> None:
    before = healthy.stat("http.admin.downstream_cx_total")  # this read opens (and counts) one connection
    async with CountingClient() as client:
        report = None
        for _ in range(5):
            report = await run_checks([target_of(healthy)], settings, client=client, previous=report)
        reads = client.taken()
    opened = healthy.stat("http.admin.downstream_cx_total") - before - 1  # minus this read's own
    first_sample_reads = 5  # /ready, /server_info, /stats, /certs, /config_dump
    assert len(reads) >= 5 * 4
    assert 1 <= opened <= first_sample_reads, (opened, len(reads))


async def test_server_info_is_read_once_then_again_after_a_real_restart(fresh, settings: GateSettings) -> None:
    proxy = fresh()
    async with CountingClient() as client:
        report = None
        for _ in range(3):
            report = await run_checks([target_of(proxy, expected_version="1.40.0")], settings, client=client,
                                      previous=report)
        assert client.taken().count("/server_info") == 1
        assert report.success
        proxy.stop(keep_workdir=True)
        proxy.start()  # same ports, same config, same binary: only the process is new
        report = await run_checks([target_of(proxy, expected_version="1.40.0")], settings, client=client,
                                  previous=report)
        assert client.taken().count("/server_info") == 1
    by_id = {r.check_id: r for r in report.targets[0].results}
    assert by_id["proxy-not-restarted"].status is Status.FAIL
    assert by_id["proxy-version"].status is Status.PASS


async def test_a_version_change_across_a_restart_is_caught(
    stable_bin: lm.EnvoyBinary, target_bin: lm.EnvoyBinary, upstream: lm.Upstream, settings: GateSettings
) -> None:
    old = lm.start_proxy(stable_bin, upstream, name=f"swap{next(_serial)}")
    port = old.admin_port
    new: lm.Proxy | None = None
    try:
        async with CountingClient() as client:
            target = Target(name="swapped", admin_url=old.admin_url, expected_version="1.39.3")
            report = None
            for _ in range(3):
                report = await run_checks([target], settings, client=client, previous=report)
            assert report.targets[0].result("proxy-version").status is Status.PASS
            assert client.taken().count("/server_info") == 1
            old.stop()
            # The 1.40.0 binary takes over the same admin address (an in-place image upgrade).
            new = lm.start_proxy(target_bin, upstream, name=f"swap{next(_serial)}", admin_port=port)
            report = await run_checks([target], settings, client=client, previous=report)
            assert client.taken().count("/server_info") == 1
    finally:
        old.stop()
        if new is not None:
            new.stop()
    version = report.targets[0].result("proxy-version")
    assert version.status is Status.FAIL and version.observed == "1.40.0", version.message
    restarted = report.targets[0].result("proxy-not-restarted")
    assert restarted.status is Status.FAIL and "server.version changed" in restarted.message
