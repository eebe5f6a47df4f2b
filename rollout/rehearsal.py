"""`meshlift rehearse`: the whole staged upgrade, on real Envoys on this machine.

The rehearsal mesh is a spec like any stack's (built here, validated by the same
`load_spec`): Istio "versions" 1.39.3 and 1.40.0 are the two Envoy binaries.
What already runs is the fleet, two Deployments of two pods in two namespaces
(two promotion waves); the config only selects them and gives each a canary,
a clone of one pod. The same orchestrator, stage machine and gates
that drive a cluster drive the local platform.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from meshmodel.spec_check import load_spec
from rollout.approval import Approval
from rollout.gates import ChecksGate, GateRunner
from rollout.journal import Journal
from rollout.orchestrator import Orchestrator, Reporter, RunRequest
from rollout.platforms.local import LocalPlatform
from rollout.platforms.local_fleet import FleetWorkload
from rollout.stages import upgrade_target

STACK = "rehearsal"
FROM_VERSION = "1.39.3"
TO_VERSION = "1.40.0"
FAULTS = ("none", "5xx", "reject-config", "cert-expiry", "overload", "upstream-down", "missing-route")

GATES_ENV = "MESHLIFT_REHEARSAL_GATES"
# Short windows: a rehearsal shows the whole flow in about a minute.
GATES = {"window": "10s", "interval": "500ms", "consecutivePasses": 6, "failureLimit": 1, "minRequests": 5}


def rehearsal_fleet() -> list[FleetWorkload]:
    """What runs before the upgrade: the teams' own Deployments, not meshlift's."""
    return [
        FleetWorkload(namespace="shop", name="web", replicas=2, image="local/web:2.14.0", labels={"team": "shop"}),
        FleetWorkload(namespace="pay", name="api", replicas=2, image="local/api:5.2.0", labels={"team": "pay"}),
    ]


def rehearsal_config(*, gates: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack config of the rehearsal mesh, before the upgrade."""
    config: dict[str, Any] = {
        "meshlift:revisions": [{"version": FROM_VERSION}],
        "meshlift:tags": {"stable": "1-39-3"},
        "meshlift:namespaces": [
            {"name": "shop", "revision": "stable", "wave": 1, "workloads": [{"name": "web", "canary": True}]},
            {"name": "pay", "revision": "stable", "wave": 2, "workloads": [{"name": "api", "canary": True}]},
        ],
        "meshlift:gates": {**GATES, **(gates or {})},
        # The production profile, overload actions included: localmesh renders all of it.
        "meshlift:proxyProfile": {"overload": {"enabled": True, "maxHeapBytes": 1024 * 1024 * 1024}},
    }
    load_spec(config)  # fail loudly here if the rehearsal mesh itself is wrong
    return config


def rehearse(
    *,
    project_dir: Path,
    fault: str,
    reporter: Reporter,
    gate: GateRunner | None = None,
    gates: dict[str, Any] | None = None,
    require_approval: bool = False,
    approval: Approval | None = None,
    approval_timeout_s: float | None = None,
) -> tuple[Any, LocalPlatform]:
    """Run (or resume) the rehearsal; returns the final RunState and the platform.

    `gates` (or $MESHLIFT_REHEARSAL_GATES, JSON) overrides the rehearsal's gate
    settings, e.g. shorter windows in tests.
    """
    if gates is None and os.environ.get(GATES_ENV):
        gates = json.loads(os.environ[GATES_ENV])
    config = rehearsal_config(gates=gates)
    target = upgrade_target(config, TO_VERSION, require_approval=require_approval or None)
    journal = Journal.for_stack(project_dir, STACK)
    platform = LocalPlatform(state_dir=journal.root, base_config=config, fleet=rehearsal_fleet(), fault=fault)
    params = {"to": TO_VERSION, "fault": fault, "approval": require_approval}
    orchestrator = Orchestrator(platform=platform, journal=journal, gate=gate or ChecksGate(),
                                reporter=reporter, stack=STACK, approval=approval, retry_wait_s=0.5,
                                approval_poll_s=0.5, approval_timeout_s=approval_timeout_s)
    # A new rehearsal (the last one finished, or had other parameters) starts from a fresh
    # local mesh and history; an unfinished one with the same parameters resumes.
    request = RunRequest(command="rehearse", params=params, target=target, base_config=config,
                         replace_unfinished=True, on_new_run=platform.reset)
    return orchestrator.run(request), platform
