"""The limits of Pulumi's channel for the stack config, measured on the benchmark's largest mesh."""

from __future__ import annotations


def test_a_thousand_workloads_fit_pulumis_config_channel_once_the_inventory_is_packed():
    from bench._specs import mesh_config
    from meshmodel.packed import pack
    from rollout.prerequisites import CONFIG_CHANNEL_LIMIT, config_channel_bytes, config_size_problem

    config = mesh_config(1000)  # every workload also listed by name, as a canary
    assert "meshlift:inventory (" in (config_size_problem(config) or ""), "plain, it does not fit"
    packed = {**config, "meshlift:inventory": pack(config["meshlift:inventory"])}
    assert config_size_problem(packed) is None
    assert config_channel_bytes(packed) < CONFIG_CHANNEL_LIMIT / 2
