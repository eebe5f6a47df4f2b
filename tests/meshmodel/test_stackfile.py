"""Strict, bounded reading of stack files, and every problem of a config in one pass."""

from __future__ import annotations

import pytest

from meshmodel.spec import SpecError
from meshmodel.spec_check import load_spec
from meshmodel.stackfile import MAX_NODES, StackFileError, read_stack_file
from tests.components.configs import minimal


def _read(tmp_path, text: str | bytes):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_stack_file(str(path))


def _problems(tmp_path, text) -> list[tuple[int | None, str]]:
    with pytest.raises(StackFileError) as caught:
        _read(tmp_path, text)
    return caught.value.problems


def test_a_good_file_reads_with_the_line_of_every_key(tmp_path):
    document = _read(tmp_path, "config:\n  meshlift:gates:\n    window: 5s\n  meshlift:namespaces:\n"
                               "    - name: shop\n      wave: 2\n")
    assert document.config == {"meshlift:gates": {"window": "5s"},
                               "meshlift:namespaces": [{"name": "shop", "wave": 2}]}
    assert document.line_of("meshlift:gates.window") == 3
    assert document.line_of("meshlift:namespaces[0].wave") == 6
    assert document.line_of("meshlift:gates.nothing.deeper") == 2, "falls back to the nearest key"


def test_a_date_like_value_stays_text(tmp_path):
    document = _read(tmp_path, "config:\n  meshlift:namespaces:\n    - name: shop\n      labels: {released: 2026-01-15}\n")
    assert document.config["meshlift:namespaces"][0]["labels"] == {"released": "2026-01-15"}


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    problems = _problems(tmp_path, "config:\n  meshlift:rollout:\n    stage: install\n    to: 1.31.0\n"
                                   "    stage: cleanup\n  meshlift:tags: {}\n  meshlift:tags: {a: b}\n")
    assert problems == [(5, "duplicate key 'stage' (first at line 3); remove one of them"),
                        (7, "duplicate key 'meshlift:tags' (first at line 6); remove one of them")]


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("config:\n\tmeshlift:tags: {}\n", 2, "a tab: YAML indents with spaces only"),
    (b"config:\n  a: \"\xc3\x28\"\n", 2, "is not UTF-8 text (byte 0xc3 at offset 14)"),
    ("config:\n  a: !!python/object/apply:os.system [ls]\n", 2, "the tag '!!python/object/apply:os.system'"),
    ("config:\n  a: !!binary aGVsbG8=\n", 2, "the tag '!!binary' is not allowed"),
    ("config:\n  a: [1, 2\n", 3, "is not valid YAML"),
    ("config: {}\n---\nconfig: {}\n", 2, "expected a single document"),
    ("config:\n  a: &x {b: *x}\n", 2, "an alias refers to the anchor that contains it"),
])
def test_malformed_files_are_refused_with_their_line(tmp_path, text, line, fragment):
    ((found_line, reason),) = _problems(tmp_path, text)
    assert found_line == line and fragment in reason


def test_alias_expansion_is_refused_before_anything_is_built(tmp_path):
    text = "config:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    text += "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    ((_, reason),) = _problems(tmp_path, text)
    assert f"expands to more than {MAX_NODES:,} values" in reason


def test_a_value_is_never_echoed_in_full(tmp_path):
    ((_, reason),) = _problems(tmp_path, "config:\n  a: !!python/name:" + "x" * 10_000 + "\n")
    assert len(reason) < 200 and "characters)" in reason


# ---- one pass -------------------------------------------------------------------------------

def _keys(config) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(config)
    return [str(p) for p in caught.value.problems]


def test_a_type_error_does_not_hide_the_cross_field_problems():
    problems = _keys(minimal(gates={"window": "soon"}, tags={"stable": "1-29-0"}))
    assert any(p.startswith("meshlift:gates.window: 'soon' is not a duration") for p in problems)
    assert any(p.startswith("meshlift:tags.stable: '1-29-0' is not an installed revision") for p in problems)


def test_a_typo_under_a_misspelled_key_is_reported_in_the_same_run():
    problems = _keys({**minimal(), "meshlift:gatse": {"windw": "5s", "interval": "fast"}})
    assert problems[0] == "meshlift:gatse: unknown key (did you mean 'gates'?)"
    assert "meshlift:gatse.windw: unknown key (did you mean 'window'?)" in problems
    assert any(p.startswith("meshlift:gatse.interval: 'fast' is not a duration") for p in problems)


def test_a_nested_misspelled_key_is_judged_as_the_key_it_was_meant_to_be():
    gateway = {"name": "gw", "namespace": "istio-ingress", "revision": "stable", "servce": {"tpye": "Nodeport"}}
    problems = _keys(minimal(gateways=[gateway]))
    assert "meshlift:gateways[0].servce: unknown key (did you mean 'service'?)" in problems
    assert "meshlift:gateways[0].servce.tpye: unknown key (did you mean 'type'?)" in problems


def test_cross_field_rules_do_not_judge_an_object_whose_bad_field_was_defaulted():
    namespaces = [{"name": "shop", "revision": "nope", "wave": "first"}]
    problems = _keys(minimal(namespaces=namespaces))
    assert [p.split(":", 2)[1] for p in problems] == ["namespaces[0].wave"], problems
