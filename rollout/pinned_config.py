"""Istio config pinned to the revision an upgrade leaves: found before anything changes.

istiod applies a config object labelled `istio.io/rev` only when the label is its
own revision, exactly; tags do not count (istio `pkg/config/model.go`
`LabelsInRevision`, used by the CRD client). Objects labelled with the rollout's
`from` revision therefore stop applying to every workload the new revision
serves, from the first promoted wave on: a DENY AuthorizationPolicy, a STRICT
PeerAuthentication, an EnvoyFilter. Losing a policy causes no error that a gate
sees, so meshlift refuses the upgrade while such objects exist, until the stack
decides: `meshlift:pinnedConfig: leave` (upgrade knowing they stop applying), or
`relabel`: the run records them as `meshlift:pinnedObjects` when it starts, and the
program declares a label patch per object that moves `istio.io/rev` to the new
revision at promotion (components.pinned_config). The usual fix is to remove the
label: an unlabelled object applies to every revision, old and new, through the
whole rollout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshmodel.spec import CONFIG_NAMESPACE, MeshSpec, Problem, key_path

PINNED_OBJECTS_KEY = f"{CONFIG_NAMESPACE}:pinnedObjects"
REVISION_LABEL = "istio.io/rev"
# (group, version, plural, kind): the config kinds istiod reads, at a version every supported release serves.
ISTIO_CONFIG_KINDS = (
    ("security.istio.io", "v1beta1", "authorizationpolicies", "AuthorizationPolicy"),
    ("security.istio.io", "v1beta1", "peerauthentications", "PeerAuthentication"),
    ("security.istio.io", "v1beta1", "requestauthentications", "RequestAuthentication"),
    ("networking.istio.io", "v1alpha3", "envoyfilters", "EnvoyFilter"),
    ("networking.istio.io", "v1beta1", "sidecars", "Sidecar"),
    ("networking.istio.io", "v1beta1", "virtualservices", "VirtualService"),
    ("networking.istio.io", "v1beta1", "destinationrules", "DestinationRule"),
    ("networking.istio.io", "v1beta1", "gateways", "Gateway"),
    ("networking.istio.io", "v1beta1", "serviceentries", "ServiceEntry"),
    ("networking.istio.io", "v1beta1", "workloadentries", "WorkloadEntry"),
    ("networking.istio.io", "v1beta1", "proxyconfigs", "ProxyConfig"),
    ("telemetry.istio.io", "v1alpha1", "telemetries", "Telemetry"),
    ("extensions.istio.io", "v1alpha1", "wasmplugins", "WasmPlugin"),
)


@dataclass(frozen=True)
class PinnedObject:
    kind: str
    namespace: str
    name: str
    api_version: str = ""  # group/version it was listed at (what its label patch names)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def record(self) -> dict[str, str]:
        """Its `meshlift:pinnedObjects` entry."""
        return {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace, "name": self.name}


def pinned_objects(reader: Any, revision: str) -> list[PinnedObject]:
    """Every Istio config object labelled `istio.io/rev=<revision>` (PlatformError if it cannot be listed)."""
    found = []
    for group, version, plural, kind in ISTIO_CONFIG_KINDS:
        for item in reader.custom_objects(group, version, plural, label_selector=f"{REVISION_LABEL}={revision}"):
            meta: Mapping[str, Any] = item.get("metadata") or {}
            found.append(PinnedObject(kind, meta.get("namespace", ""), meta.get("name", ""), f"{group}/{version}"))
    return sorted(found, key=lambda o: (o.namespace, o.kind, o.name))


def pinned_config_problems(spec: MeshSpec, pinned: Iterable[PinnedObject]) -> list[Problem]:
    objects = list(pinned)
    rollout = spec.rollout
    if not objects or rollout is None or spec.pinned_config is not None:
        return []
    shown = ", ".join(map(str, objects[:10])) + (f" and {len(objects) - 10} more" if len(objects) > 10 else "")
    return [Problem(key_path("pinnedConfig"), (
        f"{len(objects)} Istio config object(s) carry {REVISION_LABEL}={rollout.from_revision}: {shown}. "
        f"istiod {rollout.to_revision} ignores them, so they stop applying to every promoted workload (a lost "
        f"policy causes no error a gate sees). Remove the label (the object then applies to every revision) "
        f"with `kubectl label <kind> <name> -n <namespace> {REVISION_LABEL}-`, or set "
        f"meshlift:pinnedConfig: relabel (promotion moves their label to {rollout.to_revision}) or "
        f"meshlift:pinnedConfig: leave (upgrade without them)"))]


def pinned_config_notes(spec: MeshSpec, pinned: Iterable[PinnedObject]) -> list[str]:
    objects = list(pinned)
    rollout = spec.rollout
    if not objects or rollout is None or spec.pinned_config is None:
        return []
    if spec.pinned_config == "relabel":
        return [f"{o} carries {REVISION_LABEL}={rollout.from_revision}: promotion relabels it "
                f"{REVISION_LABEL}={rollout.to_revision} when the tags move (meshlift:pinnedConfig: relabel); from "
                f"then on workloads still on {rollout.from_revision} no longer get it" for o in objects]
    return [f"{o} carries {REVISION_LABEL}={rollout.from_revision}: it stops applying to workloads once they "
            f"run {rollout.to_revision} (meshlift:pinnedConfig: leave)" for o in objects]


def pinned_records(pinned: Iterable[PinnedObject]) -> list[dict[str, str]]:
    """`meshlift:pinnedObjects`: what `relabel` patches, fixed when the run starts."""
    return [o.record() for o in pinned]


class PinnedTargetMissing(RuntimeError):
    """Raised inside the hook: Pulumi fails the patch's creation and creates nothing."""


class PinnedTargetCheck:
    """The `before_create` hook of each label patch: the object it labels must exist.

    A patch is server-side apply, and the provider creates what it applies when the
    object is missing (pulumi-kubernetes `await.Creation` always sends an apply
    patch): an AuthorizationPolicy with nothing but metadata is an allow-nothing
    policy, which denies every request in its namespace. An object deleted since the
    run listed it (or gone before a rollback re-creates its patch) must never be
    created that way. Updates need no hook: the provider reads the live object first
    and fails when it is gone. Unlike the promotion gate it never stands down.
    """

    def __init__(self, reader: Callable[[], Any]) -> None:
        self._reader = reader  # () -> a KubeLive of the stack's cluster, made when first needed
        self.__name__ = "meshlift_pinned_target_exists"

    async def __call__(self, args: Any) -> None:
        inputs = getattr(args, "new_inputs", None) or {}
        await asyncio.to_thread(self.check, inputs)

    def check(self, inputs: Mapping[str, Any]) -> None:
        api_version, kind = str(inputs.get("apiVersion", "")), str(inputs.get("kind", ""))
        meta = inputs.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        group, _, version = api_version.rpartition("/")
        plural = next((p for g, _, p, k in ISTIO_CONFIG_KINDS if (g, k) == (group, kind)), None)
        where = f"{kind} {namespace}/{name}"
        try:
            found = plural is not None and self._reader().custom_object(group, version, plural, namespace, name)
        except Exception as error:  # fail closed: an unreadable cluster creates nothing either
            raise PinnedTargetMissing(f"cannot tell whether {where} exists ({error}); its label patch was not "
                                      "applied") from error
        if not found:
            raise PinnedTargetMissing(
                f"{where} no longer exists: its {REVISION_LABEL} label patch would create it with nothing but "
                f"that label, so it was not applied. Start the upgrade again (`meshlift upgrade`) to list the "
                f"pinned config anew")
