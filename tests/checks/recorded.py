"""A fake admin interface that serves responses recorded from real Envoy 1.40
(fixtures/, see fixtures/record.py), with per-proxy edits, over httpx.MockTransport.

Requests go through the real client, observers and parsers; only the socket is fake.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from checks import AdminClient, Target

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def recorded_stats(name: str = "stats_healthy.json") -> dict[str, Any]:
    return {e["name"]: e["value"] for e in fixture(name)["stats"] if "name" in e}


@dataclass
class FakeProxy:
    """One proxy's answers; edit the fields to provoke a condition."""

    ready: tuple[int, str] = (200, "LIVE\n")
    server_info: dict[str, Any] = field(default_factory=lambda: fixture("server_info.json"))
    stats: dict[str, Any] = field(default_factory=recorded_stats)
    certs: dict[str, Any] = field(default_factory=lambda: fixture("certs.json"))
    listeners: dict[str, Any] = field(default_factory=lambda: fixture("listeners_ok.json"))
    config: dict[str, Any] = field(default_factory=lambda: fixture("config_dump.json"))

    def add(self, name: str, amount: float) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount


class FakeAdmin:
    """Proxies by host name: `http://<name>.test:15000`."""

    def __init__(self) -> None:
        self.proxies: dict[str, FakeProxy] = {}
        self.requests: list[httpx.Request] = []

    def proxy(self, name: str) -> FakeProxy:
        return self.proxies.setdefault(name, FakeProxy())

    def target(self, name: str, **kw: Any) -> Target:
        self.proxy(name)
        return Target(name=name, admin_url=f"http://{name}.test:15000", **kw)

    def client(self, **kw: Any) -> AdminClient:
        return AdminClient(transport=httpx.MockTransport(self.handle), **kw)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET"
        proxy = self.proxies[request.url.host.removesuffix(".test")]
        path = request.url.path
        if path == "/ready":
            return httpx.Response(proxy.ready[0], text=proxy.ready[1])
        if path == "/server_info":
            return httpx.Response(200, json=proxy.server_info)
        if path == "/stats":
            assert request.url.params.get("format") == "json" and request.url.params.get("filter")
            entries = [{"name": k, "value": v} for k, v in sorted(proxy.stats.items())]
            return httpx.Response(200, json={"stats": entries})
        if path == "/certs":
            return httpx.Response(200, json=proxy.certs)
        if path == "/config_dump" and request.url.params.get("resource") == "dynamic_listeners":
            return httpx.Response(200, json=copy.deepcopy(proxy.listeners))
        if path == "/config_dump":
            return httpx.Response(200, json=scoped_dump(proxy.config, request.url.params))
        return httpx.Response(404, text="invalid path")


def scoped_dump(dump: dict[str, Any], params: Any) -> dict[str, Any]:
    """What Envoy answers `/config_dump` with `resource=` and/or `mask=` (paths without repeated
    fields), as observed on 1.39.3 and 1.40.0: `resource=` gives the bare entries or `{}`; a mask
    alone keeps the configs it applies to, trimmed."""
    resource, mask = params.get("resource"), params.get("mask")
    paths = [p.split(".") for p in mask.split(",")] if mask else None
    if resource:
        entries = [_trim(e, paths) for c in dump["configs"] for e in c.get(resource, [])]
        return {"configs": entries} if entries else {}
    if paths is None:
        return copy.deepcopy(dump)
    kept = [{"@type": c["@type"], **_trim(c, paths)} for c in dump["configs"] if any(p[0] in c for p in paths)]
    return {"configs": kept}


def _trim(value: dict[str, Any], paths: list[list[str]] | None) -> dict[str, Any]:
    if paths is None:
        return copy.deepcopy(value)
    out: dict[str, Any] = {"@type": value["@type"]} if "@type" in value else {}
    for head in dict.fromkeys(p[0] for p in paths):
        if head in value:
            rest = [p[1:] for p in paths if p[0] == head and len(p) > 1]
            out[head] = _trim(value[head], rest) if rest and isinstance(value[head], dict) else copy.deepcopy(value[head])
    return out
