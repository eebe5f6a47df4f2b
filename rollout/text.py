"""Values as people read them in text output (JSON output carries JSON values instead)."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> str:
    """No Python reprs (`True`, `None`, `{'to': ...}`) in text: yes/no, -, "key value" pairs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{key} {plain(item)}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(item) for item in value) or "-"
    return str(value)
