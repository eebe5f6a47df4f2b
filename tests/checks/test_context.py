"""What every canary's checks derive from a sample's baselines is derived once for the sample."""

from __future__ import annotations

from datetime import datetime, timezone

from checks.context import Baselines, Context
from checks.observe import Observation
from checks.target import Target
from meshmodel.spec import GateSettings


def test_a_value_derived_from_the_baselines_is_computed_once_per_key() -> None:
    computed: list[str] = []
    baselines = Baselines()
    assert baselines.derive("traffic", lambda: computed.append("traffic") or 1) == 1
    assert baselines.derive("traffic", lambda: computed.append("traffic") or 2) == 1
    assert baselines.derive("by-workload", lambda: computed.append("by-workload") or 3) == 3
    assert computed == ["traffic", "by-workload"]


def test_contexts_given_plain_views_share_nothing_and_still_derive() -> None:
    target = Target(name="a", admin_url="http://127.0.0.1:1")
    context = Context(target=target, settings=GateSettings(), obs=Observation("a", 0.0),
                      now=datetime.now(timezone.utc), baselines=())
    assert isinstance(context.baselines, Baselines) and context.baselines.derive("k", lambda: 7) == 7
