"""The declarative half of meshlift: the mesh spec, the per-stage plan, and the Pulumi components.

- `spec`, `validation`: the typed, validated stack config (no Pulumi, no Kubernetes imports).
- `plan`: the desired state at the rollout stage; `outputs`: the stack outputs built from it.
- One ComponentResource per module: `mesh_base` (istio/base, CRDs, default validator),
  `control_plane` (`istiod-<rev>`), `revision_tags` (tag webhooks), `gateway`,
  `namespace_enrollment`, `workload`, `canary`; `promotion` is the seam for the gate's hooks.

Nothing is imported here, so importing `components.spec` stays free of Pulumi.
"""
