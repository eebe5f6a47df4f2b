"""Istio's charts are stamped the way a release is, and nothing else in them changes."""

from __future__ import annotations

import tarfile
import urllib.request

import yaml

from localcluster import charts

VALUES = """\
_internal_defaults_do_not_set:
  # Default hub for Istio images.
  global:
    hub: registry.istio.io/testing
    # Default tag for Istio images.
    tag: latest
    other: latest-but-not-a-tag
"""


def test_values_get_the_release_hub_and_tag_and_keep_their_comments() -> None:
    stamped = charts.stamp_values_yaml(VALUES, "1.31.0")
    assert "    hub: docker.io/istio\n" in stamped and "    tag: 1.31.0\n" in stamped
    assert "# Default tag for Istio images." in stamped
    assert "other: latest-but-not-a-tag" in stamped


def test_chart_yaml_gets_the_release_version() -> None:
    stamped = yaml.safe_load(charts.stamp_chart_yaml("apiVersion: v2\nname: base\nversion: 1.0.0\nappVersion: 1.0.0\n", "1.30.3"))
    assert stamped == {"apiVersion": "v2", "name": "base", "version": "1.30.3", "appVersion": "1.30.3"}


def test_the_repository_serves_an_index_and_identical_archives(tmp_path) -> None:
    with charts.serve(tmp_path / "a", ["1.31.0"]) as first, charts.serve(tmp_path / "b", ["1.31.0"]) as second:
        index = yaml.safe_load(urllib.request.urlopen(f"{first.url}/index.yaml", timeout=10).read())
        assert sorted(index["entries"]) == ["base", "gateway", "istiod"]
        entry = index["entries"]["istiod"][0]
        assert entry["version"] == entry["appVersion"] == "1.31.0"
        archive = urllib.request.urlopen(entry["urls"][0], timeout=10).read()
        assert len(archive) > 10_000
        # The same snapshot packages to the same bytes: digests are stable from run to run.
        assert [c.digest for c in first.charts] == [c.digest for c in second.charts]
    with tarfile.open(tmp_path / "a" / "istiod-1.31.0.tgz") as tar:
        values = tar.extractfile("istiod/values.yaml").read().decode()
    assert "tag: 1.31.0" in values and "hub: registry.istio.io/testing" not in values
