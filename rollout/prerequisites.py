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

import json
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
KUBECONFIG_KEY = "kubernetes:kubeconfig"
# Pulumi's language hosts hand the whole stack config to the program in one environment
# variable, PULUMI_CONFIG (JSON of key -> string). Linux refuses a single environment
# string longer than MAX_ARG_STRLEN (32 pages): the program then never starts.
CONFIG_VARIABLE = "PULUMI_CONFIG"
CONFIG_CHANNEL_LIMIT = 32 * 4096


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
    """Why the stack's cluster cannot be reached, or None. The kubeconfig is the one the Kubernetes provider
    uses: the stack's `kubernetes:kubeconfig` (a path or the file's content) when set, else KUBECONFIG,
    else ~/.kube/config."""
    wanted = config.get(CONTEXT_KEY)
    explicit = config.get(KUBECONFIG_KEY)
    paths = [p for p in (environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep) if p]
    try:
        from kubernetes import config as kube_config

        if explicit and not os.path.exists(str(explicit)):  # the kubeconfig's content, inline
            import yaml

            contexts, current = _contexts_of(yaml.safe_load(str(explicit)))
        else:
            source = str(explicit) if explicit else (paths[0] if paths else None)
            contexts, current = kube_config.list_kube_config_contexts(config_file=source)
    except Exception:  # noqa: BLE001 - missing, malformed or empty kubeconfig: a prerequisite, reported as one
        where = f"the stack's {KUBECONFIG_KEY}" if explicit else ", ".join(paths) or "~/.kube/config"
        return (f"no Kubernetes context: the kubeconfig ({where}) is missing, unreadable or lists no contexts "
                f"(set KUBECONFIG, or the stack's {KUBECONFIG_KEY} and {CONTEXT_KEY})")
    names = sorted(c["name"] for c in contexts or [])
    if wanted and wanted not in names:
        return (f"the stack's {CONTEXT_KEY} {wanted!r} is not a context of the kubeconfig "
                f"(contexts: {', '.join(names) or 'none'})")
    if not wanted and not current:
        return f"the kubeconfig has no current context and the stack sets no {CONTEXT_KEY}"
    return None


def _contexts_of(kubeconfig: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(contexts, current context) of a parsed kubeconfig, as list_kube_config_contexts gives them."""
    contexts = list(kubeconfig.get("contexts") or [])
    if not contexts:
        raise ValueError("no contexts")
    current = next((c for c in contexts if c.get("name") == kubeconfig.get("current-context")), None)
    return contexts, current


def config_channel_bytes(config: Mapping[str, Any]) -> int:
    """Bytes of `PULUMI_CONFIG=<json>` as a language host builds it from this stack config."""
    return len(f"{CONFIG_VARIABLE}=".encode()) + len(_compact({k: _wire(v) for k, v in config.items()}).encode()) + 1


def config_size_problem(config: Mapping[str, Any]) -> str | None:
    """Why the program could not start with this config, or None when it fits."""
    size = config_channel_bytes(config)
    if size <= CONFIG_CHANNEL_LIMIT:
        return None
    largest = sorted(config, key=lambda key: len(_wire(config[key])), reverse=True)[:3]
    return (f"the stack config is {size:,} bytes as Pulumi hands it to the program, more than the "
            f"{CONFIG_CHANNEL_LIMIT:,} bytes Linux allows in one environment variable ({CONFIG_VARIABLE}): "
            "the program would not start (\"argument list too long\"). Largest keys: "
            + ", ".join(f"{key} ({len(_wire(config[key])):,} bytes)" for key in largest)
            + ". Name fewer workloads in meshlift:namespaces[].workloads (every running workload is selected "
              "without being listed), or split the mesh over several stacks")


def _wire(value: Any) -> str:
    """A config value as the engine passes it: strings as they are, structured values as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _compact(value)
    return str(value)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
