"""The checks on real Envoys shaped like Istio sidecars where the gates look.

Both Envoy versions the project runs (1.39.3 and 1.40.0) serve what a sidecar
serves on its admin port: a 24 h SPIFFE workload certificate signed by a
10-year mesh root (SDS `server_cert` + `ROOTCA`). What upstream Envoy cannot
show (Istio's own `istio.stats` filter) is proven on recorded istio-proxy
output instead (tests/checks/test_istio_fixtures.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

import localmesh as lm
from checks import Status, Target, run_checks
from components.spec import GateSettings

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
