"""The field types every part of the stack config is built from: versions, names, durations.

The lowest layer of the model: `proxy_profile` and `spec` build their models on
`ConfigModel` and these annotated types, and nothing here knows either of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

@dataclass(frozen=True, order=True)
class IstioVersion:
    """A released Istio version such as 1.31.0 (pre-release suffixes allowed)."""

    major: int
    minor: int
    patch: int
    suffix: str = ""

    @classmethod
    def parse(cls, text: str) -> IstioVersion:
        match = _VERSION_RE.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a version like 1.31.0")
        major, minor, patch, suffix = match.groups()
        return cls(int(major), int(minor), int(patch), suffix or "")

    @property
    def revision(self) -> str:
        """Istio's revision name: the version with dots as dashes (1.31.0 -> 1-31-0)."""
        return str(self).replace(".", "-").lower()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.suffix}" if self.suffix else base


def revision_name(version: str) -> str:
    return IstioVersion.parse(version).revision


def _check_version(value: Any) -> str:
    return str(IstioVersion.parse(str(value)))


def check_dns_label(value: Any) -> str:
    text = str(value)
    if len(text) > 63 or not _DNS_LABEL_RE.match(text):
        raise ValueError(
            f"{text!r} is not a valid Kubernetes name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    return text


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as '500ms', '5s', '2m'."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration like 500ms, 5s or 2m")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


Version = Annotated[str, BeforeValidator(_check_version)]
Name = Annotated[str, BeforeValidator(check_dns_label)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigModel(BaseModel):
    """A part of the stack config: unknown keys refused, camelCase keys, immutable once read."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=False,
    )
