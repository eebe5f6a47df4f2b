from __future__ import annotations

import pytest

import rollout.hooks


@pytest.fixture(autouse=True)
def without_gate_hooks(monkeypatch):
    """Component tests run the program without the orchestrator's gate hooks.

    The wiring hands `rollout.hooks.gate_hooks` to the components; tests that
    exercise that seam install their own function (or the real one) explicitly.
    """
    real = rollout.hooks.gate_hooks
    monkeypatch.setattr(rollout.hooks, "gate_hooks", lambda spec, plan, **options: None)
    return real


@pytest.fixture
def passing_gate_hooks(monkeypatch):
    """A promotion gate that passes, bound as the program binds the real one (before create and update)."""
    import pulumi

    def gate_hooks(spec, plan, **options):
        def gate(args):
            return None

        return pulumi.ResourceHookBinding(before_create=[gate], before_update=[gate])

    monkeypatch.setattr(rollout.hooks, "gate_hooks", gate_hooks)
