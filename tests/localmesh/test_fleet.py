from __future__ import annotations

import pytest

import localmesh as lm

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def fleets(upstream, stable, target):
    """A tiny rehearsal: 3 stable proxies and 2 canaries, started 2 at a time."""
    old = lm.Fleet(binary=stable, size=3, upstream=upstream, revision="stable")
    new = lm.Fleet(binary=target, size=2, upstream=upstream, revision="canary")
    lm.start_proxies([*old, *new], max_parallel_starts=2, timeout_s=30)
    yield old, new
    lm.stop_proxies([*old, *new])


def test_fleet_proxies_are_all_live_on_distinct_ports_and_versions(fleets) -> None:
    old, new = fleets
    proxies = [*old, *new]
    assert all(p.ready() == (200, "LIVE") for p in proxies)
    assert len({p.admin_port for p in proxies} | {p.listener_port for p in proxies}) == 10
    assert {p.server_info()["version"].split("/")[1] for p in old} == {"1.39.3"}
    assert {p.server_info()["version"].split("/")[1] for p in new} == {"1.40.0"}
    assert [p.spec.name for p in new] == ["canary-0", "canary-1"]


def test_a_fault_on_one_canary_leaves_the_rest_of_the_fleet_healthy(fleets) -> None:
    old, new = fleets
    with lm.inject_fault(new[0], "5xx"):
        results = {p.spec.name: lm.send_traffic(p.url, requests=5) for p in [*old, *new]}
    assert results.pop("canary-0").statuses == {503: 5}
    assert all(r.statuses == {200: 5} for r in results.values())


def test_fleet_push_applies_a_new_version_to_every_proxy(fleets) -> None:
    old, _ = fleets
    versions = {}
    old.push(lambda p: versions.__setitem__(p.spec.name, p.xds.push_clusters(p.clusters())))
    for proxy in old:
        lm.wait_until(lambda: proxy.stats(filter="cds.version_text")
                      ["cluster_manager.cds.version_text"] == versions[proxy.spec.name])


def test_stopping_a_fleet_ends_every_process(upstream, target) -> None:
    fleet = lm.Fleet(binary=target, size=3, upstream=upstream, revision="short")
    with fleet:
        pids = {p.process.pid for p in fleet}
        assert pids <= set(lm.live_pids())
    assert not pids & set(lm.live_pids())
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int | None) -> bool:
    import os

    try:
        os.kill(pid, 0)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    return True
