"""The seam between the program and the gate: resource hooks for the promotion resources.

A plain `pulumi up` must stay safe, so the objects whose change promotes (tag
webhooks moving, workload Deployments restarting, gateways cutting over) accept a
`pulumi.ResourceHookBinding`. The components know nothing of the gate: the
program's wiring (`__main__.py`) builds the binding from the orchestrator's
`rollout.hooks.gate_hooks` and hands it to them.

Pulumi registers a plain hook function anew for every resource it is bound to
(one `RegisterResourceHook` call to the engine each, made on the program's
event loop): a thousand workload Deployments would mean two thousand. So each
function is wrapped once in a named `pulumi.ResourceHook`, registered once and
shared by every promotion resource.
"""

from __future__ import annotations

import pulumi

HOOK_NAME_PREFIX = "meshlift-promotion"
_FUNCTION_KINDS = ("before_create", "after_create", "before_update", "after_update")


def registered_once(binding: pulumi.ResourceHookBinding) -> pulumi.ResourceHookBinding:
    """The same binding, each plain function replaced by a named hook registered here, once."""

    def named(kind: str) -> list | None:
        hooks = getattr(binding, kind)
        if hooks is None:
            return None
        return [hook if isinstance(hook, pulumi.ResourceHook) else
                pulumi.ResourceHook(f"{HOOK_NAME_PREFIX}-{kind}-{index}", hook)
                for index, hook in enumerate(hooks)]

    return pulumi.ResourceHookBinding(
        **{kind: named(kind) for kind in _FUNCTION_KINDS},
        # Delete hooks are named hooks already (Pulumi refuses functions there).
        before_delete=binding.before_delete,
        after_delete=binding.after_delete,
        on_error=binding.on_error,
    )
