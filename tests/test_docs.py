"""Every command shown in the project's Markdown pages runs as shown, and every link resolves.

The docs check reads each fenced block of every Markdown page of the project
(README.md, docs/*.md, checks/README.md, bench/RESULTS.md...; new pages are picked
up by themselves) and finds the commands in it:

- in a ```sh (or shell/bash/console) block, every line that is not a comment;
- in any block, a line starting with `$ ` (a transcript: what follows it, up to
  the next `$ `, is the output it shows).

Each `meshlift ...` and `make ...` command runs in a copy of the project
(`MESHLIFT_PROJECT_DIR`), in document order, and must end with the exit code the
docs state (a trailing `# ... exit N` comment, a transcript's `$ echo $?`, else 0),
print no traceback, and, for a transcript, print every line it shows again: run
ids, timings, ports, clock times and the project's path aside (`VOLATILE`), and a
line `...` stands for lines left out. Stack files the docs show
live in docs/examples/ and are copied into the project's stacks/ (so the docs' own
`cp docs/examples/<file> stacks/` is checked for its source only). `make test` is not
run (it is this suite).

Every relative link (`[text](page.md#anchor)`) must name a file that exists and,
with an anchor, a heading of that page.

A block that needs what the suite cannot provide (a Kubernetes cluster, the Pulumi
CLI, a quarter of an hour) carries `<!-- not-run: why -->` on the line before its
fence. Any other command the check cannot run (not meshlift or make, a placeholder
in capitals, an unlabelled fence with commands) fails the check, so nothing can
rot unseen.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p for p in ROOT.rglob("*.md")
               if not any(part.startswith(".") or part in ("tests", "node_modules") for part in p.relative_to(ROOT).parts))
COPY_EXAMPLE = re.compile(r"^cp (docs/examples/[\w.-]+) stacks/$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
SHELL_FENCES = {"sh", "shell", "bash", "console"}
RUNNABLE = ("meshlift", "make")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
PLACEHOLDER = re.compile(r"(?<![\w-])(?:[A-Z][A-Z_]{2,}|<[a-z-]+>|\.\.\.)(?![\w-])")
FENCE = re.compile(r"^```(\S*)\s*$")
TIMEOUT_S = 240
# Rehearsals in the docs check run with short gates (their shape, not their length, is checked).
FAST_GATES = {"window": "6s", "interval": "250ms", "consecutivePasses": 3}


@dataclass
class Command:
    page: str
    line: int
    text: str
    exit_code: int = 0
    output: list[str] = field(default_factory=list)  # a transcript's shown output
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def commands_of(path: Path) -> list[Command]:
    found: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        language, start = match.group(1), index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        marker = NOT_RUN.search(lines[start - 1]) if start else None
        body = lines[start + 1:end]
        found += _block_commands(str(path.relative_to(ROOT)), start + 2, language,
                                 body, marker.group(1) if marker else None)
        index = end + 1
    return found


def _block_commands(page: str, first_line: int, language: str, body: list[str], not_run: str | None) -> list[Command]:
    commands: list[Command] = []
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if line.startswith("$ "):
            if line.strip() == "$ echo $?":
                if commands and offset + 1 < len(body):
                    commands[-1].exit_code = int(body[offset + 1].strip())
                continue
            commands.append(Command(page, first_line + offset, line[2:].strip(), not_run=not_run))
        elif commands and line and not line.startswith("$") and language not in SHELL_FENCES:
            if not (offset and body[offset - 1].strip() == "$ echo $?"):
                commands[-1].output.append(line)
        elif language in SHELL_FENCES and line.strip() and not line.lstrip().startswith("#"):
            text, _, comment = line.partition("  #")
            code = re.search(r"\bexit (\d+)", comment)
            commands.append(Command(page, first_line + offset, text.strip(), int(code.group(1)) if code else 0,
                                    not_run=not_run))
    return commands


ALL = [command for page in PAGES for command in commands_of(page)]


def test_the_docs_show_commands_and_the_check_finds_every_page():
    assert len(PAGES) >= 7, [p.name for p in PAGES]
    assert {"README.md", "docs/cli.md", "checks/README.md", "bench/RESULTS.md"} <= \
        {str(p.relative_to(ROOT)) for p in PAGES}
    assert any(c.text == "make rehearse" for c in ALL)
    assert all(c.not_run is None or c.not_run.strip() for c in ALL)


def test_every_unmarked_command_is_one_the_check_can_run():
    unrunnable = [f"{c.where}: {c.text}" for c in ALL if c.not_run is None and not _runnable(c)]
    assert not unrunnable, "mark these blocks <!-- not-run: why --> or make them runnable:\n" + "\n".join(unrunnable)


def test_no_unlabelled_fence_hides_a_command():
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        inside = False
        for number, line in enumerate(lines, 1):
            match = FENCE.match(line)
            if match:
                inside = not inside
                if inside and match.group(1) == "":
                    block = lines[number:number + 200]
                    block = block[:next(i for i, text in enumerate(block) if text.startswith("```"))]
                    shown = [text for text in block if text.startswith(("meshlift ", "make ", "pulumi ", "$ "))]
                    assert not shown, f"{page.name}:{number}: label the fence (sh, or text for output): {shown}"


def test_docs_name_no_internal_process():
    banned = re.compile(r"\bissue \d|\bsessions?\b|other test runs|sharing the machine", re.IGNORECASE)
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            assert not banned.search(line), f"{page.name}:{number}: {line.strip()}"


def test_check_hint_anchors_exist_in_docs_checks_md():
    from checks.catalog import CATALOG, HINT_BASE

    headings = {_anchor(line) for line in (ROOT / "docs" / "checks.md").read_text().splitlines()
                if line.startswith("#")}
    assert HINT_BASE.endswith("docs/checks.md#")
    missing = [c.id for c in CATALOG if c.id not in headings]
    assert not missing and {"endpoint-unreachable", "endpoint-not-envoy"} <= headings, missing


def test_every_relative_link_names_a_file_and_heading_that_exist():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        inside_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        for target in LINK.findall(inside_code):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no heading with this anchor")
    assert not broken, "\n".join(broken)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_anchor(line) for line in text.splitlines() if line.startswith("#")}


def _anchor(heading: str) -> str:
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def _runnable(command: Command) -> bool:
    if COPY_EXAMPLE.match(command.text):
        return True
    words = command.text.split()
    return bool(words) and words[0] in RUNNABLE and not PLACEHOLDER.search(command.text) and "|" not in command.text


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's stacks, where the docs' commands keep their state."""
    root = tmp_path_factory.mktemp("docs-project")
    shutil.copytree(ROOT / "stacks", root / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    for example in (ROOT / "docs" / "examples").glob("Pulumi.*.yaml"):  # stacks the docs show
        shutil.copy(example, root / "stacks" / example.name)
    return root


RUN = [c for c in ALL if c.not_run is None and _runnable(c) and c.text != "make test"]


def _unique(commands: list[Command]) -> list[Command]:
    seen: dict[str, Command] = {}
    for command in commands:
        seen.setdefault(command.text, command)
    return list(seen.values())


@pytest.mark.envoy
@pytest.mark.parametrize("command", _unique(RUN), ids=lambda c: f"{c.where} {c.text}")
def test_the_command_runs_as_shown(command: Command, project: Path):
    shown = [c for c in RUN if c.text == command.text]
    copied = COPY_EXAMPLE.match(command.text)
    if copied:  # the fixture copied every example into the project's stacks/ already
        assert (ROOT / copied.group(1)).is_file(), f"{command.where}: {copied.group(1)} does not exist"
        return
    env = {**os.environ, "MESHLIFT_PROJECT_DIR": str(project), "MESHLIFT_REHEARSAL_GATES": json.dumps(FAST_GATES),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(shlex.split(command.text), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, f"{command.where}: {command.text}\n{output[-3000:]}"
    for place in shown:
        assert done.returncode == place.exit_code, \
            f"{place.where}: `{command.text}` exited {done.returncode}, the docs say {place.exit_code}\n{output[-3000:]}"
        if place.output:
            key = key_line(place.output[-1])
            assert key in " ".join(output.split()), \
                f"{place.where}: `{command.text}` did not print {key!r}\n{output[-3000:]}"
            stale = stale_lines(place.output, output)
            assert not stale, (f"{place.where}: the transcript of `{command.text}` shows lines the command no "
                               "longer prints (run it again and paste its output):\n" + "\n".join(stale)
                               + f"\n--- it prints now:\n{output[-3000:]}")


# What differs from one run to the next, and is not what a transcript is about.
VOLATILE = [
    (re.compile(r"\S*?(?=\bstacks/)"), ""),  # the project's location
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ][\d:.]+(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<id>"),  # run ids
    (re.compile(r"\b\d+(\.\d+)?(ms|s)\b"), "<n>s"),  # durations and timings
    (re.compile(r"(127\.0\.0\.1:\d+)/[a-z_]+\b"), r"\1/<read>"),  # which admin read failed first
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\bpid \d+"), "pid <n>"),
    (re.compile(r"\b\d+(\.\d+)? (days|MiB|KiB)\b"), "<n> \\2"),
    (re.compile(r"\bsample \d+"), "sample <n>"),
    (re.compile(r"\b\d+ consecutive passing samples"), "<n> consecutive passing samples"),
]
ELIDED = {"...", "…"}


def normalised(line: str) -> str:
    text = " ".join(line.split())
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def stale_lines(shown: list[str], printed: str) -> list[str]:
    """The transcript's lines the command did not print this time (run ids, timings and paths aside)."""
    now = {normalised(line) for line in printed.splitlines()}
    return [line for line in shown if line.strip() not in ELIDED and normalised(line) not in now]


def key_line(shown: str) -> str:
    """What of a transcript's last line must be printed again: no file path, no timing."""
    line = re.sub(r"^\S*stacks/\S+?:\d+: ", "", shown.strip())
    return " ".join(line.split(" (", 1)[0].split())
