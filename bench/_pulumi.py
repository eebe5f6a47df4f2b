"""Run meshlift's Pulumi program (`__main__.py`) under Pulumi's mock monitor, counting registrations.

The very runner the tests use (tests/components/program.py, which follows
Pulumi's own language host), with a monitor that records
only the count and types of registered resources, so the harness adds as
little as possible to the program's own cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from pulumi.runtime import mocks

from tests.components.program import run_with_monitor

from ._specs import live_object


class _Mocks(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs):
        if args.resource_id:  # a read of a live workload (`Deployment.get`): answer what a cluster would
            namespace, _, name = args.resource_id.partition("/")
            return args.resource_id, live_object(namespace, name)
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

    def ReadResource(self, request):  # noqa: N802
        self.types[f"read {request.type}"] += 1
        return super().ReadResource(request)


def run_program(config: Mapping[str, Any], *, stack: str = "bench") -> Counter[str]:
    """Run `__main__.py` once in a fresh runtime; returns registered resource types and counts."""
    monitor = CountingMonitor()
    run_with_monitor(monitor, config, stack=stack)
    return monitor.types
