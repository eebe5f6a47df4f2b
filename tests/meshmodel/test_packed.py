"""The packed form meshlift writes `meshlift:inventory` in, read back by the spec."""

from __future__ import annotations

import pytest

from meshmodel.packed import PREFIX, is_packed, pack, unpack
from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from tests.components.configs import minimal

INVENTORY = {"shop": [{"kind": "Deployment", "name": "web", "labels": {"app": "web"}, "selector": {"app": "web"},
                       "templateHash": "ee5c83fbac229e3d"}]}


def test_a_value_survives_packing_and_the_same_value_always_packs_the_same():
    packed = pack(INVENTORY)
    assert packed.startswith(PREFIX) and is_packed(packed)
    assert unpack(packed) == INVENTORY
    assert pack(INVENTORY) == packed, "a config that did not change must not show a diff"
    assert pack(packed) == packed, "packing what is packed changes nothing"


def test_plain_values_pass_through_unpack():
    assert unpack(INVENTORY) is INVENTORY and unpack("web") == "web"


def test_a_thousand_workloads_pack_into_a_small_fraction():
    inventory = {f"team-{n}": [{**INVENTORY["shop"][0], "name": f"svc-{w}"} for w in range(20)] for n in range(50)}
    assert len(pack(inventory)) < len(str(inventory)) / 5


def test_the_spec_reads_a_packed_inventory_like_a_plain_one():
    plain = load_spec(minimal(inventory=INVENTORY))
    packed = load_spec(minimal(inventory=pack(INVENTORY)))
    assert packed.inventory == plain.inventory and packed.inventory is not None


def test_a_corrupt_packed_inventory_is_a_config_error_at_its_key():
    with pytest.raises(SpecError) as raised:
        load_spec(minimal(inventory=pack(INVENTORY)[:-12]))
    assert [p.key for p in raised.value.problems] == ["meshlift:inventory"]
    assert "packed value meshlift did not write, or one cut short" in str(raised.value)
