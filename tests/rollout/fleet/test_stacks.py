"""Stack sources: where each stack's config, journal and platform come from."""

from __future__ import annotations

import pytest
import yaml

from rollout.fleet.stacks import KubernetesStacks, RehearsalStacks
from tests.rollout.doubles import mesh_config


def test_each_kubernetes_stack_discovers_pods_in_its_own_kubeconfig_context(tmp_path, monkeypatch):
    (tmp_path / "stacks").mkdir()
    config = {**mesh_config(), "kubernetes:context": "kind-prod-eu"}
    (tmp_path / "stacks" / "Pulumi.prod-eu.yaml").write_text(yaml.safe_dump({"config": config}))
    contexts = []

    def new_client_from_config(*, context=None, **_):
        contexts.append(context)
        return None  # CoreV1Api(api_client=None) builds a default client; no cluster is contacted

    monkeypatch.setattr("kubernetes.config.new_client_from_config", new_client_from_config)
    source = KubernetesStacks(tmp_path, "fleet")

    platform = source.platform("prod-eu", source.config("prod-eu"))
    platform._discovery()._client().api_client  # first use builds the client

    assert contexts == ["kind-prod-eu"], "never the kubeconfig's current context"
    assert source.journal("prod-eu").root == tmp_path / ".meshlift" / "prod-eu", "the journal `meshlift status -s` reads"
    assert source.describe("prod-eu") == "stacks/Pulumi.prod-eu.yaml"


def test_a_new_rehearsal_fleet_run_starts_from_fresh_meshes_but_keeps_the_fleet_journal(tmp_path):
    source = RehearsalStacks(tmp_path, "fleet")
    (source.journal("dev").root).mkdir(parents=True)
    (source.journal("dev").root / "run.json").write_text("{}")
    (source.root / "journal.jsonl").write_text("{}\n")

    source.reset()

    assert not source.journal("dev").root.exists() and (source.root / "journal.jsonl").exists()


def test_a_kubernetes_fleet_checks_each_stack_as_meshlift_upgrade_does_before_anything_changes(tmp_path, monkeypatch):
    from rollout.errors import PrerequisiteMissing, UsageError
    from rollout.fleet.model import parse_fleet
    from rollout.fleet.prepare import prepare
    from tests.rollout.doubles import FakeCluster

    (tmp_path / "stacks").mkdir()
    for stack in ("dev", "prod"):
        config = {**mesh_config(), "kubernetes:context": f"kind-{stack}"}
        (tmp_path / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    clusters = {"kind-dev": FakeCluster(), "kind-prod": FakeCluster()}
    clusters["kind-prod"].namespace_list = [{"metadata": {"name": "shop"}}]  # exists; the stack would create it
    monkeypatch.setattr("rollout.preflight.live_reader",
                        lambda config, **_: clusters[config["kubernetes:context"]])
    prerequisites = []

    def check_cluster_prerequisites(project_dir, config):
        prerequisites.append(config["kubernetes:context"])
        if config["kubernetes:context"] == "kind-dev":
            raise PrerequisiteMissing("cannot start: the Pulumi CLI (`pulumi`) is not on PATH")

    monkeypatch.setattr("rollout.prerequisites.check_cluster_prerequisites", check_cluster_prerequisites)
    fleet = parse_fleet({"rings": [{"name": "dev", "stacks": ["dev"]}, {"name": "prod", "stacks": ["prod"]}]},
                        label="fleet.yaml")
    source = KubernetesStacks(tmp_path, "fleet")

    with pytest.raises(UsageError) as raised:
        prepare(fleet, source, "1.40.0")

    assert prerequisites == ["kind-dev", "kind-prod"]
    assert raised.value.details == (
        "stacks/Pulumi.dev.yaml: cannot start: the Pulumi CLI (`pulumi`) is not on PATH",
        "stacks/Pulumi.prod.yaml: meshlift:namespaces[0].create: namespace 'shop' already exists and was not "
        "created by meshlift: with create: true the stack would take it over, with everything in it. Set "
        "`create: false` to enrol it by patching its labels (meshlift then never owns or deletes it)",
    )
    # A plan reads no cluster, as `meshlift plan` never refuses on what it finds there.
    assert [stack.name for stack in prepare(fleet, source, "1.40.0", preflight=False)] == ["dev", "prod"]
