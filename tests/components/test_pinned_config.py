"""Pinned Istio config under `pinnedConfig: relabel`: one label patch per recorded object, through the real program."""

from __future__ import annotations

import pytest

from tests.components.configs import minimal
from tests.components.program import run_program

PATCH = "kubernetes:security.istio.io/v1beta1:AuthorizationPolicyPatch"
PINNED = [{"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy", "namespace": "shop",
           "name": "deny-all"},
          {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "namespace": "shop", "name": "lua"}]


def relabel_config(stage: str, **rollout) -> dict:
    return minimal(rollout={"from": "1.30.3", "to": "1.31.0", "stage": stage, **rollout},
                   pinnedConfig="relabel", pinnedObjects=PINNED)


@pytest.mark.parametrize("stage, fields, revision", [
    ("install", {}, "1-30-3"), ("canary", {}, "1-30-3"),
    ("promote", {"promotedWaves": 0}, "1-31-0"), ("promote", {"promotedWaves": 1}, "1-31-0"),
    ("cleanup", {}, "1-31-0"),
], ids=["install", "canary", "promote-0", "promote-1", "cleanup"])
def test_each_pinned_object_is_labelled_old_until_the_tags_move_and_new_from_then_on(stage, fields, revision,
                                                                                   without_gate_hooks):
    run = run_program(relabel_config(stage, **fields))
    patch = run.named("pinned.shop.AuthorizationPolicy.deny-all")
    assert patch.type == PATCH, patch.urn
    # Only the label, under meshlift's manager, taking it from whoever owned it: nothing else is sent.
    assert patch.inputs == {
        "apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny-all", "namespace": "shop", "labels": {"istio.io/rev": revision},
                     "annotations": {"pulumi.com/patchFieldManager": "meshlift", "pulumi.com/patchForce": "true"}},
    }, patch.urn
    assert not patch.retain_on_delete, "a deleted patch relinquishes the label"
    envoy_filter = run.named("pinned.shop.EnvoyFilter.lua")
    assert envoy_filter.type == "kubernetes:networking.istio.io/v1alpha3:EnvoyFilterPatch"
    assert envoy_filter.inputs["metadata"]["labels"] == {"istio.io/rev": revision}


def test_the_relabel_is_a_promotion_step_and_workloads_restart_only_after_it(passing_gate_hooks):
    run = run_program(relabel_config("promote", promotedWaves=1))
    patches = [r for r in run if r.name.startswith("pinned.")]
    assert len(patches) == 2
    for patch in patches:
        assert patch.hooks == {"before_create": ("meshlift-promotion-before_create-0", "meshlift-pinned-target-exists"),
                               "before_update": ("meshlift-promotion-before_update-0",)}, patch.urn
        # The new revision's istiod exists before its label names it.
        assert any("istiod-1-31-0" in dependency for dependency in patch.dependencies), patch.dependencies
    restart = run.named("shop-restarts")
    assert {patch.urn for patch in patches} <= set(restart.dependencies), restart.dependencies


@pytest.mark.parametrize("overrides", [{"pinnedConfig": "leave"}, {"pinnedConfig": None}],
                         ids=["leave", "undecided"])
def test_nothing_is_relabelled_unless_the_stack_says_relabel(overrides):
    config = relabel_config("promote", promotedWaves=1)
    config.pop("meshlift:pinnedConfig")
    config.update({f"meshlift:{k}": v for k, v in overrides.items() if v is not None})
    run = run_program(config)
    assert not [r.urn for r in run if r.name.startswith("pinned")]


def test_before_promotion_each_patch_is_created_only_once_its_object_is_found(without_gate_hooks):
    run = run_program(relabel_config("install"))
    for patch in [r for r in run if r.name.startswith("pinned.")]:
        assert patch.hooks == {"before_create": ("meshlift-pinned-target-exists",)}, patch.urn
