"""A corpus of malformed and hostile stack files and command lines: each exits 2, fast, in bounded memory.

Every case runs through the real entry point (`rollout.entry.main`) in a subprocess
limited to `MEMORY_LIMIT` of address space; a case that tried to expand a billion
laughs or recursed on a deep document would die there (MemoryError/RecursionError
is a bug: exit 70), not pass. Each case must answer within `TIME_LIMIT_S`, print
one paragraph naming the file (and line, where there is one), and no traceback.
"""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.rollout.doubles import mesh_config

CORPUS = Path(__file__).parent / "corpus"
MEMORY_LIMIT = 768 * 1024 * 1024
TIME_LIMIT_S = 3.0  # per case, under a loaded 2-core machine; a clean refusal takes milliseconds
STACK = "corpus"

# Hostile inputs too big to keep in the repository, made at test time.
GENERATED = {
    "huge-value.yaml": "config:\n  meshlift:chartRepository: \"" + "A" * (2 * 1024 * 1024) + "\"\n",
    "deep-flow-nesting.yaml": "config:\n  meshlift:tags: " + "[" * 200_000 + "]" * 200_000 + "\n",
    "long-line-type-error.yaml": "config:\n  meshlift:revisions:\n    - version: 1.30.3\n"
                                 "  meshlift:gates:\n    window: \"" + "x" * 50_000 + "\"\n",
}

# What each message must name beyond the file (a line number where YAML gives one).
EXPECTED = {
    "duplicate-key.yaml": ":8: duplicate key 'stage' (first at line 7)",
    "duplicate-top-key.yaml": ":4: duplicate key 'meshlift:revisions' (first at line 2)",
    "tab-indent.yaml": ":2: is not valid YAML",
    "non-utf8.yaml": ":3: is not UTF-8 text",
    "python-tag.yaml": ":4: the tag '!!python/object/apply:os.system' is not allowed",
    "custom-tag.yaml": ":4: the tag '!Ref' is not allowed",
    "billion-laughs.yaml": "expands to more than 100,000 values",
    "deep-flow-nesting.yaml": ":2: nests deeper than 64 levels",
    "huge-value.yaml": "is larger than 1024 KiB",
    "recursive-alias.yaml": "an alias refers to the anchor that contains it",
    "unknown-and-type-errors.yaml": "meshlift:gatse.windw: unknown key (did you mean 'window'?)",
    "long-line-type-error.yaml": "(50002 characters)",
    "replicas-past-int32.yaml": ":8: meshlift:gateways[0].replicas: Input should be less than or equal to 2147483647",
    "label-key-kubernetes-refuses.yaml": ":7: meshlift:namespaces[0].labels: 'team name/..': the prefix",
    "infinite-window.yaml": "meshlift:gates.window: must be at most 30 days",
}


def _stack_cases() -> list[tuple[str, str, bytes]]:
    cases = [(p.name, p.name, p.read_bytes()) for p in sorted((CORPUS / "stackfiles").iterdir())]
    return cases + [(name, name, text.encode()) for name, text in GENERATED.items()]


def _command_cases() -> list[tuple[str, list[str]]]:
    lines = (CORPUS / "commandlines.txt").read_text().splitlines()
    return [(line, shlex.split(line.replace("{stack}", STACK))) for line in lines
            if line.strip() and not line.startswith("#")]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run(project: Path, cases: list[tuple[str, list[str]]]) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.rollout.corpus_runner", str(project), json.dumps(cases)],
        capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory,
        cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in results}


def _assert_refused_cleanly(result: dict, case: str) -> None:
    assert result["code"] == 2, f"{case}: exit {result['code']}\n{result['stderr']}"
    assert "Traceback" not in result["stderr"] + result["stdout"], case
    assert result["stderr"].startswith("× "), f"{case}: {result['stderr']!r}"
    assert result["seconds"] < TIME_LIMIT_S, f"{case}: {result['seconds']:.2f}s"
    assert len(result["stderr"]) < 2500, f"{case}: the message echoes too much ({len(result['stderr'])} chars)"


def test_every_malformed_or_hostile_stack_file_exits_2_fast_without_a_traceback(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    cases = []
    for name, label, data in _stack_cases():
        stack = Path(name).stem
        (stacks / f"Pulumi.{stack}.yaml").write_bytes(data)
        cases.append((label, ["validate", "-s", stack]))
    results = _run(tmp_path, cases)
    assert len(results) == len(cases)
    for label, _ in cases:
        result = results[label]
        _assert_refused_cleanly(result, label)
        assert f"Pulumi.{Path(label).stem}.yaml" in result["stderr"], label
        if label in EXPECTED:
            assert EXPECTED[label] in " ".join(result["stderr"].split()), f"{label}: {result['stderr']}"
    assert max(r["peak_kib"] for r in results.values()) < 400 * 1024, "peak memory stays small"


def test_every_malformed_command_line_exits_2_with_one_paragraph(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": mesh_config()}))
    cases = _command_cases()
    results = _run(tmp_path, cases)
    for label, _ in cases:
        _assert_refused_cleanly(results[label], label)
    assert "Did you mean 'validate'?" in results["vaildate"]["stderr"]
    assert "no command given" in results["--bogus"]["stderr"] or "no such option" in results["--bogus"]["stderr"]
    assert "option '--to' requires a value" in results["upgrade -s {stack} --to"]["stderr"]
    assert "not waiting" in results["promote -s {stack}"]["stderr"] or \
        "nothing to approve" in results["promote -s {stack}"]["stderr"]


@pytest.mark.parametrize("args", [["validate", "-s", "corpus", "--json"], ["plan", "-s", "corpus", "--json"]])
def test_json_errors_keep_the_command_schema(tmp_path, args):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.corpus.yaml").write_bytes((CORPUS / "stackfiles" / "duplicate-key.yaml").read_bytes())
    result = _run(tmp_path, [("case", args)])["case"]
    assert result["code"] == 2
    document = json.loads(result["stdout"])
    assert document["schema"] == f"meshlift.{args[0]}/v1" and document["stack"] == "corpus"
    assert "duplicate key 'stage'" in " ".join(document["error"]["details"])
