"""A broken admin interface never passes and never crashes: each fault ends as `error`
(or `fail`) within a bounded time. Served from raw sockets, not mocks."""

from __future__ import annotations

import time

import pytest

from checks import AdminClient, Status, Target, run_checks
from localmesh import closed_port

from . import faultserver as fs

TIMEOUT, DEADLINE = 0.3, 0.6
# Every read runs concurrently; a fault costs at most one deadline per read plus the
# retries' short back-off. Generous bound: we prove "bounded", not "fast".
BOUND_S = 5.0

FAULTS = {
    "hanging": fs.hang,
    "slow-byte-by-byte": fs.slow_bytes,
    "http-500": fs.status(500),
    "garbage": fs.garbage,
    "not-http": fs.not_http,
    "truncated-json": fs.truncated_json,
    "oversized-streamed": fs.oversized,
    "oversized-declared": fs.declared_oversized,
}


def assert_fails_closed(report, *, expected_kinds: set[str] | None = None) -> None:
    target = report.targets[0]
    assert not report.success and not target.success
    for result in target.results:
        assert result.status is not Status.PASS, (result.check_id, result.message)
    errors = [r for r in target.results if r.status is Status.ERROR]
    assert errors, "a broken admin interface must show as errors"
    if expected_kinds is not None:
        kinds = {r.details["error"] for r in errors if r.details}
        assert kinds & expected_kinds, kinds


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_admin_fault_yields_error_not_pass_within_bound(fault: str, settings) -> None:
    with fs.fault_server(FAULTS[fault]) as (url, seen):
        async with AdminClient(timeout=TIMEOUT, deadline=DEADLINE, max_body_bytes=64 * 1024, attempts=2) as client:
            started = time.monotonic()
            report = await run_checks([Target("broken", url, expected_version="1.40.0")], settings, client=client)
            elapsed = time.monotonic() - started
    assert_fails_closed(report)
    assert elapsed < BOUND_S
    assert seen and all(line.startswith(b"GET ") for line in seen)


async def test_refused_port_is_unreachable_error(settings) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with AdminClient(timeout=TIMEOUT, deadline=DEADLINE, attempts=2) as client:
        started = time.monotonic()
        report = await run_checks([Target("gone", url)], settings, client=client)
        elapsed = time.monotonic() - started
    assert_fails_closed(report, expected_kinds={"unreachable"})
    assert elapsed < BOUND_S


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("hanging", "timeout"), ("slow-byte-by-byte", "timeout"), ("http-500", "bad-status"),
     ("truncated-json", "bad-body"), ("oversized-streamed", "too-large"), ("garbage", "bad-body")],
)
async def test_fault_is_reported_as_its_kind(fault: str, kind: str, settings) -> None:
    with fs.fault_server(FAULTS[fault]) as (url, _):
        async with AdminClient(timeout=TIMEOUT, deadline=DEADLINE, max_body_bytes=64 * 1024, attempts=1) as client:
            report = await run_checks([Target("broken", url)], settings, client=client, only=["proxy-memory"])
    result = report.targets[0].result("proxy-memory")
    assert result.status is Status.ERROR
    assert result.details["error"] == kind


async def test_a_hanging_proxy_does_not_hold_up_or_spoil_the_others(settings) -> None:
    with fs.fault_server(fs.hang) as (broken, _), fs.fault_server(fs.status(200, b"LIVE")) as (fine, _):
        async with AdminClient(timeout=TIMEOUT, deadline=DEADLINE, attempts=1) as client:
            report = await run_checks(
                [Target("broken", broken), Target("fine", fine)], settings, client=client, only=["proxy-ready"]
            )
    assert [t.result("proxy-ready").status for t in report.targets] == [Status.ERROR, Status.PASS]
