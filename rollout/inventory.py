"""The inventory: what runs in each enrolled namespace when a rollout starts, recorded in the stack config.

The program may not list a cluster (it stays free of ad-hoc API calls), so the
orchestrator asks its platform once per run what runs, and writes it as
`meshlift:inventory` into every stage's config. Every stage of the run, a
resumed run and a rollback (which re-applies a recorded config) therefore
restart exactly the same workloads, and a plain `pulumi up` afterwards restarts
what the last run recorded.

It also tells whether a canaried workload changed while its canary ran: the
template fingerprint recorded at the start against the live one at promotion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from meshmodel.clone import autoscalers_of, inventory_entry
from meshmodel.packed import pack
from meshmodel.spec import CONFIG_NAMESPACE, MeshSpec
from meshmodel.spec_check import load_spec
from rollout.stages import ROLLOUT_KEY, UpgradeTarget

INVENTORY_KEY = f"{CONFIG_NAMESPACE}:inventory"
Inventory = dict[str, list[dict[str, Any]]]


def inventory_of(namespaces: Iterable[str], live: Mapping[str, Iterable[Mapping[str, Any]]],
                 autoscalers: Mapping[str, Iterable[Mapping[str, Any]]] | None = None) -> Inventory:
    """`meshlift:inventory` from live workload objects (API server shape), per namespace, each with the
    autoscalers (HPA, VPA objects of the same namespace) that target it."""
    inventory: Inventory = {}
    for namespace in namespaces:
        scaled = autoscalers_of((autoscalers or {}).get(namespace, ()))
        inventory[namespace] = [
            inventory_entry(obj, scaled.get((obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")), ()))
            for obj in live.get(namespace, ())]
    return inventory


def with_inventory(target: UpgradeTarget, base_config: Mapping[str, Any], inventory: Inventory | str) -> UpgradeTarget:
    """The same upgrade with `inventory` recorded (packed, as every stage's config carries it; a recorded
    one may already be); SpecError if the config names workloads that do not run."""
    return with_recorded(target, base_config, {INVENTORY_KEY: pack(inventory)})


def with_recorded(target: UpgradeTarget, base_config: Mapping[str, Any], recorded: Mapping[str, Any]) -> UpgradeTarget:
    """The same upgrade with `recorded` (keys meshlift writes from the cluster) in every stage's config."""
    assert target.spec.rollout is not None
    extra = {**target.extra, **recorded}
    rollout = target.spec.rollout.model_dump(by_alias=True, mode="json", exclude_none=True)
    spec = load_spec({**base_config, **extra, ROLLOUT_KEY: rollout})
    return replace(target, spec=spec, extra=extra)


def changed_canaried(spec: MeshSpec, live: Inventory) -> list[str]:
    """Warnings for canaried workloads whose pod template changed since the inventory was recorded."""
    recorded = spec.inventory or {}
    now = {(namespace, item["kind"], item["name"]): item.get("templateHash", "")
           for namespace, items in live.items() for item in items}
    warnings = []
    for namespace in spec.namespaces:
        canaried = {(w.kind, w.name) for w in namespace.workloads if w.canary}
        for item in recorded.get(namespace.name, []):
            if (item.kind, item.name) not in canaried:
                continue
            current = now.get((namespace.name, item.kind, item.name))
            if current is None:
                warnings.append(f"{item.kind} {namespace.name}/{item.name} is gone since its canary was cloned")
            elif current != item.template_hash:
                warnings.append(f"{item.kind} {namespace.name}/{item.name} changed during the canary stage "
                                f"(pod template {item.template_hash} -> {current}): the canary verified the "
                                "earlier template; what is promoted is the new one")
    return warnings


def without_workloads(spec: MeshSpec, gone: Iterable[tuple[str, str, str]]) -> Inventory:
    """The recorded inventory minus the (namespace, kind, name) workloads given: ones deleted during the run."""
    drop = set(gone)
    return {namespace: [item.model_dump(by_alias=True, mode="json", exclude_defaults=True)
                        for item in items if (namespace, item.kind, item.name) not in drop]
            for namespace, items in (spec.inventory or {}).items()}
