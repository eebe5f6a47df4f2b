"""Where meshlift's text goes: a terminal gets rich's layout; anything else gets plain lines.

Output that is not a terminal (a pipe, a CI log, a file) is read by grep and by people
scrolling a log: lines are never wrapped at a guessed width, never padded with
trailing spaces, and carry no colour unless asked for (rich's FORCE_COLOR).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console

__all__ = ["console", "PLAIN_WIDTH"]

PLAIN_WIDTH = 4096  # "no wrapping": wider than any line meshlift prints


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich Console for stdout (or stderr): live layout on a terminal, plain lines elsewhere."""
    stream_of: Callable[[], TextIO] = (lambda: sys.stderr) if stderr else (lambda: sys.stdout)
    options.setdefault("highlight", False)
    if _isatty(stream_of()):
        return Console(stderr=stderr, **options)
    return Console(file=_PlainLines(stream_of), width=PLAIN_WIDTH, **options)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _PlainLines(io.TextIOBase):
    """Writes whole lines to the current sys.stdout/sys.stderr with trailing spaces removed."""

    def __init__(self, stream_of: Callable[[], TextIO]) -> None:
        self._stream_of = stream_of
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream_of(), "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            self._stream_of().write("".join(line.rstrip() + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:  # a prompt without its newline: show it now
            self._stream_of().write(self._pending)
            self._pending = ""
        self._stream_of().flush()
