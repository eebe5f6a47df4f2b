"""The stack outputs: what the orchestrator and the checks read after each `pulumi up`.

Built from the plan alone (plain data, no Pulumi Outputs), so the orchestrator can
compute the same document for a stage it has not applied yet and compare.
Keys are camelCase like every other Pulumi output. There are no nulls: Pulumi
drops null values on the way to the engine, so an optional key is *absent*
instead. The shapes are:

- `stage`: "install" | "canary" | "promote" | "cleanup" (absent without a rollout)
- `rollout`: {from, to, fromRevision, toRevision} (absent without a rollout)
- `revisions`: {<rev>: {version, release}} for every installed istiod
- `removedRevisions`: [<rev>] removed at this stage (cleanup)
- `defaultRevision`: the revision the default validator points at
- `tags`: {<tag>: <rev>}
- `gateways`: {<name>: {namespace, revisionLabel, revision, version, service,
  canary?: {name, revision, version}}}  (canary only in the canary stage)
- `namespaces`: {<name>: {revisionLabel, revision, wave, created}}
- `workloads`: [{namespace, name, kind, selector, proxyRevision, proxyVersion, wave,
  restartRevision?}]  (restartRevision: meshlift's annotation, absent while unpatched)
- `canaries`: [{namespace, name, workload, kind, selector, revision, expectedProxyVersion}]
"""

from __future__ import annotations

from typing import Any

from meshmodel.plan import MeshPlan, istiod_release_name


def stack_outputs(plan: MeshPlan) -> dict[str, Any]:
    return _without_nulls({
        "stage": plan.stage.value if plan.stage else None,
        "rollout": None if plan.from_revision is None else {
            "from": plan.from_version,
            "to": plan.to_version,
            "fromRevision": plan.from_revision,
            "toRevision": plan.to_revision,
        },
        "revisions": {
            plane.revision: {"version": plane.version, "release": istiod_release_name(plane.revision)}
            for plane in plan.control_planes
        },
        "removedRevisions": list(plan.removed_revisions),
        "defaultRevision": plan.default_revision,
        "tags": dict(plan.tags),
        "gateways": {
            gateway.name: {
                "namespace": gateway.namespace,
                "revisionLabel": gateway.revision_label,
                "revision": gateway.revision,
                "version": gateway.version,
                "service": gateway.name,
                "canary": None if gateway.canary_revision is None else {
                    "name": f"{gateway.name}-canary",
                    "revision": gateway.canary_revision,
                    "version": gateway.canary_version,
                },
            }
            for gateway in plan.gateways
        },
        "namespaces": {
            namespace.name: {
                "revisionLabel": namespace.revision_label,
                "revision": namespace.revision,
                "wave": namespace.wave,
                "created": namespace.create,
            }
            for namespace in plan.namespaces
        },
        "workloads": [
            {
                "namespace": workload.namespace,
                "name": workload.name,
                "kind": workload.kind,
                "selector": dict(workload.selector),
                "proxyRevision": workload.proxy_revision,
                "proxyVersion": workload.proxy_version,
                "wave": workload.wave,
                "restartRevision": workload.restart_revision,
            }
            for workload in plan.workloads
        ],
        "canaries": [
            {
                "namespace": canary.namespace,
                "name": canary.name,
                "workload": canary.workload,
                "kind": canary.kind,
                "selector": dict(canary.selector),
                "revision": canary.revision,
                "expectedProxyVersion": canary.expected_proxy_version,
            }
            for canary in plan.canaries
        ],
    })


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
