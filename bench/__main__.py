"""`python -m bench [--only NAME ...] [--quick] [--out PATH]`: run the benchmarks.

Full runs store each section in bench/results.json and rewrite bench/RESULTS.md
from every stored section (so `--only` keeps the other benchmarks' last figures).
`--quick` runs tiny sizes as a smoke test (under a minute) and, unless `--out`
is given, writes its report to a temporary directory, never over RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import localmesh as lm

from . import _report
from ._machine import load, machine

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "decision": "bench.decision",
    "engine": "bench.engine",
    "fleet": "bench.fleet",
    "gatescale": "bench.gatescale",
    "parsing": "bench.parsing",
    "program": "bench.program",
    "prometheus": "bench.prometheus",
}
# These start a local Kubernetes (and build its toolchain on first use): minutes, not seconds.
NEEDS_CLUSTER = ("engine",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, a smoke test under a minute; leaves out the benchmarks that start a local "
                             f"cluster ({', '.join(NEEDS_CLUSTER)}) unless named with --only")
    parser.add_argument("--out", type=Path, help="directory for results.json and RESULTS.md")
    args = parser.parse_args(argv)

    lm.install_signal_handlers()  # Ctrl-C stops every Envoy we started
    out = args.out or (Path(tempfile.mkdtemp(prefix="meshlift-bench-quick-")) if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    store_path, results_path = out / "results.json", out / "RESULTS.md"
    store = _report.load(store_path)
    store["machine"] = machine()
    command = "python -m bench" + "".join(f" --only {n}" for n in args.only or ()) + (" --quick" if args.quick else "")
    failed = []
    chosen = args.only or [n for n in BENCHMARKS if not (args.quick and n in NEEDS_CLUSTER)]
    for name in chosen:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        load_before = load()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            section = module.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        finally:
            lm.stop_all()  # nothing a benchmark started outlives it
        section.measured_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        section.duration_s = time.monotonic() - started
        section.notes.append(f"Machine before this benchmark: {load_before}; after: {load()}.")
        store["sections"][name] = section.to_dict()
        for target in section.targets:
            print(f"   {'MET   ' if target.met else 'MISSED'} {target.target}: {target.figure}", flush=True)
        print(f"   ({section.duration_s:.1f} s)", flush=True)
        _report.save(store_path, store)
        results_path.write_text(_report.render(store, command=command))
    print(f"results: {results_path}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
