"""The checks on real Envoys shaped like Istio sidecars where the gates look.

Both Envoy versions the project runs (1.39.3 and 1.40.0) serve what a sidecar
serves on its admin port: a 24 h SPIFFE workload certificate signed by a
10-year mesh root (SDS `server_cert` + `ROOTCA`); Istio's default stats matcher
with `;` after each cluster's stat name and ADS on `xds-grpc`, widened or not by
meshlift's proxyStatsMatcher; an ADS server that closes streams as istiod does
after its max connection age, or goes away. What upstream Envoy cannot
show (Istio's own `istio.stats` filter) is proven on recorded istio-proxy
output instead (tests/checks/test_istio_fixtures.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator

import pytest

import localmesh as lm
from checks import GateOutcome, Status, Target, run_checks, run_gate
from checks.observe import Read
from components.control_plane import PROXY_STATS_MATCHER
from meshmodel.spec import GateSettings

pytestmark = pytest.mark.envoy

_serial = itertools.count()
HOUR = dt.timedelta(hours=1)
SPIFFE = "spiffe://cluster.local/ns/shop/sa/web"


@pytest.fixture(scope="module")
def root() -> lm.CertPair:
    return lm.mesh_root()


@pytest.fixture(params=["1.39.3", "1.40.0"])
def envoy(request: pytest.FixtureRequest, binaries: dict[str, lm.EnvoyBinary]) -> lm.EnvoyBinary:
    return binaries[request.param]


async def certificates(proxy: lm.Proxy, settings: GateSettings):
    report = await run_checks([Target(name=proxy.spec.name, admin_url=proxy.admin_url)], settings,
                              only=["certificates-valid"])
    return report.targets[0].result("certificates-valid")


def sidecar(started: Callable[..., lm.Proxy], envoy: lm.EnvoyBinary, root: lm.CertPair,
            cert: lm.CertPair) -> lm.Proxy:
    return started(envoy, name=f"sidecar{next(_serial)}", tls=True, root=root, cert=cert)


async def test_fresh_24h_workload_certificate_and_10_year_root_pass(started, envoy, root, settings) -> None:
    proxy = sidecar(started, envoy, root, lm.workload_cert(root, spiffe_id=SPIFFE, age=2 * HOUR))
    result = await certificates(proxy, settings)
    assert settings.min_cert_validity_days == 7  # the default that failed every real sidecar before
    assert result.status is Status.PASS, result.message
    assert "1 workload certificate(s), 8% of its 24.0 h lifetime used" in result.message
    assert result.message.endswith("1 other(s), soonest expiry in 3650.0 days")  # the root, judged in days
    assert result.details["workload"][0]["certificate"] == f"cert_chain {SPIFFE}"


async def test_workload_certificate_past_three_quarters_of_its_life_is_a_stalled_rotation(
        started, envoy, root, settings) -> None:
    proxy = sidecar(started, envoy, root, lm.workload_cert(root, spiffe_id=SPIFFE, age=20 * HOUR))
    result = await certificates(proxy, settings)
    assert result.status is Status.FAIL
    assert f"workload certificate cert_chain {SPIFFE} is 83% through its 24.0 h lifetime" in result.message
    assert "rotation stalled" in result.message


async def test_expired_workload_certificate_fails(started, envoy, root, settings) -> None:
    proxy = sidecar(started, envoy, root, lm.workload_cert(root, spiffe_id=SPIFFE, age=30 * HOUR))
    result = await certificates(proxy, settings)
    assert result.status is Status.FAIL
    assert result.message.startswith(f"certificate cert_chain {SPIFFE} expired 0.3 days ago"), result.message


async def test_short_lived_root_fails_on_the_days_threshold(started, envoy, settings) -> None:
    short_root = lm.mesh_root(valid_days=3)
    proxy = sidecar(started, envoy, short_root, lm.workload_cert(short_root, spiffe_id=SPIFFE, age=HOUR))
    result = await certificates(proxy, settings)
    assert result.status is Status.FAIL
    assert result.message == "certificate ca_cert <inline> expires in 3.00 days < 7 days"
    assert "< 7 days" in result.message


# ---- stats shaped by Istio's bootstrap: `;` names, the default stats matcher, xds-grpc ----

ISTIO_STATS = {"istio_stats": True}
MESHLIFT_MATCHER = {
    "stats_inclusion_prefixes": tuple(PROXY_STATS_MATCHER["inclusionPrefixes"]),
    "stats_inclusion_regexps": tuple(PROXY_STATS_MATCHER["inclusionRegexps"]),
}


@pytest.fixture
def plane() -> Iterator[lm.ControlPlane]:
    control = lm.ControlPlane().start()
    yield control
    control.stop()


async def one_sample(proxy: lm.Proxy, settings: GateSettings, *check_ids: str):
    report = await run_checks([Target(name=proxy.spec.name, admin_url=proxy.admin_url, role="canary")], settings,
                              only=list(check_ids))
    return {r.check_id: r for r in report.targets[0].results}


async def test_istio_default_stats_matcher_leaves_no_traffic_evidence_and_says_so(started, envoy, plane, settings) -> None:
    proxy = started(envoy, name=f"sidecar{next(_serial)}", control_plane=plane, **ISTIO_STATS)
    assert lm.send_traffic(proxy.url, requests=40).count(200, 299) == 40
    stats = proxy.stats("upstream_rq_completed|xds-grpc")
    assert "cluster.xds-grpc;.upstream_rq_active" in stats  # Istio keeps its xDS cluster, with the `;`
    assert not any(name.startswith("cluster.outbound|") for name in stats)  # and drops the service's counters
    results = await one_sample(proxy, settings, "upstream-success-rate", "upstream-connect-failures")
    for result in (results["upstream-success-rate"], results["upstream-connect-failures"]):
        assert result.status is Status.SKIP and result.no_data
        assert result.message.startswith("no traffic evidence: no istio_requests_total and no per-cluster")
        assert "proxyStatsMatcher" in result.message


async def test_meshlift_stats_matcher_gives_the_gates_their_evidence(started, envoy, plane, settings) -> None:
    proxy = started(envoy, name=f"sidecar{next(_serial)}", control_plane=plane, **ISTIO_STATS, **MESHLIFT_MATCHER)
    lm.send_traffic(proxy.url, requests=40)
    stats = proxy.stats("upstream_rq_completed|connected_state")
    assert stats["cluster.outbound|80||upstream.local.svc.cluster.local;.upstream_rq_completed"] == 40
    assert stats["control_plane.connected_state"] == 1
    healthy = await one_sample(proxy, settings, "upstream-success-rate", "control-plane-connected")
    assert healthy["upstream-success-rate"].status is Status.PASS
    assert healthy["upstream-success-rate"].details["evidence"] == "cluster counters"
    assert healthy["control-plane-connected"].message == "connected to the control plane (control_plane.connected_state)"
    with lm.inject_fault(proxy, "5xx"):
        lm.send_traffic(proxy.url, requests=40)
        failing = await one_sample(proxy, settings, "upstream-success-rate")
    assert failing["upstream-success-rate"].status is Status.FAIL
    assert "(40/80 failed" in failing["upstream-success-rate"].message


async def test_streams_closed_by_max_connection_age_do_not_fail_a_gate(started, envoy, settings) -> None:
    # The proxy's one ADS subscription (a runtime layer, standing in for Istio's LDS/CDS over ADS)
    # keeps its stats, so the update_failure each closed stream causes is in what the checks read.
    with lm.ControlPlane(max_connection_age_s=1.0) as closing:  # istiod's 30 min, shortened
        proxy = started(envoy, name=f"sidecar{next(_serial)}", control_plane=closing,
                        stats_inclusion_prefixes=("runtime.",), **ISTIO_STATS)
        before = proxy.stats("update_failure|xds-grpc;.upstream_rq_total")
        # 8 s of passing samples: several 1 s stream lifetimes, even when a loaded machine reconnects slowly.
        fast = settings.model_copy(update={"interval": 0.5, "window": 12.0, "consecutive_passes": 16})
        gate = await run_gate([Target(name=proxy.spec.name, admin_url=proxy.admin_url)], fast,
                              only=["control-plane-connected", "xds-config-accepted"])
        after = proxy.stats("update_failure|xds-grpc;.upstream_rq_total")
    assert gate.outcome is GateOutcome.PASSED, gate.message
    # The streams really were closed and re-opened during the gate, each closing counted as a failed update.
    assert after["runtime.update_failure"] - before["runtime.update_failure"] >= 3
    assert after["cluster.xds-grpc;.upstream_rq_total"] - before["cluster.xds-grpc;.upstream_rq_total"] >= 3


async def test_proxy_cut_off_from_its_control_plane_fails_the_gate(started, envoy, plane, settings) -> None:
    proxy = started(envoy, name=f"sidecar{next(_serial)}", control_plane=plane, **ISTIO_STATS)
    plane.stop()
    lm.wait_until(lambda: proxy.stats("xds-grpc;.upstream_rq_active")["cluster.xds-grpc;.upstream_rq_active"] == 0,
                  timeout_s=5, what="the ADS stream to close")
    fast = settings.model_copy(update={"interval": 0.25, "window": 3.0})
    gate = await run_gate([Target(name=proxy.spec.name, admin_url=proxy.admin_url)], fast,
                          only=["control-plane-connected", "xds-config-accepted"])
    assert gate.outcome is GateOutcome.FAILED
    assert gate.failing_checks == ("control-plane-connected",)
    assert gate.message.endswith("not connected to the control plane: no ADS stream open on xds-grpc")


async def test_a_certificate_pushed_between_samples_is_read_at_the_next_one(started, envoy, root, settings) -> None:
    """meshlift's matcher keeps the SDS updates, so a reused `/certs` is dropped at the push that outdates it."""
    proxy = started(envoy, name=f"sidecar{next(_serial)}", tls=True, root=root,
                    cert=lm.workload_cert(root, spiffe_id=SPIFFE, age=2 * HOUR), **ISTIO_STATS, **MESHLIFT_MATCHER)
    target = [Target(name=proxy.spec.name, admin_url=proxy.admin_url, role="canary")]
    first = await run_checks(target, settings, only=["certificates-valid"])
    assert first.targets[0].result("certificates-valid").status is Status.PASS
    unchanged = await run_checks(target, settings, only=["certificates-valid"], previous=first)
    assert Read.CERTS in unchanged.history[proxy.spec.name][-1].carried  # the same process, no SDS update
    pushes = proxy.stat("sds.server_cert.update_success")
    assert pushes >= 1  # kept by meshlift's matcher (Istio's default drops every sds.* stat)
    proxy.set_certificate(lm.workload_cert(root, spiffe_id=SPIFFE, age=20 * HOUR))
    lm.wait_until(lambda: proxy.stat("sds.server_cert.update_success") > pushes, timeout_s=8)
    pushed = await run_checks(target, settings, only=["certificates-valid"], previous=unchanged)
    assert Read.CERTS not in pushed.history[proxy.spec.name][-1].carried
    result = pushed.targets[0].result("certificates-valid")
    assert result.status is Status.FAIL and "rotation stalled" in result.message
