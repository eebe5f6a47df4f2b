"""meshlift's gate as a process of its own, so its CPU time and peak RSS can be measured alone.

    python -m bench._gate_worker SECONDS < admin-ports.json

Reads a JSON list of admin ports (every one a canary target), prints `ready` once
imported, runs one gate at the default settings (interval 1 s) that cannot promote
for SECONDS, prints one JSON line (samples taken, their mean duration), then waits
for its standard input to close, so the parent can read its counters while it lives.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from checks import Target, run_gate
from meshmodel.spec import GateSettings


async def _watch(ports: list[int], seconds: float) -> dict[str, float]:
    targets = [Target(name=f"proxy-{port}", admin_url=f"http://127.0.0.1:{port}", role="canary")
               for port in ports]
    settings = GateSettings(window=seconds, consecutive_passes=1_000_000)
    started = time.monotonic()
    result = await run_gate(targets, settings)
    elapsed = time.monotonic() - started
    return {"samples": len(result.samples), "seconds": elapsed, "outcome": result.outcome.value,
            "verdicts": sorted({s.verdict for s in result.samples})}


def main() -> int:
    seconds = float(sys.argv[1])
    ports = json.loads(sys.stdin.readline())
    print("ready", flush=True)
    summary = asyncio.run(_watch(ports, seconds))
    print(json.dumps(summary), flush=True)
    sys.stdin.read()  # the parent reads our counters, then closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(main())
