"""Which Istio releases' charts install on a current cluster, and what istio/gateway accepts."""

from __future__ import annotations

import pytest

from components.gateway import gateway_values
from meshmodel.chart_support import gateway_accepts_pod_disruption_budget, installable
from meshmodel.spec import IstioVersion, SpecError
from meshmodel.spec_check import load_spec
from tests.components.configs import minimal


@pytest.mark.parametrize("version", ["1.9.5", "1.10.0", "1.11.8", "1.12.0", "1.13.9"])
def test_releases_whose_charts_cannot_install_are_refused_with_the_reason(version: str) -> None:
    reason = installable(IstioVersion.parse(version))
    assert reason is not None and "use 1.14.0 or newer" in reason


@pytest.mark.parametrize("version", ["1.14.0", "1.22.3", "1.30.3", "1.31.0"])
def test_current_releases_install(version: str) -> None:
    assert installable(IstioVersion.parse(version)) is None


def test_validation_names_the_revision_key_and_the_reason() -> None:
    config = minimal(revisions=[{"version": "1.9.5"}, {"version": "1.10.0"}],
                     rollout={"from": "1.9.5", "to": "1.10.0", "stage": "install"}, defaultRevision="1-9-5",
                     tags={"stable": "1-9-5"})
    with pytest.raises(SpecError) as raised:
        load_spec(config)
    paths = {p.key: p.reason for p in raised.value.problems}
    assert "meshlift:revisions[0].version" in paths and "meshlift:revisions[1].version" in paths
    assert "autoscaling/v2beta1" in paths["meshlift:revisions[0].version"]


@pytest.mark.parametrize(("version", "accepts"), [
    ("1.14.6", False), ("1.16.5", False), ("1.16.6", True), ("1.17.2", False), ("1.17.3", True),
    ("1.18.0", False), ("1.18.1", True), ("1.19.0", True), ("1.31.0", True),
])
def test_gateway_pod_disruption_budget_only_where_the_chart_schema_allows_it(version: str, accepts: bool) -> None:
    assert gateway_accepts_pod_disruption_budget(IstioVersion.parse(version)) is accepts


def test_gateway_values_leave_the_budget_out_for_a_chart_that_rejects_it() -> None:
    from meshmodel.plan import plan_for

    spec = load_spec(minimal())
    plan = plan_for(spec).gateways[0]
    kept = gateway_values(plan, revision_label="stable", revision="x", replicas=2, canary=False, chart_version="1.31.0")
    dropped = gateway_values(plan, revision_label="stable", revision="x", replicas=2, canary=False, chart_version="1.18.0")
    assert kept["podDisruptionBudget"] == {"minAvailable": 1}
    assert "podDisruptionBudget" not in dropped
