"""The Pulumi stack, as the orchestrator needs it: a small interface.

`StackEngine` is everything the Kubernetes platform does with Pulumi: read and
set config, `up`, read the history. `AutomationEngine` (in
`rollout.platforms.automation`) implements it with the Automation API on this
project; tests use a double that records the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rollout.history import HistoryEntry

OnOutput = Callable[[str], None]


@dataclass(frozen=True)
class UpResult:
    """What one `up` did: the update number it recorded and its resource changes."""

    version: int | None
    result: str  # succeeded | failed
    changes: dict[str, int] = field(default_factory=dict)  # create/update/delete/same counts


class StackEngine(Protocol):
    """One Pulumi stack of this project."""

    stack: str

    def get_config(self) -> dict[str, Any]:
        """The stack's config, key -> value (objects decoded)."""
        ...

    def set_config(self, values: Mapping[str, Any]) -> None:
        """Set each key (`meshlift:rollout` -> a dict is stored as an object)."""
        ...

    def remove_config(self, keys: list[str]) -> None: ...

    def up(self, *, message: str, on_output: OnOutput | None = None, env: Mapping[str, str] | None = None) -> UpResult:
        """Run `pulumi up`; raise PlatformError if the update fails."""
        ...

    def history(self, *, page_size: int | None = None) -> list[HistoryEntry]:
        """Updates of the stack, newest first."""
        ...

    def refresh(self) -> None: ...

    def cancel(self) -> None: ...
