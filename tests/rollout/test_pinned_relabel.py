"""`meshlift:pinnedConfig: relabel`: the run records the pinned objects, promotion relabels them, a rollback restores."""

from __future__ import annotations

import json

from meshmodel.plan import plan_for
from meshmodel.spec_check import load_spec
from rollout import cli
from rollout.entry import run
from rollout.phases import Phase
from rollout.platforms.kubernetes import KubernetesPlatform
from tests.rollout.doubles import fake_discovery, mesh_config
from tests.rollout.test_cli import _deny_all, _write, project  # noqa: F401 (the CLI fixture)

RELABEL = {**mesh_config(), "meshlift:pinnedConfig": "relabel"}
RECORD = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy", "namespace": "shop",
          "name": "deny-all"}


def labels_applied(engine) -> list[tuple[str, str]]:
    """(stage, revision the deny-all label patch says) for every config the engine applied, in order."""
    applied = []
    for entry in sorted(engine.entries, key=lambda e: e.version)[1:]:
        config = {key: json.loads(value) if value[:1] in "[{" else value for key, value in entry.config.items()}
        plan = plan_for(load_spec(config))
        applied.append((plan.stage.value, *[r.revision for r in plan.relabels]))
    return applied


def test_plan_shows_which_objects_promotion_relabels_and_upgrade_no_longer_refuses(project, capsys):  # noqa: F811
    project.cluster.custom_list = [_deny_all("1-39-3")]
    _write(project, RELABEL)
    assert run(cli.app, ["plan", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["cluster"]["problems"] == []
    assert document["cluster"]["notes"] == [
        "AuthorizationPolicy shop/deny-all carries istio.io/rev=1-39-3: promotion relabels it istio.io/rev=1-40-0 "
        "when the tags move (meshlift:pinnedConfig: relabel); from then on workloads still on 1-39-3 no longer "
        "get it"]
    changes = {stage["stage"]: stage["changes"] for stage in document["stages"]}
    relabel = "relabel AuthorizationPolicy shop/deny-all: istio.io/rev 1-39-3 -> 1-40-0"
    assert relabel in changes["promote wave 1/2"]
    assert [stage for stage, lines in changes.items() if relabel in lines] == ["promote wave 1/2"]


def test_the_run_records_the_pinned_objects_and_relabels_them_when_the_tags_move(project, capsys,  # noqa: F811
                                                                                  monkeypatch):
    project.cluster.custom_list = [_deny_all("1-39-3")]
    _write(project, RELABEL)
    project.engine.config.update(RELABEL)  # the stack file the engine's updates record
    # The run lists what it relabels through its platform, on the same cluster the preflight read.
    monkeypatch.setattr(cli, "_kubernetes", lambda stack: KubernetesPlatform(
        project.engine, discover=fake_discovery, live=project.cluster))
    assert run(cli.app, ["upgrade", "-s", "dev", "--to", "1.40.0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["phase"] == Phase.SUCCEEDED.value
    pinned = next(e for e in document["events"] if e["event"] == "pinned")
    assert pinned["relabel"] == ["AuthorizationPolicy shop/deny-all"] and pinned["revision"] == "1-40-0"
    for call, payload in project.engine.calls:
        if call == "set_config":
            assert payload["meshlift:pinnedObjects"] == [RECORD], payload
    assert labels_applied(project.engine) == [("install", "1-39-3"), ("canary", "1-39-3"), ("promote", "1-40-0"),
                                              ("promote", "1-40-0"), ("cleanup", "1-40-0")]


def test_a_rollback_reapplies_a_config_whose_patch_puts_the_old_revision_back(make_rig):
    rig = make_rig(config=dict(RELABEL))
    rig.cluster.custom_list = [_deny_all("1-39-3")]
    rig.gate.outcomes["wave 1"] = "failed"
    state = rig.run()
    assert state.phase is Phase.ROLLED_BACK
    assert labels_applied(rig.engine) == [("install", "1-39-3"), ("canary", "1-39-3"), ("promote", "1-40-0"),
                                          ("install", "1-39-3")]


def test_a_resumed_run_relabels_what_its_first_apply_recorded(make_rig):
    rig = make_rig(config=dict(RELABEL))
    rig.cluster.custom_list = [_deny_all("1-39-3")]
    rig.gate.interrupt_on = "canary"
    try:
        rig.run()
    except KeyboardInterrupt:
        pass
    rig.cluster.custom_list = []  # relabelled by hand meanwhile, or deleted: the run keeps its record
    assert rig.run().phase is Phase.SUCCEEDED
    assert rig.engine.config["meshlift:pinnedObjects"] == [RECORD]
    assert not [e for kind, e in rig.reporter.events if kind == "pinned"][1:], "listed once, when the run started"


def test_a_label_patch_is_never_created_for_an_object_gone_since_it_was_listed():
    import asyncio
    from types import SimpleNamespace

    import pytest

    from rollout.errors import PlatformError
    from rollout.pinned_config import PinnedTargetCheck, PinnedTargetMissing
    from tests.rollout.doubles import FakeCluster

    cluster = FakeCluster()
    hook = PinnedTargetCheck(lambda: cluster)
    inputs = {**RECORD, "metadata": {"namespace": "shop", "name": "deny-all", "labels": {"istio.io/rev": "1-39-3"}}}
    args = SimpleNamespace(new_inputs=inputs)
    with pytest.raises(PinnedTargetMissing, match="AuthorizationPolicy shop/deny-all no longer exists: its "
                                                  "istio.io/rev label patch would create it"):
        asyncio.run(hook(args))
    cluster.custom_list = [_deny_all("1-39-3")]
    asyncio.run(hook(args))  # there: the patch may be applied
    cluster.fail_with = PlatformError("cannot read authorizationpolicies: connection refused")
    with pytest.raises(PinnedTargetMissing, match="cannot tell whether AuthorizationPolicy shop/deny-all exists"):
        asyncio.run(hook(args))
