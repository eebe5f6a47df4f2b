"""Stats parsing: Envoy JSON, text and Prometheus forms; absent counters; deltas."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from checks import Stats, parse_json_stats, parse_prometheus, parse_text_stats
from checks.stats import stats_filter

FIXTURES = Path(__file__).parent / "fixtures"


def test_json_stats_keep_counters_gauges_and_text_readouts() -> None:
    stats = parse_json_stats((FIXTURES / "stats_healthy.json").read_bytes())
    assert stats.number("cluster.upstream.upstream_rq_completed") == 50
    assert stats.text("listener_manager.lds.version_text") == "1"
    assert stats.number("listener_manager.lds.version_text") == 0  # a string is not a number


def test_json_histograms_and_unknown_entries_are_skipped_not_fatal() -> None:
    doc = {"stats": [
        {"name": "a.count", "value": 3},
        {"histograms": {"supported_quantiles": [0, 50], "computed_quantiles": [{"name": "h", "values": []}]}},
        {"name": "weird", "value": None},
        {"name": "flag", "value": True},
        "junk",
    ]}
    stats = parse_json_stats(json.dumps(doc))
    assert stats.to_dict() == {"a.count": 3}


@pytest.mark.parametrize("payload", ['{"configs": []}', "[]", '{"stats": 3}'])
def test_json_without_a_stats_list_is_rejected(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_json_stats(payload)


def test_absent_counter_reads_as_zero() -> None:
    # Response-code counters do not exist until the first such response.
    stats = parse_json_stats((FIXTURES / "stats_healthy.json").read_bytes())
    assert "cluster.upstream.upstream_rq_5xx" not in stats
    assert stats.number("cluster.upstream.upstream_rq_5xx") == 0


def test_delta_between_samples_and_after_a_restart() -> None:
    earlier = Stats({"c": 100})
    assert Stats({"c": 130}).delta(earlier, "c") == 30
    assert Stats({"c": 7}).delta(earlier, "c") == 7  # counters reset: the proxy restarted
    assert Stats({"c": 7}).delta(None, "c") == 7  # no earlier sample: everything since start
    assert Stats({"new": 4}).delta(Stats({}), "new") == 4  # created between samples


def test_text_stats_tolerate_non_integer_lines() -> None:
    text = (FIXTURES / "stats.txt").read_text()
    assert "No recorded values" in text or "P0(" in text  # the recording really has such lines
    stats = parse_text_stats(text)
    assert stats.number("cluster.upstream.upstream_rq_completed") == 50
    assert stats.text("listener_manager.lds.version_text") == "1"
    assert all(isinstance(v, (int, float, str)) for v in stats.values())
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in stats.values())


def test_text_stats_same_numbers_as_json_for_shared_names() -> None:
    text = parse_text_stats((FIXTURES / "stats.txt").read_text())
    json_stats = parse_json_stats((FIXTURES / "stats_healthy.json").read_bytes())
    shared = set(text) & set(json_stats)
    assert len(shared) > 10
    for name in shared:
        if not name.startswith("server.memory") and "time" not in name and name != "server.uptime":
            assert text[name] == json_stats[name], name


def test_prometheus_parser_agrees_with_prometheus_client_on_real_envoy_output() -> None:
    text = (FIXTURES / "prometheus.txt").read_text()
    # prometheus_client renames counter samples to `<name>_total`; Envoy does not append it.
    ours = [(s.name.removesuffix("_total"), tuple(sorted(s.labels.items())), s.value) for s in parse_prometheus(text)]
    theirs = [
        (s.name.removesuffix("_total"), tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    assert len(ours) > 1000
    assert ours == theirs


def test_prometheus_escapes_timestamps_comments_and_junk() -> None:
    text = "\n".join([
        "# HELP envoy_x a help line with {braces} 1",
        "# TYPE envoy_x counter",
        'envoy_x{a="1",b="q\\"uote",c="back\\\\slash",d="new\\nline"} 3 1700000000000',
        "envoy_y 2",
        'envoy_z{le="+Inf"} +Inf',
        "envoy_nan NaN",
        "this is not a sample",
        'envoy_w{a="brace}inside"} 1',
        "envoy_tab\t5",
        'envoy_spaced{a="1"}   6',
        "",
    ])
    samples = parse_prometheus(text)
    assert [(s.name, s.labels) for s in samples][:3] == [
        ("envoy_x", {"a": "1", "b": 'q"uote', "c": "back\\slash", "d": "new\nline"}),
        ("envoy_y", {}),
        ("envoy_z", {"le": "+Inf"}),
    ]
    assert samples[0].value == 3 and samples[2].value == math.inf and math.isnan(samples[3].value)
    assert samples[4] == ("envoy_w", {"a": "brace}inside"}, 1)
    assert samples[5:] == [("envoy_tab", {}, 5), ("envoy_spaced", {"a": "1"}, 6)]
    assert all(type(s.value) is int for s in samples[5:])  # integers stay exact
    assert len(samples) == 7  # the junk line is skipped


def test_stats_filter_matches_only_the_requested_names() -> None:
    import re

    pattern = re.compile(stats_filter([r"^server\.memory_allocated$", r"\.update_rejected$"]))
    assert pattern.search("server.memory_allocated")
    assert pattern.search("listener_manager.lds.update_rejected")
    assert not pattern.search("server.memory_allocated_max")
    assert not pattern.search("cluster.x.upstream_rq_total")


def test_prometheus_lines_that_only_look_like_samples_are_skipped() -> None:
    text = "\n".join([
        '# HELP envoy_x counts {a="1"} 1',  # a comment ending in a number, with braces
        "# TYPE envoy_x counter",
        'envoy_x{a="1"} 2',
        'envoy_x{a="1"} 3 1700000000000',  # same labels, with a timestamp: the value is 3
        "4",  # a number alone is not a sample
        'envoy_x{a="1" 5',  # unclosed label set
        "envoy_y junk",
        'envoy_x{a="1"} 7',
    ])
    samples = parse_prometheus(text)
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("envoy_x", {"a": "1"}, 2), ("envoy_x", {"a": "1"}, 3), ("envoy_x", {"a": "1"}, 7),
    ]


@pytest.mark.parametrize("enabled", [True, False])
def test_parsers_leave_the_garbage_collector_as_they_found_it(enabled: bool) -> None:
    import gc

    text = (FIXTURES / "prometheus.txt").read_text()
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        parse_prometheus(text)
        assert gc.isenabled() is enabled
        parse_json_stats((FIXTURES / "stats_healthy.json").read_bytes())
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError):
            parse_json_stats("[]")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
