"""What an upgrade will do with each running workload: the classes of the inventory, in words.

`meshlift plan` shows this before anything changes, and `meshlift upgrade`
journals it when it records the inventory. Pure: it reads the stack's spec (the
policy in `meshlift:restarts`, the waves, the selection) and an inventory in its
recorded shape; the classes themselves come from `meshmodel.workload_class`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from meshmodel.spec import LiveWorkload, MeshSpec, NamespaceSpec, RestartPolicy

# What each class means for the run (the policy decides onDelete and paused).
CLASS_LABELS = {
    "rolls": "moves on patch",
    "onDelete": "moves only if its pods are deleted",
    "partitioned": "will not move (partition)",
    "paused": "paused",
    "outsideMesh": "not in the mesh",
    "owned": "owned by another controller",
}


@dataclass(frozen=True)
class WorkloadRow:
    namespace: str
    workload: str  # "StatefulSet/ledger"
    wave: int
    movement: str  # the class, meshmodel.workload_class
    label: str  # the class in words
    action: str  # what the run does with it: restarts | evicts | leaves | skips | refuses
    detail: str  # what happens, and what the operator can do
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "warnings": list(self.warnings)}


def workload_rows(spec: MeshSpec, inventory: Mapping[str, list[Mapping[str, Any]]]) -> list[WorkloadRow]:
    """One row per workload the inventory lists in an enrolled namespace, in inventory order."""
    rows = []
    for namespace in spec.namespaces:
        canaried = {(w.kind, w.name) for w in namespace.workloads if w.canary}
        for raw in inventory.get(namespace.name, []):
            live = LiveWorkload.model_validate(raw)
            if not namespace.select.matches(live):
                continue
            rows.append(_row(namespace, live, spec.restarts, canaried=(live.kind, live.name) in canaried))
    return rows


def _row(namespace: NamespaceSpec, live: LiveWorkload, policy: RestartPolicy, *, canaried: bool) -> WorkloadRow:
    wave = namespace.wave_of(live.name, live.kind)
    ref = f"{live.kind.lower()}/{live.name} -n {namespace.name}"
    action, detail = _decision(live, policy, wave, ref)
    warnings = []
    if live.recreate and action == "restarts":
        warnings.append(f"Recreate strategy: every pod stops before the new ones start, an outage during wave {wave}")
    if canaried and live.autoscalers:
        warnings.append(f"{', '.join(live.autoscalers)} targets it and counts its canary clone's pods too "
                        "(the clone shares its labels): expect its replica count to shift during the canary stage")
    return WorkloadRow(namespace.name, f"{live.kind}/{live.name}", wave, live.movement, CLASS_LABELS[live.movement],
                       action, detail, tuple(warnings))


def _decision(live: LiveWorkload, policy: RestartPolicy, wave: int, ref: str) -> tuple[str, str]:
    movement = live.movement
    if movement == "rolls":
        return "restarts", f"restarts in wave {wave}"
    if movement == "onDelete" and policy.on_delete == "evict":
        return "evicts", (f"its pods are evicted one by one in wave {wave} (the eviction API: "
                          "PodDisruptionBudgets pace it)")
    if movement == "onDelete":
        return "leaves", ("will not move: OnDelete restarts nothing, so it is left out of the wave gates and its "
                          "pods are named at cleanup; delete them one by one, or set "
                          "meshlift:restarts.onDelete: evict")
    if movement == "partitioned":
        return "leaves", (f"will not move: {live.note}; left out of the wave gates, its pods are named at cleanup; "
                          "lower the partition to move them: kubectl patch " + ref.replace("/", " ", 1)
                          + """ -p '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'""")
    if movement == "paused" and policy.paused == "skip":
        return "leaves", f"skipped (meshlift:restarts.paused: skip): stays on the old proxy; kubectl rollout resume {ref}"
    if movement == "paused":
        return "refuses", (f"the upgrade is refused while it is paused: kubectl rollout resume {ref}, or set "
                           "meshlift:restarts.paused: skip")
    if movement == "outsideMesh":
        return "skips", f"skipped: {live.note}"
    return "leaves", (f"not patched: {live.note}, which may revert meshlift's annotation; left out of the wave "
                      "gates, restart it through its owner (its pods are named at cleanup)")


def live_inventory(config: Mapping[str, Any], spec: MeshSpec) -> tuple[dict[str, list[dict[str, Any]]] | None, str]:
    """What runs now in the stack's cluster (its `kubernetes:context` / `kubernetes:kubeconfig`) as an inventory,
    or None and why it could not be listed. Never another cluster: a stack that names none is not listed."""
    from rollout.errors import PlatformError
    from rollout.inventory import inventory_of
    from rollout.platforms.kube_live import KubeLive

    context, kubeconfig = (config.get(f"kubernetes:{key}") for key in ("context", "kubeconfig"))
    context = context if isinstance(context, str) and context else None
    kubeconfig = kubeconfig if isinstance(kubeconfig, str) and kubeconfig else None
    if context is None and kubeconfig is None:
        return None, "not listed: the stack names no cluster (kubernetes:context or kubernetes:kubeconfig)"
    namespaces = [namespace.name for namespace in spec.namespaces]
    live = KubeLive(context=context, kubeconfig=kubeconfig, retry_s=0)
    try:
        return inventory_of(namespaces, {namespace: live.workloads(namespace) for namespace in namespaces},
                            {namespace: live.autoscalers(namespace) for namespace in namespaces}), ""
    except PlatformError as error:
        return None, f"not listed: {error}"


def with_live_workloads(target: Any, config: Mapping[str, Any]) -> tuple[Any, list[WorkloadRow], str]:
    """`meshlift plan`: the upgrade with what runs now recorded as its inventory (the stages then restart
    exactly what the run would), the rows, and why nothing was listed. A config the inventory makes
    invalid (a paused Deployment, a canary of a workload that cannot have one) keeps the plan without
    it: the rows say why `meshlift upgrade` would refuse."""
    from meshmodel.spec import SpecError
    from rollout.inventory import with_inventory

    inventory, note = live_inventory(config, target.spec)
    if inventory is None:
        return target, [], note
    rows = workload_rows(target.spec, inventory)
    try:
        return with_inventory(target, config, inventory), rows, ""
    except SpecError as error:
        return target, rows, "; ".join(str(problem) for problem in error.problems)
