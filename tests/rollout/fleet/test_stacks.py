"""Stack sources: where each stack's config, journal and platform come from."""

from __future__ import annotations

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
