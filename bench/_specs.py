"""Generated stack configs for the program-scale benchmark: namespaces x workloads, canary stage."""

from __future__ import annotations

from typing import Any

# Sizes: (namespaces, workloads per namespace); every workload has a canary.
SHAPES = {10: (2, 5), 100: (10, 10), 1000: (50, 20)}


def shape(workloads: int) -> tuple[int, int]:
    if workloads in SHAPES:
        return SHAPES[workloads]
    namespaces = max(1, round(workloads ** 0.5 / 1.4))
    return namespaces, -(-workloads // namespaces)


def mesh_config(workloads: int) -> dict[str, Any]:
    """A stack config with `workloads` canaried workloads spread over namespaces in 3 waves."""
    namespaces, per = shape(workloads)
    made = 0
    spaces = []
    for n in range(namespaces):
        items = []
        for w in range(per):
            if made == workloads:
                break
            items.append({"name": f"svc-{w}", "image": f"registry.example.com/ns{n}/svc-{w}:1.0.{w}",
                          "replicas": 2, "port": 8080, "canary": True})
            made += 1
        spaces.append({"name": f"team-{n}", "revision": "stable", "wave": 1 + n % 3, "workloads": items})
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
        "meshlift:rollout": {"from": "1.30.3", "to": "1.31.0", "stage": "canary"},
    }
