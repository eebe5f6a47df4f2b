"""Reading `stacks/Pulumi.<env>.yaml` strictly and within fixed bounds.

A stack file decides which stage a rollout is at, so it is read more strictly
than `yaml.safe_load` does:

- duplicate keys are refused (naming both lines) instead of "last one wins",
  which would let one pasted line jump a rollout to another stage;
- only the plain YAML types are accepted (mapping, list, string, number,
  boolean, null); any other tag (`!!python/...`, `!!set`, `!Ref`) is refused;
- the file is read as UTF-8 and at most `MAX_BYTES` of it; nesting deeper than
  `MAX_DEPTH` and documents that expand (through anchors and aliases) to more
  than `MAX_NODES` values are refused before any Python value is built, so a
  hostile file costs linear time and bounded memory;
- every problem names the file and line, and never repeats a value in full.

The parser's event stream is checked first (depth, anchors), then the node
graph is composed (linear in the file's size: an alias is a reference, not a
copy), its expanded size is counted with memoisation, and only then are Python
values built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000

_TAG_PREFIX = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_TAG_PREFIX + name for name in ("str", "int", "float", "bool", "null", "map", "seq")}
_SHOWN = 40  # characters of an offending value or key that a message may quote


class StackFileError(ValueError):
    """The file cannot be read as a stack file; `problems` are `(line, reason)` pairs."""

    def __init__(self, path: str, problems: list[tuple[int | None, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{self.where(line)}: {reason}" for line, reason in problems))

    def where(self, line: int | None) -> str:
        return f"{self.path}:{line}" if line else self.path


@dataclass
class StackDocument:
    """The `config:` mapping of a stack file, and the line each key path starts on."""

    config: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)  # "meshlift:gates.window" -> 12

    def line_of(self, key: str) -> int | None:
        """The line of `key`, or of its nearest enclosing key that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            if cut <= 0:
                return None
            key = key[:cut]
        return None


def shorten(value: object, limit: int = _SHOWN) -> str:
    """`repr` of a value, cut to `limit` characters (a message never echoes a value in full)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def read_stack_file(path: str) -> StackDocument:
    """Read and check a stack file; StackFileError names every problem with its line."""
    text = _read_text(path)
    node = _compose(path, text)
    if node is None:
        return StackDocument({})
    _check_expansion(path, node)
    builder = _Builder(path)
    document = builder.build(node, "")
    if builder.problems:
        raise StackFileError(path, builder.problems)
    if not isinstance(document, dict):
        raise StackFileError(path, [(_line(node), "the file is not a YAML mapping (expected a 'config:' key)")])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(path, [(builder.lines.get("config"), "'config' is not a mapping")])
    lines = {key.removeprefix("config."): line for key, line in builder.lines.items() if key.startswith("config.")}
    return StackDocument(config, lines)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise StackFileError(path, [(None, f"cannot be read: {error.strerror or error}")]) from None
    if len(data) > MAX_BYTES:
        raise StackFileError(path, [(None, f"is larger than {MAX_BYTES // 1024} KiB; a stack file is a few KiB")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise StackFileError(path, [(line, f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                                           f"{error.start}); save the file as UTF-8")]) from None


def _compose(path: str, text: str) -> yaml.Node | None:
    depth = 0
    try:
        # The event stream first: the parser keeps its own stack, so a hostile depth
        # is caught here before the (recursive) composer sees it.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise StackFileError(path, [(event.start_mark.line + 1,
                                                 f"nests deeper than {MAX_DEPTH} levels")])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise StackFileError(path, [_yaml_problem(error)]) from None
    except yaml.YAMLError as error:
        raise StackFileError(path, [(None, f"is not valid YAML: {_first_line(str(error))}")]) from None


def _yaml_problem(error: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    problem = ": ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
    if "'\\t'" in problem:
        problem += " (a tab: YAML indents with spaces only)"
    if mark is not None and mark.column is not None:
        problem += f" (column {mark.column + 1})"
    return line, f"is not valid YAML: {problem}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "invalid YAML"


def _check_expansion(path: str, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it past MAX_NODES (memoised: linear time)."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk: aliases may make the graph deep or cyclic.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    in_progress: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise StackFileError(path, [(_line(node), f"expands to more than {MAX_NODES:,} values "
                                             "(anchors and aliases); refused as hostile or broken")])
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise StackFileError(path, [(_line(node), "an alias refers to the anchor that contains it")])
        in_progress.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in in_progress:
                raise StackFileError(path, [(_line(child), "an alias refers to the anchor that contains it")])
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Builder:
    """Python values from a checked node graph, collecting every problem on the way."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[tuple[int | None, str]] = []
        self.lines: dict[str, int] = {}
        self.scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def build(self, node: yaml.Node, where: str) -> Any:
        if node.tag == _TAG_PREFIX + "timestamp" and isinstance(node, yaml.ScalarNode):
            return node.value  # a date-like scalar (2026-01-15) stays the text it is, as Pulumi reads it
        if node.tag not in _PLAIN_TAGS:
            self.problems.append((_line(node), f"the tag {shorten(node.tag.replace(_TAG_PREFIX, '!!'))} is not "
                                               "allowed in a stack file (plain mappings, lists and scalars only)"))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, where)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{where}[{index}]") for index, item in enumerate(node.value)]
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            self.problems.append((_line(node), f"cannot read the value {shorten(node.value)}"))
            return None

    def _mapping(self, node: yaml.MappingNode, where: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG_PREFIX + "merge":
                self.problems.append((_line(key_node), "merge keys ('<<') are not supported in a stack file"))
                continue
            key = self.build(key_node, where)
            if isinstance(key, (dict, list)) or key is None and key_node.tag != _TAG_PREFIX + "null":
                self.problems.append((_line(key_node), "a mapping key must be a plain scalar"))
                continue
            if key in first_line:
                self.problems.append((_line(key_node), f"duplicate key {shorten(key)} (first at line "
                                                       f"{first_line[key]}); remove one of them"))
                continue
            first_line[key] = _line(key_node)
            child = f"{where}.{key}" if where else str(key)
            self.lines[child] = _line(key_node)
            result[key] = self.build(value_node, child)
        return result
