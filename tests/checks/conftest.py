from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

import localmesh as lm
from meshmodel.spec import GateSettings

_serial = itertools.count()


@pytest.fixture
def settings() -> GateSettings:
    """The default gate settings, exactly as the stack config would give them."""
    return GateSettings()


@pytest.fixture(scope="module")
def binaries() -> dict[str, lm.EnvoyBinary]:
    """Both Envoy versions the project runs, by version (1.40.0 target, 1.39.3 stable)."""
    return {b.version: b for b in (lm.target_envoy(), lm.stable_envoy())}


@pytest.fixture(scope="module")
def upstream() -> Iterator[lm.Upstream]:
    with lm.Upstream(name="svc") as service:
        yield service


@pytest.fixture(scope="module")
def plane() -> Iterator[lm.ControlPlane]:
    control = lm.ControlPlane().start()
    yield control
    control.stop()


@pytest.fixture
def started(upstream: lm.Upstream) -> Iterator[Callable[..., lm.Proxy]]:
    """A factory of throw-away proxies (`binary`, ProxySpec options), all stopped after the test."""
    proxies: list[lm.Proxy] = []

    def make(binary: lm.EnvoyBinary, **options: object) -> lm.Proxy:
        options.setdefault("name", f"proxy{next(_serial)}")
        proxy = lm.start_proxy(binary, upstream, **options)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
