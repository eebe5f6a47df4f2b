"""`python -m checks ...`: the check command before the orchestrator's CLI exists."""

from __future__ import annotations

from .cli import app

app()
