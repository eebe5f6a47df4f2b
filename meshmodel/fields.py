"""The field types every part of the stack config is built from: versions, names, durations.

The lowest layer of the model: `proxy_profile` and `spec` build their models on
`ConfigModel` and these annotated types, and nothing here knows either of them.

Every type is bounded by what its consumer accepts: integers by Kubernetes'
int32 fields (replicas, ports, waves) or by int64 (byte counts), names and
label keys and values by the API server's own syntax rules, durations by a
finite ceiling, so a hostile value is refused here (exit 2, with its key path)
instead of failing later inside Pulumi, Kubernetes or an overflowing timer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kubernetes' qualified name (label and annotation keys without their prefix) and label value.
_QUALIFIED_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

INT32_MAX = 2**31 - 1  # Kubernetes' replicas, ports and most counts are int32
INT64_MAX = 2**63 - 1  # byte counts (memory caps) are int64 in Kubernetes and Envoy
MAX_DNS_LABEL = 63
MAX_DNS_SUBDOMAIN = 253
MAX_DURATION_S = 30 * 24 * 3600.0  # 30 days: longer than any gate, wait or soak, and far from timer overflow
MAX_ITEMS = 10_000  # entries of one list or mapping in the stack config (the inventory has its own bound)
MAX_INVENTORY_ITEMS = 20_000  # recorded workloads in one namespace

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
    version = IstioVersion.parse(str(value))
    # The revision names Kubernetes objects (istiod-<rev>) and is a label value (istio.io/rev).
    if len(f"istiod-{version.revision}") > MAX_DNS_LABEL or not _DNS_LABEL_RE.match(version.revision):
        raise ValueError(f"{str(value)!r} gives a revision name Kubernetes refuses: the version with dots "
                         "as dashes must be at most 56 characters and end with a letter or digit")
    return str(version)


def check_dns_label(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_DNS_LABEL or not _DNS_LABEL_RE.match(text):
        raise ValueError(
            f"{text!r} is not a valid Kubernetes name "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit, "
            "at most 63 characters)"
        )
    return text


def _is_qualified_name(text: str) -> bool:
    return 0 < len(text) <= MAX_DNS_LABEL and bool(_QUALIFIED_NAME_RE.match(text))


def label_key_problem(key: str) -> str | None:
    """Why Kubernetes would refuse `key` as a label or annotation key (None: it is valid)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_DNS_SUBDOMAIN or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return (f"{key!r}: the prefix before '/' must be a DNS subdomain "
                "(lowercase letters, digits, '-' and '.', at most 253 characters)")
    if not _is_qualified_name(name):
        return (f"{key!r} is not a valid label key: at most 63 characters of letters, digits, '-', '_' "
                "and '.', starting and ending with a letter or digit, after an optional 'prefix/'")
    return None


def label_value_problem(value: str) -> str | None:
    """Why Kubernetes would refuse `value` as a label value (None: it is valid; empty is valid)."""
    if value == "" or _is_qualified_name(value):
        return None
    return (f"{value!r} is not a valid label value: empty, or at most 63 characters of letters, "
            "digits, '-', '_' and '.', starting and ending with a letter or digit")


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    problems = [p for key, item in value.items()
                for p in (label_key_problem(key), label_value_problem(item)) if p]
    if problems:
        raise ValueError("; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    return value


def _check_annotation_keys(value: dict[str, str]) -> dict[str, str]:
    problems = [p for key in value if (p := label_key_problem(key))]
    if problems:
        raise ValueError("; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    return value


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
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"must be positive, got {value!r}")
    if seconds > MAX_DURATION_S:  # also refuses infinity
        raise ValueError(f"must be at most 30 days ({MAX_DURATION_S:g}s), got {value!r}")
    return seconds


Version = Annotated[str, BeforeValidator(_check_version)]
Name = Annotated[str, BeforeValidator(check_dns_label)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveInt = Annotated[int, Field(gt=0, le=INT32_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX)]
ByteCount = Annotated[int, Field(gt=0, le=INT64_MAX)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Labels = Annotated[dict[str, str], Field(max_length=MAX_ITEMS), AfterValidator(_check_labels)]
Annotations = Annotated[dict[str, str], Field(max_length=MAX_ITEMS), AfterValidator(_check_annotation_keys)]


class ConfigModel(BaseModel):
    """A part of the stack config: unknown keys refused, camelCase keys, immutable once read."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=False,
    )
