"""What a command against a cluster needs, checked before any run is recorded.

`meshlift upgrade`, `promote` and `rollback` drive `pulumi up` through the
Automation API. Without the Pulumi CLI, a reachable state backend or the
kubeconfig context the stack names, they would fail after recording a run;
`check_cluster_prerequisites` fails first, naming what is missing and how to
provide it, so nothing is written. The checks look only at PATH, the backend URL
and the kubeconfig: whatever puts `pulumi` on PATH (a package, a pinned local
toolchain) satisfies them.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rollout.errors import PrerequisiteMissing

PULUMI_INSTALL = "https://www.pulumi.com/docs/iac/download-install/"
CONTEXT_KEY = "kubernetes:context"


def check_cluster_prerequisites(project_dir: Path, config: Mapping[str, Any], *,
                                environ: Mapping[str, str] = os.environ) -> None:
    """Raise PrerequisiteMissing naming every missing prerequisite; return if all are met."""
    problems = [problem for problem in (
        pulumi_cli_problem(environ),
        backend_problem(project_dir, environ),
        kube_context_problem(config, environ),
    ) if problem]
    if problems:
        raise PrerequisiteMissing("cannot start: " + "; ".join(problems) + ". Nothing was recorded or changed.")


def pulumi_cli_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    if shutil.which("pulumi", path=environ.get("PATH")):
        return None
    return f"the Pulumi CLI (`pulumi`) is not on PATH (install it: {PULUMI_INSTALL})"


def backend_problem(project_dir: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    from rollout.platforms.automation import backend_url

    url = backend_url(project_dir, environ)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        directory = Path(parsed.path)
        existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            return f"the state backend {url} is not writable"
        return None
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "", port), timeout=3).close()
        except OSError as error:
            return f"the state backend {url} is unreachable ({error.strerror or error})"
    # s3://, gs://, azblob://: reachability needs the cloud's credentials; Pulumi itself reports it.
    return None


def kube_context_problem(config: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str | None:
    wanted = config.get(CONTEXT_KEY)
    paths = [p for p in (environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep) if p]
    try:
        from kubernetes import config as kube_config

        contexts, current = kube_config.list_kube_config_contexts(config_file=paths[0] if paths else None)
    except Exception:  # noqa: BLE001 - missing, malformed or empty kubeconfig: a prerequisite, reported as one
        where = ", ".join(paths) or "~/.kube/config"
        return (f"no Kubernetes context: the kubeconfig ({where}) is missing, unreadable or lists no contexts "
                f"(set KUBECONFIG, or the stack's {CONTEXT_KEY})")
    names = sorted(c["name"] for c in contexts or [])
    if wanted and wanted not in names:
        return (f"the stack's {CONTEXT_KEY} {wanted!r} is not a context of the kubeconfig "
                f"(contexts: {', '.join(names) or 'none'})")
    if not wanted and not current:
        return f"the kubeconfig has no current context and the stack sets no {CONTEXT_KEY}"
    return None
