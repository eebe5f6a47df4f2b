from __future__ import annotations

from collections.abc import Iterator

import pytest

import localmesh as lm


@pytest.fixture(scope="session")
def target() -> lm.EnvoyBinary:
    return lm.target_envoy()


@pytest.fixture(scope="session")
def stable() -> lm.EnvoyBinary:
    return lm.stable_envoy()


@pytest.fixture(scope="module")
def upstream() -> Iterator[lm.Upstream]:
    with lm.Upstream(name="svc") as service:
        yield service
