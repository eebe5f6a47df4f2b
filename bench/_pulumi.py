"""Run meshlift's Pulumi program (`__main__.py`) under Pulumi's mock monitor, counting registrations.

The same steps as tests/components/program.py (which follows Pulumi's own
language host): a fresh context, mock settings with a monitor, the stack's
config in wire form, a new event loop and `run_in_stack(program)`. It records
only the count and types of registered resources, so the harness adds as
little as possible to the program's own cost.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi.runtime import mocks, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack

PROGRAM = Path(__file__).resolve().parents[1] / "__main__.py"


class _Mocks(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs):
        return {}, None


class CountingMonitor(mocks.MockMonitor):
    def __init__(self) -> None:
        super().__init__(_Mocks())
        self.types: Counter[str] = Counter()

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        self.types[request.type] += 1
        return super().RegisterResource(request)


def wire_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: strings, structured values as JSON."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else
            ("true" if v is True else "false" if v is False else str(v)) for k, v in config.items()}


def run_program(config: Mapping[str, Any], *, stack: str = "bench") -> Counter[str]:
    """Run `__main__.py` once in a fresh runtime; returns registered resource types and counts."""
    monitor = CountingMonitor()

    def in_fresh_context() -> None:
        settings.ROOT.set(None)
        settings.configure(mocks.MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=mocks.MockEngine(None),
            project="meshlift",
            stack=stack,
            dry_run=False,
            organization="organization",
            callbacks=None,
        ))
        set_all_config(wire_config(config))
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(run_in_stack(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    contextvars.copy_context().run(in_fresh_context)
    return monitor.types
