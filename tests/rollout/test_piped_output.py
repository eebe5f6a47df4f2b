"""Output that is not a terminal is plain lines: never wrapped, never padded, never cut."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checks.catalog import CATALOG

MESHLIFT = str(Path(sys.executable).with_name("meshlift"))
ROOT = Path(__file__).resolve().parents[2]


def _piped(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MESHLIFT, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80", **(env or {})}, stdin=subprocess.DEVNULL)


def _assert_plain(text: str) -> None:
    assert text.strip()
    assert [line for line in text.splitlines() if line != line.rstrip()] == [], "no trailing spaces"


def test_list_checks_piped_is_one_whole_line_per_check():
    done = _piped("check", "--list-checks")
    _assert_plain(done.stdout)
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [row[0] for row in rows] == [c.id for c in CATALOG], "every id whole, in catalog order"
    assert all(row[-1].startswith(c.hint[:20]) and row[-1] == c.hint for row, c in zip(rows, CATALOG))


def test_an_unreachable_proxy_piped_is_one_unwrapped_verdict_not_empty_sections():
    done = _piped("inspect", "--admin", "http://127.0.0.1:9")
    _assert_plain(done.stdout)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and "cannot read this proxy" in lines[1] and "nothing inspected" in lines[1], lines
    assert "listeners (0)" not in done.stdout


@pytest.mark.envoy
def test_a_piped_rehearsal_summary_is_unwrapped_and_unpadded(tmp_path):
    done = _piped("rehearse", "--fault", "reject-config",
                  env={"MESHLIFT_PROJECT_DIR": str(tmp_path),
                       "MESHLIFT_REHEARSAL_GATES": '{"window": "3s", "interval": "250ms", "consecutivePasses": 3}'})
    assert done.returncode == 1, done.stderr
    _assert_plain(done.stdout)
    canary = next(line for line in done.stdout.splitlines() if line.startswith("×   canary"))
    assert "error adding listener" in canary and canary.rstrip().endswith("s]"), "the gate's message on one line"
    assert "rehearsal: Envoy 1.39.3 -> 1.40.0, fault reject-config" in done.stdout.splitlines()


def test_a_piped_fleet_plan_is_plain_rows_not_a_box_table():
    done = _piped("fleet", "plan", "--to", "1.31.0")
    assert done.returncode == 0, done.stderr
    _assert_plain(done.stdout)
    assert not set("┏┃│└━") & set(done.stdout), "no box drawing in a log"
    assert "2 | staging | staging: 1.30.3 -> 1.31.0, 6 stages, >= 50s gating | 1 |" in done.stdout


def test_a_piped_fleet_table_is_plain_rows_without_trailing_spaces():
    import io

    from rich.console import Console

    from rollout.fleet.journal import FleetState, RingRecord
    from rollout.fleet.view import fleet_table

    state = FleetState.new(fleet="f", params={"to": "1.40.0", "platform": "rehearsal"},
                           rings=[RingRecord("dev", ["dev"]), RingRecord("prod", ["prod-eu", "prod-us"])])
    buffer = io.StringIO()
    Console(file=buffer, width=300).print(fleet_table(state))  # pytest's stdout is no terminal: the plain form
    _assert_plain(buffer.getvalue())
    assert buffer.getvalue().splitlines()[1:] == [
        "ring |  | stack | phase | detail", "dev | · | dev | NotStarted | then soak 0s",
        "prod | · | prod-eu | NotStarted | then soak 0s", " |  | prod-us | NotStarted |"]
