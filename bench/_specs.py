"""Generated stack configs for the program-scale benchmark: namespaces x workloads, canary stage.

The workloads already run (their teams deployed them): the config selects them
and gives each a canary, with the inventory `meshlift upgrade` would record;
bench/_pulumi.py answers the program's reads with live Deployments.
"""

from __future__ import annotations

from typing import Any

from meshmodel.clone import inventory_entry
from tests.components.cluster import live_workload

# Sizes: (namespaces, workloads per namespace); every workload has a canary.
SHAPES = {10: (2, 5), 100: (10, 10), 1000: (50, 20)}


def shape(workloads: int) -> tuple[int, int]:
    if workloads in SHAPES:
        return SHAPES[workloads]
    namespaces = max(1, round(workloads ** 0.5 / 1.4))
    return namespaces, -(-workloads // namespaces)


def mesh_config(workloads: int, canaries: int | None = None) -> dict[str, Any]:
    """A stack config with `workloads` workloads spread over namespaces in 3 waves; every one canaried,
    or only `canaries` of them (the first workload of that many namespaces)."""
    namespaces, per = shape(workloads)
    made = 0
    spaces = []
    for n in range(namespaces):
        items = []
        for w in range(per):
            if made == workloads:
                break
            canaried = canaries is None or (w == 0 and n < canaries)
            items.append({"name": f"svc-{w}", **({"canary": True} if canaried else {})})
            made += 1
        spaces.append({"name": f"team-{n}", "revision": "stable", "wave": 1 + n % 3, "workloads": items})
    inventory = {space["name"]: [inventory_entry(live_object(space["name"], item["name"])) for item in space["workloads"]]
                 for space in spaces}
    return {
        "meshlift:revisions": [{"version": "1.30.3"}, {"version": "1.31.0"}],
        "meshlift:defaultRevision": "1-30-3",
        "meshlift:tags": {"stable": "1-30-3"},
        "meshlift:gateways": [
            {"name": "ingress", "namespace": "istio-ingress", "revision": "stable"},
            {"name": "egress", "namespace": "istio-egress", "revision": "stable",
             "service": {"type": "ClusterIP", "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
        ],
        "meshlift:namespaces": spaces,
        "meshlift:inventory": inventory,
        "meshlift:rollout": {"from": "1.30.3", "to": "1.31.0", "stage": "canary"},
    }


def live_object(namespace: str, name: str) -> dict[str, Any]:
    """The live Deployment a team runs as `namespace/name` (what the program's read returns)."""
    return live_workload(namespace, name, replicas=2, image=f"registry.example.com/{namespace}/{name}:1.0.0")
