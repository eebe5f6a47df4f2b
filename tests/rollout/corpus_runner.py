"""Runs every corpus case through `rollout.entry.run` in this one process; prints one JSON line per case.

Started by tests/rollout/test_corpus.py under an address-space limit (RLIMIT_AS),
so a case that expands a hostile file in memory dies here instead of passing.
Usage: python -m tests.rollout.corpus_runner PROJECT_DIR CASES_JSON
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time


def main() -> None:
    project, cases = sys.argv[1], json.loads(sys.argv[2])
    import os

    os.environ["MESHLIFT_PROJECT_DIR"] = project
    os.environ["MESHLIFT_CRASH_DIR"] = project
    from rollout import cli
    from rollout.entry import run

    for name, args in cases:
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        started = time.perf_counter()
        try:
            code = run(cli.app, args)
        except BaseException as escaped:  # noqa: BLE001 - recorded: the test fails on it
            code = f"escaped {type(escaped).__name__}"
        seconds = time.perf_counter() - started
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"case": name, "code": code, "seconds": seconds, "peak_kib": peak_kib,
                          "stdout": out.getvalue()[-4000:], "stderr": err.getvalue()[-4000:]}), flush=True)


if __name__ == "__main__":
    main()
