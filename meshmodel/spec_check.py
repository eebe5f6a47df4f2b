"""Judging a whole stack config in one pass: every problem, not the first one.

`load_spec(config)` is the one way a stack's config becomes a `MeshSpec`, and
`error_reason` the one wording of a config error (stack configs and fleet files).

pydantic stops at the field level: one type error means no `MeshSpec`, so the
cross-field rules (`meshmodel.validation`) never run, and whatever sits under a
misspelled key is never looked at. This module validates in rounds instead:

- a misspelled key is reported, then its value is moved to the key it was
  probably meant to be (when that one is not set) and judged there, so a typo
  under a typo is reported in the same run (under the key as written);
- a field with a type error is reported, then dropped so its default applies,
  and validation runs again; when every bad field has a default, a `MeshSpec`
  results and the cross-field rules run on it, except on the objects whose
  fields were replaced by defaults (a rule there would judge a value nobody wrote);
- a bad required field (or a bad list item) cannot be replaced: the type errors
  are reported, and the cross-field rules wait for the next run.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from meshmodel.spec import CONFIG_NAMESPACE, MeshSpec, Problem, SpecError, key_path
from meshmodel.stackfile import shorten
from meshmodel.validation import check_references

MAX_ROUNDS = 8
Loc = tuple[str | int, ...]


def load_spec(config: Mapping[str, Any]) -> MeshSpec:
    """Validate a stack's config (keys `meshlift:<key>`; other namespaces ignored).

    Every problem is reported at once: unknown keys (and what is wrong under a
    misspelled key), type errors, and the cross-field rules as far as they can be
    judged around the type errors (below).
    """
    raw = {str(key).partition(":")[2]: _decode(value) for key, value in config.items()
           if str(key).partition(":")[0] == CONFIG_NAMESPACE}
    return check_config(raw)


def _decode(value: Any) -> Any:
    # Pulumi hands structured config to the program as JSON text.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value



def check_config(raw: dict[str, Any]) -> MeshSpec:
    """`raw` is the `meshlift:` namespace with the prefix removed; SpecError lists every problem."""
    data = {key: _copy(value) for key, value in raw.items()}
    problems: list[Problem] = []
    renamed: dict[Loc, Loc] = {}  # where a value was moved -> where the user wrote it
    defaulted: list[Loc] = []  # objects in which a bad field was replaced by its default
    spec: MeshSpec | None = None
    top_fields = {field.alias or name for name, field in MeshSpec.model_fields.items()}
    for key in [key for key in data if key not in top_fields]:
        suggestion = _closest(key, top_fields)
        problems.append(Problem(key_path(key), "unknown key" + _suggest(key, known_keys(MeshSpec))))
        value = data.pop(key)
        if suggestion and suggestion not in data and suggestion not in raw:
            data[suggestion] = value
            renamed[(suggestion,)] = (key,)
    problems += declared_workload_problems(data)
    for _ in range(MAX_ROUNDS):
        try:
            spec = MeshSpec.model_validate(data)
            break
        except ValidationError as error:
            if not _repair(error, data, problems, renamed, defaulted):
                break
    if spec is not None:
        objects = [key_path(*_as_written(loc, renamed)) for loc in defaulted]
        moved = [(key_path(*new), key_path(*old)) for new, old in renamed.items()]
        for problem in check_references(spec):
            key = next((old + problem.key[len(new):] for new, old in moved if _under(problem.key, new)), problem.key)
            if not any(_under(key, obj) for obj in objects):
                problems.append(Problem(key, problem.reason))
    if problems or spec is None:
        raise SpecError(problems)
    return spec


def _repair(error: ValidationError, data: dict[str, Any], problems: list[Problem],
            renamed: dict[Loc, Loc], defaulted: list[Loc]) -> bool:
    """Report this round's errors and fix what can be fixed; False if another round is pointless."""
    repairable = True
    for item in error.errors(include_url=False):
        loc: Loc = tuple(item["loc"])
        shown = _as_written(loc, renamed)
        if item["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            fields = _fields(model) if model else set()
            problems.append(Problem(key_path(*shown), "unknown key" + _suggest(
                str(loc[-1]), fields or known_keys(MeshSpec))))
            parent = _node_at(data, loc[:-1])
            if not isinstance(parent, dict) or loc[-1] not in parent:
                repairable = False
                continue
            value = parent.pop(loc[-1])
            suggestion = _closest(str(loc[-1]), fields)
            if suggestion and suggestion not in parent:
                parent[suggestion] = value
                renamed[loc[:-1] + (suggestion,)] = shown
            continue
        problems.append(Problem(key_path(*shown) if shown else CONFIG_NAMESPACE, error_reason(item)))
        if _drop_for_default(data, loc):
            defaulted.append(loc[:-1])
        else:
            repairable = False
    return repairable


def error_reason(item: Mapping[str, Any], known: set[str] | frozenset[str] = frozenset()) -> str:
    """One pydantic error item in words; an unknown key gets a 'did you mean' from `known`.

    The one wording of a config error, for stack configs and fleet files alike.
    """
    if item["type"] == "extra_forbidden":
        return "unknown key" + _suggest(str(item["loc"][-1]), set(known))
    if item["type"] == "missing":
        return "required key is missing"
    reason = str(item["msg"]).removeprefix("Value error, ")
    if "input" in item and not isinstance(item["input"], (dict, list)):
        value = item["input"]
        # Validators quote the value themselves: keep a long one to its first characters.
        quoted = next((q for q in (repr(value), repr(str(value))) if q in reason), None)
        if quoted is not None:
            reason = reason.replace(quoted, shorten(value) if quoted == repr(value) else shorten(str(value)))
        else:
            reason += f" (got {shorten(value)})"
    return reason


def known_keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every config key spelling anywhere in `model`'s tree, for error_reason's 'did you mean'."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        for arg in _model_args(field.annotation):
            keys |= known_keys(arg, seen)
    return keys


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _model_args(arg)
    return found


def _suggest(word: str, candidates: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


# Keys of the workload model meshlift used to declare (and own) itself.
DECLARED_WORKLOAD_KEYS = ("image", "port", "replicas", "labels")


def declared_workload_problems(raw: dict[str, Any]) -> list[Problem]:
    """A migration error per key of a declared workload; the keys are dropped so the
    rest of the config is still checked in the same run."""
    problems = []
    namespaces = raw.get("namespaces")
    if isinstance(namespaces, list):
        namespaces = raw["namespaces"] = copy.deepcopy(namespaces)  # never change the caller's config
    for n_index, namespace in enumerate(namespaces if isinstance(namespaces, list) else []):
        workloads = namespace.get("workloads") if isinstance(namespace, dict) else None
        for w_index, workload in enumerate(workloads if isinstance(workloads, list) else []):
            if not isinstance(workload, dict):
                continue
            for key in DECLARED_WORKLOAD_KEYS:
                if key in workload:
                    workload.pop(key)
                    problems.append(Problem(
                        key_path("namespaces", n_index, "workloads", w_index, key),
                        "workloads are no longer declared: meshlift restarts the Deployments, StatefulSets "
                        "and DaemonSets that already run in the namespace and never sets their image, port, "
                        "replicas or labels; remove this key and keep only name, kind, canary, "
                        "canaryReplicas and wave (see docs/workloads.md, \"Migrating\")",
                    ))
    return problems


def _drop_for_default(data: dict[str, Any], loc: Loc) -> bool:
    """Remove a bad field that has a default; False when nothing could stand in for it."""
    if not loc or not isinstance(loc[-1], str):
        return False
    model = _model_at(loc[:-1])
    parent = _node_at(data, loc[:-1])
    if model is None or not isinstance(parent, dict) or loc[-1] not in parent:
        return False
    field = next((f for name, f in model.model_fields.items() if (f.alias or name) == loc[-1]), None)
    if field is None or field.is_required():
        return False
    del parent[loc[-1]]
    return True


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validates the object at `loc` (None under free-form dicts)."""
    model: type[BaseModel] = MeshSpec
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            if annotation is None:
                return None
            continue  # a list item: the list's model, already in `annotation`
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            return None
        annotation = field.annotation
        models = _model_args(annotation)
        if not models:
            return None
        model = models[0]
    return model


def _node_at(data: Any, loc: Loc) -> Any:
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _as_written(loc: Loc, renamed: dict[Loc, Loc]) -> Loc:
    for length in range(len(loc), 0, -1):
        if loc[:length] in renamed:
            return renamed[loc[:length]] + loc[length:]
    return loc


def _fields(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _closest(word: str, candidates: set[str]) -> str | None:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.7)
    return close[0] if close else None


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((prefix + ".", prefix + "["))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
