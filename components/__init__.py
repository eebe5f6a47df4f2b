"""The Pulumi half of meshlift: one ComponentResource per module, built from `meshmodel`'s plan.

- `mesh_base` (istio/base, CRDs, default validator), `control_plane` (`istiod-<rev>`),
  `revision_tags` (tag webhooks), `gateway`, `namespace_enrollment`, `workload`, `canary`;
  `promotion` is the seam for the gate's hooks; `_helm` the shared Helm release helpers.

The spec, its validation and the plan live in `meshmodel/`, which imports no Pulumi.
"""
