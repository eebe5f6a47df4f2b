"""What `meshlift upgrade --to` adds to a stack's config."""

from __future__ import annotations

from rollout.stages import upgrade_target
from tests.rollout.doubles import mesh_config

MESH_VALUES = {"meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}, "global": {"hub": "registry.corp"}}


def test_the_target_revision_carries_the_from_revisions_helm_values() -> None:
    config = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3", "values": MESH_VALUES}]})
    target = upgrade_target(config, "1.40.0")
    assert target.spec.revision("1-40-0").values == MESH_VALUES
    assert target.spec.revision("1-39-3").values == MESH_VALUES


def test_a_target_revision_already_listed_keeps_its_own_values() -> None:
    config = mesh_config(**{"meshlift:revisions": [{"version": "1.39.3", "values": MESH_VALUES},
                                                   {"version": "1.40.0", "values": {"global": {"hub": "other"}}}]})
    assert upgrade_target(config, "1.40.0").spec.revision("1-40-0").values == {"global": {"hub": "other"}}


def test_no_values_are_invented_for_a_revision_that_had_none() -> None:
    target = upgrade_target(mesh_config(), "1.40.0")
    assert target.spec.revision("1-40-0").values == {}
    assert {"version": "1.40.0"} in target.extra["meshlift:revisions"]
