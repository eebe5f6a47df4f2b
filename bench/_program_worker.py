"""Child process of the program-scale benchmark: one size, fresh interpreter, JSON on stdout.

`python -m bench._program_worker WORKLOADS REPS [default|tuned-gc]`. Imports and
one 1-workload warm-up run come first (a real `pulumi up` pays them once,
whatever the size), then peak RSS is reset and the timed runs follow.
`tuned-gc` is what-if only: it freezes the objects alive after the warm-up and
raises the cyclic collector's thresholds (TUNED_GC) before the timed runs.
"""

from __future__ import annotations

import gc
import json
import sys
import time

from ._measure import peak_rss, reset_peak_rss
from ._pulumi import run_program
from ._specs import mesh_config, shape


TUNED_GC = (50_000, 50, 1000)


def main(workloads: int, reps: int, gc_mode: str = "default") -> dict[str, object]:
    from meshmodel.plan import plan_for
    from meshmodel.spec_check import load_spec

    started = time.perf_counter()
    run_program(mesh_config(1))
    warmup = time.perf_counter() - started

    config = mesh_config(workloads)
    plan_times = []
    for _ in range(max(3, reps)):
        t = time.perf_counter()
        plan = plan_for(load_spec(config))
        plan_times.append(time.perf_counter() - t)
    del plan
    if gc_mode == "tuned-gc":
        gc.collect()
        gc.freeze()
        gc.set_threshold(*TUNED_GC)

    base = reset_peak_rss()
    times, counts = [], None
    peak = 0
    for rep in range(reps):
        gc.collect()
        t = time.perf_counter()
        counts = run_program(config)
        times.append(time.perf_counter() - t)
        if rep == 0:
            peak = peak_rss()
    return {
        "workloads": workloads,
        "gc_mode": gc_mode,
        "gc_collections": [g["collections"] for g in gc.get_stats()],
        "shape": shape(workloads),
        "resources": sum(counts.values()) if counts else 0,
        "types": dict(counts or {}),
        "times": times,
        "spec_and_plan_times": plan_times,
        "warmup_s": warmup,
        "rss_before": base,
        "peak_rss": peak,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4])))
