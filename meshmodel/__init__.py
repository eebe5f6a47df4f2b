"""The mesh model: a stack's `meshlift:*` config, its validation and the desired state at each stage.

No Pulumi, no Kubernetes client, nothing of `checks/`, `rollout/` or `localmesh/`:
the Pulumi components, the checks and the orchestrator all build on it. Its modules
form layers, each importing only those above it in this list:

- `stackfile` (strict reading of a stack file), `packed`, `parity_allow`: no model imports;
- `fields` (versions, names, durations, the base model) -> `proxy_profile` -> `spec` (the typed config);
- `plan` (the desired state at a stage), `chart_support`, then `clone`, `outputs` built on the plan;
- `validation` (the cross-field rules, judged on the names the plan gives);
- `spec_check` (every problem in one pass) and `load_spec`, the one way a config becomes a `MeshSpec`.

Nothing is imported here, so each module loads only what it needs.
"""
