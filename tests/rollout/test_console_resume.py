"""A resumed run's view: what finished before the interrupt is shown as done, in the same words as a fresh run."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from rollout import console as view
from rollout.console import LiveReporter, done_before, steps_for


def _reporter() -> tuple[LiveReporter, io.StringIO]:
    buffer = io.StringIO()
    sink = Console(file=buffer, force_terminal=False, width=200)
    return LiveReporter(title="t", steps=steps_for(2, approval=True), console=sink), buffer


def test_a_run_resumed_in_a_wave_shows_the_stages_before_it_as_done():
    steps = steps_for(3, approval=True)
    assert done_before("Promoting", 1, steps) == ["install", "canary", "approval", "wave 1"]
    assert done_before("CanaryVerifying", 0, steps) == ["install"]
    assert done_before("CleaningUp", 3, steps) == ["install", "canary", "approval", "wave 1", "wave 2", "wave 3",
                                                   "verify"]
    reporter, _ = _reporter()
    reporter.event("run", {"run": "r1", "resumed": True, "phase": "Promoting", "waves_done": 1})
    assert reporter.steps["wave 1"][0] == "passed" and reporter.steps["canary"][0] == "passed"
    assert reporter.steps["wave 2"][0] == "pending"


def test_the_next_wave_is_named_as_such_not_as_a_phase_going_to_itself():
    reporter, buffer = _reporter()
    with reporter:
        reporter.event("phase", {"from": "Promoting", "to": "Promoting"})
        reporter.event("phase", {"from": "Promoting", "to": "Verifying"})
    assert "Promoting -> Promoting" not in buffer.getvalue()
    assert "phase Promoting, next wave" in buffer.getvalue()
    assert "phase Promoting -> Verifying" in buffer.getvalue()


def test_a_resumed_run_lists_its_parameters_in_the_order_a_fresh_run_does():
    fresh = SimpleNamespace(params={"to": "1.40.0", "fault": "5xx", "approval": True})
    resumed = SimpleNamespace(params=dict(sorted(fresh.params.items())))
    assert view._params(fresh) == view._params(resumed) == "to 1.40.0, fault 5xx, approval yes"


def test_an_error_before_the_first_event_is_not_printed_under_an_empty_table():
    buffer = io.StringIO()
    reporter = LiveReporter(title="rehearsal: t", steps=steps_for(2, approval=False),
                            console=Console(file=buffer, force_terminal=True, width=100))
    with reporter:
        pass  # e.g. the stack's lock is held: the run ends before its first event
    assert buffer.getvalue() == ""
    with reporter:
        reporter.event("run", {"run": "r1", "resumed": False})
    assert "run r1 started" in buffer.getvalue() and "rehearsal: t" in buffer.getvalue()
