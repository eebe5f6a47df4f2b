from __future__ import annotations

import pytest

from components.spec import GateSettings


@pytest.fixture
def settings() -> GateSettings:
    """The default gate settings, exactly as the stack config would give them."""
    return GateSettings()
