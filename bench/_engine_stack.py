"""What the engine benchmarks share: the stack they apply, the teams' Deployments, the `pulumi` runner."""

from __future__ import annotations

from typing import Any

from meshmodel.packed import pack

from ._specs import mesh_config

STACK = "bench"
PULUMI_TIMEOUT_S = 3600


def say(message: str) -> None:
    print(f"   {message}", flush=True)


def nodes_for(workloads: int) -> int:
    """kwok nodes enough for every pod: a team pod and a canary pod per workload, istiod and gateways."""
    from localcluster.cluster import NODE_POD_CAPACITY

    pods = 2 * workloads + 20
    return max(2, -(-pods // NODE_POD_CAPACITY) + 1)


def engine_config(workloads: int, cluster: Any, chart_repository: str, *, canaries: int | None = None
                  ) -> dict[str, Any]:
    """benchmark 4's mesh for `workloads`, on this cluster: namespaces that exist, one ClusterIP gateway,
    the inventory packed as meshlift writes it.

    A LoadBalancer Service would wait for an address nothing here hands out.
    """
    config = mesh_config(workloads, canaries)
    config.update({
        "kubernetes:kubeconfig": str(cluster.kubeconfig),
        "kubernetes:context": cluster.context,
        "meshlift:chartRepository": chart_repository,
        "meshlift:gateways": [{"name": "istio-ingressgateway", "namespace": "istio-ingress", "revision": "stable",
                               "replicas": 1, "service": {"type": "ClusterIP"}}],
    })
    for namespace in config["meshlift:namespaces"]:
        namespace["create"] = False
    config["meshlift:inventory"] = pack(config["meshlift:inventory"])  # as `meshlift upgrade` records it
    config["meshlift:rollout"] = {**config["meshlift:rollout"], "stage": "install"}
    return config


def create_workloads(core: Any, apps: Any, config: dict[str, Any]) -> None:
    """The teams' namespaces and Deployments (one replica each), before meshlift."""
    from rollout.cluster_rehearsal import TEAM_MANAGER, team_deployment

    for namespace in config["meshlift:namespaces"]:
        core.create_namespace({"metadata": {"name": namespace["name"]}}, field_manager=TEAM_MANAGER)
        for workload in namespace["workloads"]:
            deployment = team_deployment(namespace["name"], workload["name"])
            deployment["spec"]["replicas"] = 1
            # The pod labels the recorded inventory selects by (bench/_specs.py).
            for labels in (deployment["spec"]["selector"]["matchLabels"],
                           deployment["spec"]["template"]["metadata"]["labels"]):
                labels["version"] = "v1"
            apps.create_namespaced_deployment(namespace["name"], deployment, field_manager=TEAM_MANAGER)


def run_pulumi(project: Any, *args: str, env: dict[str, str] | None = None) -> Any:
    """One `pulumi` command on the benchmark's stack (the e2e suite's project runner); fails loudly."""
    done = project.pulumi(*args, stack=STACK, timeout=PULUMI_TIMEOUT_S, env=env)
    if done.returncode != 0:
        errors = "\n".join(line for line in done.output.splitlines() if "error" in line.lower())
        raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{errors[-4000:]}\n{done.output[-2000:]}")
    return done
