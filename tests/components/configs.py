"""Small stack configs for focused tests, in the shape of a stack file's `config:` mapping."""

from __future__ import annotations

import copy
from typing import Any


def minimal(**overrides: Any) -> dict[str, Any]:
    """1.30.3 and 1.31.0 installed, tag stable, one gateway, one namespace; `key=value` replaces meshlift:<key>."""
    config: dict[str, Any] = {
        "meshlift:revisions": [{"version": "1.30.3"}, {"version": "1.31.0"}],
        "meshlift:tags": {"stable": "1-30-3"},
        "meshlift:gateways": [{"name": "ingress", "namespace": "istio-ingress", "revision": "stable"}],
        "meshlift:namespaces": [{
            "name": "shop", "revision": "stable",
            "workloads": [{"name": "web", "canary": True}],
        }],
        "meshlift:rollout": {"from": "1.30.3", "to": "1.31.0", "stage": "install"},
    }
    for key, value in overrides.items():
        if value is None:
            config.pop(f"meshlift:{key}", None)
        else:
            config[f"meshlift:{key}"] = copy.deepcopy(value)
    return config
