"""The seam between the program and the gate: resource hooks for the promotion resources.

A plain `pulumi up` must stay safe, so the objects whose change promotes (tag
webhooks moving, workload Deployments restarting, gateways cutting over) accept a
`pulumi.ResourceHookBinding`. The orchestrator provides it as
`rollout.hooks.gate_hooks(spec, plan) -> pulumi.ResourceHookBinding | None`,
calling the same gate code it runs itself. Until that module exists the program
runs without hooks; an error *inside* that module is not swallowed.
"""

from __future__ import annotations

import importlib

import pulumi

from components.plan import MeshPlan
from components.spec import MeshSpec

HOOKS_MODULE = "rollout.hooks"


def load_promotion_hooks(spec: MeshSpec, plan: MeshPlan) -> pulumi.ResourceHookBinding | None:
    try:
        module = importlib.import_module(HOOKS_MODULE)
    except ModuleNotFoundError as error:
        if error.name in (HOOKS_MODULE, HOOKS_MODULE.partition(".")[0]):
            return None
        raise
    return module.gate_hooks(spec, plan)
