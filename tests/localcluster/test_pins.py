"""The pin file and the wrapper modules say the same thing; the cache key follows both."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from localcluster.toolchain import WRAPPERS_DIR, cache_key, load_pins

TOOLS, CHARTS = load_pins()


def _requires(go_mod: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)", go_mod, flags=re.M))


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_wrapper_requires_exactly_the_pinned_version(name: str) -> None:
    tool = TOOLS[name]
    go_mod = (tool.wrapper / "go.mod").read_text()
    assert _requires(go_mod).get(tool.module) == tool.version, f"{tool.wrapper}/go.mod"
    assert (tool.wrapper / "go.sum").read_text().strip(), "the wrapper's go.sum is the lock of its whole graph"


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_package_built_is_a_tool_or_the_wrappers_own_main(name: str) -> None:
    tool = TOOLS[name]
    declared = set(re.findall(r"^\s*(?:tool\s+)?(\S+/\S+)\s*$", (tool.wrapper / "go.mod").read_text(), flags=re.M))
    for package in tool.packages:
        if package == ".":
            assert "package main" in (tool.wrapper / "main.go").read_text()
        else:
            assert package in declared, f"{package} is not a `tool` of {tool.wrapper}/go.mod"


def test_no_wrapper_is_left_without_a_pin() -> None:
    assert {p.name for p in WRAPPERS_DIR.iterdir() if p.is_dir()} == set(TOOLS)


def test_the_charts_are_pinned_for_the_releases_the_tools_stamp() -> None:
    istiod_releases = {tool.release for name, tool in TOOLS.items() if name.startswith("istiod-")}
    assert istiod_releases == set(CHARTS)
    for release, chart in CHARTS.items():
        istiod = next(t for t in TOOLS.values() if t.release == release and t.name.startswith("istiod-"))
        assert istiod.version == chart.version, "istiod and its charts come from the same snapshot"


def test_the_cache_key_changes_with_the_pin_and_the_go_version() -> None:
    tool = TOOLS["kwok"]
    key = cache_key(tool, "go1.26.8")
    assert key == cache_key(tool, "go1.26.8")
    assert key != cache_key(tool, "go1.26.9")
    assert key != cache_key(replace(tool, ldflags=("-X a.b=c",)), "go1.26.8")


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_tool_that_renames_binaries_names_every_package(name: str) -> None:
    tool = TOOLS[name]
    assert not tool.binary_names or set(tool.binary_names) == set(tool.packages), (
        "renamed binaries are built one package per `go build -o FILE`: name each package's binary"
    )


def _replaces(go_mod: str) -> dict[str, str]:
    block = re.search(r"^replace \((.*?)^\)", go_mod, flags=re.M | re.S)
    return dict(re.findall(r"^\s*(\S+) => \S+ (v\S+)", block.group(1), flags=re.M)) if block else {}


def test_istioctl_is_built_from_its_istiods_snapshot_with_every_shared_module_at_the_same_version() -> None:
    # Same code as the istiod it reads, and the Go build cache reuses what that istiod's build compiled.
    istioctl = TOOLS["istioctl-1.30"]
    istiod = next(t for name, t in TOOLS.items() if name.startswith("istiod-") and t.release == istioctl.release)
    assert (istioctl.module, istioctl.version, istioctl.ldflags) == (istiod.module, istiod.version, istiod.ldflags)
    ours, theirs = ((t.wrapper / "go.mod").read_text() for t in (istioctl, istiod))
    shared = _requires(theirs)
    assert {m: v for m, v in _requires(ours).items() if m in shared} == shared
    assert _replaces(ours) == _replaces(theirs)
