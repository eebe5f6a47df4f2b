from __future__ import annotations

import pytest

import components.promotion


@pytest.fixture(autouse=True)
def without_gate_hooks(monkeypatch):
    """Component tests run the program without the orchestrator's gate hooks.

    `rollout.hooks` belongs to the orchestrator; tests that exercise the seam point
    `HOOKS_MODULE` at their own module (or at the real one) explicitly.
    """
    monkeypatch.setattr(components.promotion, "HOOKS_MODULE", "meshlift_tests_no_such_package.hooks")
