"""The mesh model: a stack's `meshlift:*` config, its validation and the desired state at each stage.

No Pulumi, no Kubernetes client, nothing of `checks/`, `rollout/`, `components/` or
`localmesh/`: the Pulumi components, the checks and the orchestrator all build on
it. Its modules form layers; each imports only modules of the layers before it:

1. `fields` (versions, names, durations, the base model), `packed`, `parity_allow`,
   `stackfile` (strict reading of a stack file), `workload_class` (how a live
   workload's controller answers a restart): no model imports;
2. `proxy_profile`, then `spec`: the typed config, `SpecError` and its key paths;
3. `plan` (the desired state at a stage), `chart_support`; `clone` and `outputs` on the plan;
4. `validation`: the cross-field rules, judged on the names the plan gives;
5. `spec_check`: every problem in one pass, and `load_spec`, the one way a config
   becomes a `MeshSpec`.

Nothing is imported here, so each module loads only what it needs.
"""
