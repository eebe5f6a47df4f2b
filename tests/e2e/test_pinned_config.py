"""Istio config pinned to the old revision, on the real engine: refused, then relabelled, then restored.

A team's AuthorizationPolicy in shop carries `istio.io/rev=<old>` (created under the team's
own field manager). `meshlift upgrade` refuses until the stack decides; with
`meshlift:pinnedConfig: relabel` the promotion's label patch (a CustomResourcePatch, server-side
apply under meshlift's field manager) moves the label to the new revision when wave 1 applies.
shop's pods restarted onto the new revision answer 503, so the wave 1 gate fails and the run
re-applies the install stage's config from the stack history: the label is the old revision again,
and the team still owns everything else of its policy.
"""

from __future__ import annotations

import json
import threading

import pytest

from rollout.cluster_rehearsal import TEAM_MANAGER
from tests.e2e.kube import Kube, eventually
from tests.e2e.stacks import FROM_REV, TO, TO_REV
from tests.e2e.test_upgrade import _mesh, the_mesh_before_the_upgrade
from tests.e2e.test_wave_rollback import faulty_first_wave

STACK = "pinned"
POLICY = ("security.istio.io", "v1", "authorizationpolicies")


@pytest.fixture(scope="module")
def mesh(clusters, built_toolchain, istiod_runners, tmp_path_factory):
    yield from _mesh("pinned", clusters, built_toolchain, istiod_runners, tmp_path_factory,
                     on_start=faulty_first_wave)


def policy(kube: Kube) -> dict:
    return kube.custom.get_namespaced_custom_object(*POLICY[:2], "shop", POLICY[2], "audit-nothing")


def revision_label(kube: Kube) -> str | None:
    return (policy(kube)["metadata"].get("labels") or {}).get("istio.io/rev")


def watch_for_relabel(kube: Kube) -> threading.Thread:
    """A thread that keeps the policy as it is the first time its label names the new revision."""
    def watch() -> None:
        thread.seen = eventually(lambda: revision_label(kube) == TO_REV and policy(kube), timeout=1500, every=0.2,
                                 what="the policy relabelled to the new revision")

    thread = threading.Thread(target=watch, daemon=True)
    thread.seen = None
    thread.start()
    return thread


def managers(obj: dict) -> dict[str, dict]:
    """manager -> the fields it owns (managedFields' fieldsV1)."""
    return {entry["manager"]: entry.get("fieldsV1") or {} for entry in obj["metadata"]["managedFields"]}


def test_pinned_config_blocks_until_decided_is_relabelled_at_promotion_and_restored_by_rollback(
        project, mesh, chart_repository) -> None:
    cluster, kube, proxies = mesh
    the_mesh_before_the_upgrade(project, cluster, chart_repository, kube, proxies, stack=STACK)
    # Selects no pod: what the test follows is the label, not a policy decision.
    kube.custom.create_namespaced_custom_object(*POLICY[:2], "shop", POLICY[2], {
        "apiVersion": "/".join(POLICY[:2]), "kind": "AuthorizationPolicy",
        "metadata": {"name": "audit-nothing", "labels": {"istio.io/rev": FROM_REV, "team": "shop"}},
        "spec": {"selector": {"matchLabels": {"app": "nothing"}}, "action": "ALLOW", "rules": [{}]},
    }, field_manager=TEAM_MANAGER)

    refused = project.meshlift("upgrade", "-s", STACK, "--to", TO, label="meshlift upgrade (pinned config)")
    assert refused.returncode == 2, refused.output[-4000:]
    output = " ".join(refused.output.split())
    assert "AuthorizationPolicy shop/audit-nothing" in output and "meshlift:pinnedConfig: relabel" in output, output
    assert set(kube.helm_releases("istio-system")) == {"istio-base", f"istiod-{FROM_REV}"}, "nothing changed"

    config = project.stack_config(STACK)
    project.write_stack(STACK, {**config, "meshlift:pinnedConfig": "relabel"})
    relabelled = watch_for_relabel(kube)
    upgrade = project.meshlift("upgrade", "-s", STACK, "--to", TO, "--json", label="meshlift upgrade (relabel)")
    relabelled.join(timeout=5)

    assert upgrade.returncode == 1, upgrade.output[-6000:]
    document = json.loads(upgrade.stdout)
    assert document["failure"]["gate"] == "wave 1" and document["phase"] == "RolledBack", document["failure"]
    # Promotion relabelled it, under meshlift's manager, with that one field.
    assert relabelled.seen is not None, "the policy was never relabelled to the new revision"
    owned = managers(relabelled.seen)
    assert owned["meshlift"]["f:metadata"]["f:labels"] == {"f:istio.io/rev": {}} and "f:spec" not in owned["meshlift"], owned
    assert "f:spec" in owned[TEAM_MANAGER], owned
    assert "f:istio.io/rev" not in owned[TEAM_MANAGER]["f:metadata"]["f:labels"], "the forced apply took the label"
    # The rollback re-applied the install stage's config: the label is the old revision again.
    history = json.loads(project.pulumi("stack", "history", "--json", stack=STACK).stdout)
    assert "rollback to update" in history[0]["message"]
    assert json.loads(history[0]["config"]["meshlift:rollout"]["value"])["stage"] == "install"
    restored = policy(kube)
    assert restored["metadata"]["labels"]["istio.io/rev"] == FROM_REV
    assert restored["metadata"]["labels"]["team"] == "shop" and restored["spec"]["action"] == "ALLOW"
    assert "f:spec" in managers(restored)[TEAM_MANAGER], "the team still owns its policy"
