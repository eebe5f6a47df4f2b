"""Platforms the stage machine drives, and the factory that picks one (Flagger style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollout.platforms.base import Applied, GateScope, GateTargets, Platform, StageChange

__all__ = ["Applied", "GateScope", "GateTargets", "Platform", "StageChange", "make_platform", "PLATFORMS"]

PLATFORMS = ("kubernetes", "local")


def make_platform(kind: str, *, project_dir: Path, stack: str, **options: Any) -> Platform:
    """`kubernetes`: the Pulumi stack `stack` of the project; `local`: real Envoys on loopback."""
    if kind == "kubernetes":
        from rollout.platforms.automation import AutomationEngine
        from rollout.platforms.kubernetes import KubernetesPlatform

        engine = options.pop("engine", None) or AutomationEngine(project_dir, stack)
        return KubernetesPlatform(engine, **options)
    if kind == "local":
        from rollout.platforms.local import LocalPlatform

        return LocalPlatform(state_dir=options.pop("state_dir"), **options)
    raise ValueError(f"unknown platform {kind!r} (choose from {', '.join(PLATFORMS)})")
