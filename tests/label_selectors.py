"""Kubernetes label-selector semantics (matchLabels, matchExpressions), for tests that judge selectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `selector` (the API's JSON shape) selects an object with `labels`, as the API server decides."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selects_text(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether a label selector in the API's query syntax (`app=web,tier in (a,b),!canary`) selects `labels`."""
    return selects(parse_selector(selector), labels)


def parse_selector(selector: str) -> dict[str, Any]:
    """The query syntax as the JSON shape: `k=v` to matchLabels, the rest to matchExpressions."""
    import re

    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for part in re.split(r",(?![^(]*\))", selector.strip()) if selector.strip() else []:
        part = part.strip()
        if found := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part):
            key, operator, values = found.groups()
            expressions.append({"key": key, "operator": "In" if operator == "in" else "NotIn",
                                "values": [v.strip() for v in values.split(",") if v.strip()]})
        elif part.startswith("!"):
            expressions.append({"key": part[1:], "operator": "DoesNotExist"})
        elif "!=" in part:
            key, value = part.split("!=", 1)
            expressions.append({"key": key, "operator": "NotIn", "values": [value]})
        elif "=" in part:
            key, value = part.split("=", 1)
            match_labels[key.rstrip("=")] = value.lstrip("=")
        else:
            expressions.append({"key": part, "operator": "Exists"})
    return {"matchLabels": match_labels, "matchExpressions": expressions}
