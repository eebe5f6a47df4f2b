"""A tiny blocking client for the admin endpoint of the proxies we start.

This is test tooling, not the checks' admin client: it may POST (drain,
health-check fail) and it never follows proxies from the environment.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from ._ports import LOOPBACK


def request(port: int, path: str, *, method: str = "GET", timeout: float = 2.0) -> tuple[int, str]:
    """One HTTP/1.1 request to 127.0.0.1:`port`; returns (status, body). Raises OSError."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def stats(port: int, *, filter: str | None = None, timeout: float = 2.0) -> dict[str, int | str]:  # noqa: A002
    """Counters and gauges from `/stats?format=json` (histograms left out)."""
    path = "/stats?format=json"
    if filter:
        from urllib.parse import quote

        path += "&filter=" + quote(filter)
    status, body = request(port, path, timeout=timeout)
    if status != 200:
        raise OSError(f"/stats answered {status}: {body[:200]}")
    out: dict[str, int | str] = {}
    for entry in json.loads(body).get("stats", []):
        if "name" in entry and "value" in entry:
            out[entry["name"]] = entry["value"]
    return out


def get_json(port: int, path: str, *, timeout: float = 2.0) -> Any:
    status, body = request(port, path, timeout=timeout)
    if status != 200:
        raise OSError(f"{path} answered {status}: {body[:200]}")
    return json.loads(body)
