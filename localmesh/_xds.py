"""Filesystem xDS: each push writes the next version of a resource file and
renames it into place, which is what Envoy's directory watch reacts to.

`bad_listener` / `bad_cluster` are *semantically* invalid resources that parse
fine, so Envoy counts them as `update_rejected` (a NACK), keeps the previous
version and keeps serving: broken JSON would count as `update_failure` instead,
and unknown fields are merely counted and accepted.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from pathlib import Path

from . import _bootstrap as cfg
from ._bootstrap import Json, Layout

_tmp_counter = itertools.count()


def write_atomic(path: Path, content: str) -> None:
    """Write `content` to `path` by renaming a sibling temp file over it."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{next(_tmp_counter)}.tmp"
    tmp.write_text(content)
    os.replace(tmp, path)


def bad_listener(good: Json) -> Json:
    """`good` with two identical filter chains: Envoy rejects the listener.

    ("multiple filter chains with the same matching rules are defined")
    """
    bad = json.loads(json.dumps(good))
    bad["filter_chains"] = [bad["filter_chains"][0], bad["filter_chains"][0]]
    return bad


def bad_cluster(good: Json) -> Json:
    """`good` with the load-balancing policy CLUSTER_PROVIDED, invalid for a STATIC cluster."""
    bad = json.loads(json.dumps(good))
    bad["lb_policy"] = "CLUSTER_PROVIDED"
    return bad


class XdsFiles:
    """The LDS, CDS and SDS files of one proxy, with a version counter per type."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lock = threading.Lock()
        self._versions = {"lds": 0, "cds": 0, "sds": 0}
        self.listeners: list[Json] = []  # the last version pushed (good or bad)
        self.clusters: list[Json] = []
        self.secrets: list[Json] = []

    def _push(self, kind: str, path: Path, resources: list[Json], version: str | None) -> str:
        with self._lock:
            self._versions[kind] += 1
            version = version or str(self._versions[kind])
            write_atomic(path, json.dumps(cfg.discovery_response(version, resources), indent=1))
        return version

    def push_listeners(self, listeners: list[Json], *, version: str | None = None) -> str:
        """Replace the whole listener set; returns the `version_info` written."""
        self.listeners = listeners
        return self._push("lds", self.layout.lds, listeners, version)

    def push_clusters(self, clusters: list[Json], *, version: str | None = None) -> str:
        self.clusters = clusters
        return self._push("cds", self.layout.cds, clusters, version)

    def push_secrets(self, secrets: list[Json], *, version: str | None = None) -> str:
        self.secrets = secrets
        return self._push("sds", self.layout.sds, secrets, version)

    def push_bad_listeners(self) -> str:
        """Push the current listeners with the first one made invalid (Envoy NACKs it)."""
        listeners = [bad_listener(self.listeners[0]), *self.listeners[1:]]
        return self._push("lds", self.layout.lds, listeners, None)

    def push_bad_clusters(self) -> str:
        """Push the current clusters with the first one made invalid (Envoy NACKs it)."""
        clusters = [bad_cluster(self.clusters[0]), *self.clusters[1:]]
        return self._push("cds", self.layout.cds, clusters, None)
