"""Run the real `__main__.py` under Pulumi's mock monitor and record what it registered.

This follows what Pulumi's own language host does for a program (see
`pulumi.automation._server`): a fresh context, `reset`-style settings with a
monitor, `set_all_config` with the stack's config in Pulumi's wire form (every
value a string, structured values as JSON), a new event loop and
`run_in_stack(program)`. The monitor is `pulumi.runtime.mocks.MockMonitor`,
extended only to keep each `RegisterResourceRequest`'s parent, dependencies,
hooks and options, each read (`Deployment.get`, answered with a live object of
tests.components.cluster), and the stack's outputs, so tests can assert on them. The
program's own read of the cluster (a takeover's Helm release records,
`rollout.preflight.live_reader`) is answered by the same cluster: no test reaches a
real one. The cyclic GC's thresholds are restored after each run, as the end of
the program's process would.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import runpy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from meshmodel.stackfile import read_stack_file
from tests.components.cluster import Cluster, example_cluster

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
STACKS = ROOT / "stacks"
PROJECT = "meshlift"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]  # as the provider would see them (nulls dropped)
    wire: dict[str, Any]  # the raw request object, explicit nulls kept
    custom: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    hooks: dict[str, tuple[str, ...]]
    import_id: str  # the `import_` option: an existing object taken into the stack ("" when created)


RESTARTS_TYPE = "pulumi-python:dynamic/meshlift:NamespaceRestarts"


@dataclass
class ProgramRun:
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    stack_urn: str = ""
    gc_threshold: tuple[int, ...] = ()  # the cyclic GC's thresholds when the stack's outputs were registered
    hook_registrations: list[str] = field(default_factory=list)  # names of the resource hooks registered
    reads: list[Read] = field(default_factory=list)  # resources read from the cluster, in order

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.registrations)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str, *, type: str | None = None) -> Registration:  # noqa: A002 (Pulumi's term)
        """The one resource called `name` (of `type`, where names repeat across types)."""
        found = [r for r in self.registrations if r.name == name and type in (None, r.type)]
        assert len(found) == 1, f"expected one resource named {name!r}, found {[r.urn for r in found]}"
        return found[0]

    def restarts(self) -> dict[tuple[str, str], str]:
        """(namespace, workload) -> the revision meshlift's restart annotation names, from every namespace's
        restarts resource."""
        from components._restarts import RESTARTS, split_key

        return {(r.inputs["namespace"], split_key(key)[1]): revision
                for r in self.of_type(RESTARTS_TYPE) for key, revision in r.inputs[RESTARTS].items()}

    def restart_kinds(self) -> dict[tuple[str, str], str]:
        """(namespace, workload) -> the kind of the workload a restart entry patches."""
        from components._restarts import RESTARTS, split_key

        return {(r.inputs["namespace"], split_key(key)[1]): split_key(key)[0]
                for r in self.of_type(RESTARTS_TYPE) for key in r.inputs[RESTARTS]}

    def maybe(self, name: str) -> Registration | None:
        found = [r for r in self.registrations if r.name == name]
        return found[0] if found else None

    def by_urn(self, urn: str) -> Registration:
        for registration in self.registrations:
            if registration.urn == urn:
                return registration
        raise KeyError(urn)

    def children(self, parent: Registration) -> list[Registration]:
        return [r for r in self.registrations if r.parent == parent.urn]

    def depends_on(self, resource: Registration, other: Registration) -> bool:
        """Whether `resource` waits for `other` (directly, or for a component's children)."""
        targets = {other.urn, *(c.urn for c in self._descendants(other))}
        return bool(targets & set(resource.dependencies))

    def _descendants(self, resource: Registration) -> list[Registration]:
        found = []
        for child in self.children(resource):
            found += [child, *self._descendants(child)]
        return found


class _Mocks(mocks.Mocks):
    """Created and imported resources echo their inputs; reads (`Deployment.get`) get the cluster's live object."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def new_resource(self, args: mocks.MockResourceArgs):
        # The mock monitor says `custom` only for registrations; a read (`<Kind>.get`) leaves it None.
        if args.custom is None and args.resource_id:
            return args.resource_id, self.cluster.read(args.typ, args.resource_id)
        return args.resource_id or f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs):
        return {}, None


@dataclass(frozen=True)
class Read:
    """A resource the program read (`<Kind>.get`): never created, changed or deleted."""

    urn: str
    type: str
    name: str
    id: str
    parent: str


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, run: ProgramRun, cluster: Cluster | None = None):
        super().__init__(_Mocks(cluster or example_cluster()))
        self.run = run

    def ReadResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().ReadResource(request)
        self.run.reads.append(Read(urn=response.urn, type=request.type, name=request.name, id=request.id,
                                   parent=request.parent))
        return response

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type == STACK_TYPE:
            self.run.stack_urn = response.urn
            return response
        self.run.registrations.append(Registration(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            dependencies=tuple(request.dependencies),
            inputs=rpc.deserialize_properties(request.object),
            wire=json_format.MessageToDict(request.object),
            custom=request.custom,
            retain_on_delete=request.retainOnDelete,
            ignore_changes=tuple(request.ignoreChanges),
            hooks={
                kind: tuple(getattr(request.hooks, kind))
                for kind in ("before_create", "before_update") if getattr(request.hooks, kind)
            },
            import_id=request.importId,
        ))
        return response

    def RegisterResourceHook(self, request):  # noqa: N802
        self.run.hook_registrations.append(request.name)
        return super().RegisterResourceHook(request)

    def RegisterResourceOutputs(self, request):  # noqa: N802
        if request.urn == self.run.stack_urn:
            self.run.outputs = _sync_await(_deserialize(request.outputs))
            self.run.gc_threshold = gc.get_threshold()
        return super().RegisterResourceOutputs(request)


async def _deserialize(struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct)


def wire_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: strings, structured values as JSON."""
    wire = {}
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            wire[key] = json.dumps(value)
        elif isinstance(value, bool):
            wire[key] = "true" if value else "false"
        else:
            wire[key] = str(value)
    return wire


def stack_config(env: str) -> dict[str, Any]:
    return read_stack_file(str(STACKS / f"Pulumi.{env}.yaml")).config


def with_rollout(config: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `config` with `meshlift:rollout` keys changed (None removes a key)."""
    updated = json.loads(json.dumps(dict(config)))
    rollout = updated.setdefault("meshlift:rollout", {})
    for key, value in changes.items():
        if value is None:
            rollout.pop(key, None)
        else:
            rollout[key] = value
    return updated


def run_program(config: Mapping[str, Any], *, stack: str = "test", preview: bool = False,
                record: ProgramRun | None = None, cluster: Cluster | None = None) -> ProgramRun:
    """Run `__main__.py` once in a fresh runtime; re-raise what the program raised.

    Pass `record` to inspect what was registered even when the program raises.
    """
    run = record if record is not None else ProgramRun()
    cluster = cluster or example_cluster()
    # The program tunes the GC for its own process; the test process gets its settings back.
    threshold = gc.get_threshold()
    try:
        with reading(cluster):
            run_with_monitor(RecordingMonitor(run, cluster), config, stack=stack, preview=preview)
    finally:
        gc.set_threshold(*threshold)
    return run


@contextmanager
def reading(cluster: Cluster) -> Iterator[None]:
    """The program's cluster reader is `cluster` while the block runs (it keeps the config each reader is for)."""
    import rollout.preflight

    def reader(config: Mapping[str, Any], **options: Any) -> Cluster:
        cluster.readers.append(dict(config))
        return cluster

    real = rollout.preflight.live_reader
    rollout.preflight.live_reader = reader
    try:
        yield
    finally:
        rollout.preflight.live_reader = real


def run_with_monitor(monitor: mocks.MockMonitor, config: Mapping[str, Any], *, stack: str,
                     preview: bool = False) -> None:
    """Run `__main__.py` once in a fresh runtime wired to `monitor` (the language host's steps).

    Shared with bench/_pulumi.py, whose monitor only counts, so both measure and
    test the program exactly the same way.
    """

    def in_fresh_context() -> None:
        settings.ROOT.set(None)
        settings.configure(mocks.MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=mocks.MockEngine(None),
            project=PROJECT,
            stack=stack,
            dry_run=preview,
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
