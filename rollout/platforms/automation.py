"""`StackEngine` on the Pulumi Automation API: what users run against a cluster.

The stack is this project directory (`work_dir`), selected or created by name;
its config lives in `stacks/Pulumi.<stack>.yaml` (the project's `stackConfigDir`).
State goes to a file backend inside the project (`file://<project>/.pulumi-state`)
unless `MESHLIFT_BACKEND_URL` or `PULUMI_BACKEND_URL` names another one (Pulumi
Cloud, `s3://…`, `gs://…`, `azblob://…`). The file backend encrypts secrets with
a passphrase: `PULUMI_CONFIG_PASSPHRASE` (empty when unset, as for a local dev stack).

The translation between our values and the Automation API's types lives in
module-level functions so it is tested without the Pulumi CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rollout.engine import OnOutput, UpResult
from rollout.errors import MeshliftError, PlatformError, PlatformUnavailable
from rollout.history import HistoryEntry

BACKEND_ENV = "MESHLIFT_BACKEND_URL"


def backend_url(project_dir: Path, environ: Mapping[str, str] = os.environ) -> str:
    """Where stack state lives: an explicit backend, else a file backend in the project."""
    for name in (BACKEND_ENV, "PULUMI_BACKEND_URL"):
        if environ.get(name):
            return environ[name]
    return f"file://{(project_dir / '.pulumi-state').resolve()}"


def workspace_env(project_dir: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Environment of every Pulumi CLI call the workspace makes."""
    env = {"PULUMI_BACKEND_URL": backend_url(project_dir, environ)}
    if env["PULUMI_BACKEND_URL"].startswith("file://"):
        Path(env["PULUMI_BACKEND_URL"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        env.setdefault("PULUMI_CONFIG_PASSPHRASE", environ.get("PULUMI_CONFIG_PASSPHRASE", ""))
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    return env


def config_json(values: Mapping[str, Any]) -> str:
    """`pulumi config --json` shape for `set-all --json`: objects stay objects in the stack file."""
    document: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            document[key] = {"value": json.dumps(value), "objectValue": value, "secret": False}
        elif isinstance(value, bool):
            document[key] = {"value": "true" if value else "false", "secret": False}
        else:
            document[key] = {"value": str(value), "secret": False}
    return json.dumps(document)


def decode_config_value(text: str) -> Any:
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def entry_from_summary(summary: Any) -> HistoryEntry:
    """A HistoryEntry from an `automation.UpdateSummary` (secrets stay `[secret]`)."""
    config = {key: value.value for key, value in (summary.config or {}).items()}
    secret = frozenset(key for key, value in (summary.config or {}).items() if value.secret)
    return HistoryEntry(
        version=int(summary.version or 0),
        kind=str(summary.kind),
        result=str(summary.result),
        config=config,
        message=summary.message or "",
        start_time=summary.start_time,
        secret_keys=secret,
    )


def numbered(entries: list[HistoryEntry], *, complete: bool) -> list[HistoryEntry]:
    """Newest-first entries with update numbers.

    Pulumi Cloud numbers updates; the file (DIY) backend reports every update as
    version 0. There the number is the update's position in the whole history
    (oldest = 1), which is what `pulumi stack history` lists and `--to N` names.
    """
    if not entries or any(entry.version for entry in entries):
        return entries
    if not complete:
        raise PlatformError("this backend does not number updates: read the whole history, not a page")
    total = len(entries)
    return [replace(entry, version=total - index) for index, entry in enumerate(entries)]


def changes_from_summary(summary: Any) -> dict[str, int]:
    return {str(op): int(count) for op, count in (summary.resource_changes or {}).items()}


class AutomationEngine:
    """A Pulumi stack of the project at `project_dir`, driven through `pulumi.automation`."""

    def __init__(self, project_dir: Path, stack: str) -> None:
        self.project_dir = project_dir
        self.stack = stack
        self._stack: Any = None

    def _select(self) -> Any:
        if self._stack is None:
            from pulumi import automation as auto

            env = workspace_env(self.project_dir)
            try:
                self._stack = auto.create_or_select_stack(
                    stack_name=self.stack,
                    work_dir=str(self.project_dir),
                    opts=auto.LocalWorkspaceOptions(work_dir=str(self.project_dir), env_vars=env),
                )
            except FileNotFoundError as error:
                raise PlatformUnavailable(
                    f"cannot select Pulumi stack {self.stack!r} in {self.project_dir}: the Pulumi CLI "
                    f"(`{error.filename or 'pulumi'}`) is not on PATH; install it (https://www.pulumi.com/docs/"
                    "install/) and run the command again; nothing was changed") from error
            except Exception as error:  # backend unreachable, bad passphrase ...
                raise PlatformUnavailable(
                    f"cannot select Pulumi stack {self.stack!r} in {self.project_dir}: {error} "
                    "(needs the Pulumi CLI on PATH and a reachable backend; nothing was changed)") from error
        return self._stack

    def get_config(self) -> dict[str, Any]:
        with _translated("read config"):
            config = self._select().get_all_config()
        return {key: decode_config_value(value.value) for key, value in config.items()}

    def set_config(self, values: Mapping[str, Any]) -> None:
        with _translated("set config"):
            self._select().set_all_config_json(config_json(values))

    def remove_config(self, keys: list[str]) -> None:
        if keys:
            with _translated("remove config"):
                self._select().remove_all_config(list(keys))

    def up(self, *, message: str, on_output: OnOutput | None = None,
           env: Mapping[str, str] | None = None) -> UpResult:
        stack = self._select()
        workspace_vars = stack.workspace.env_vars
        added = {k: v for k, v in (env or {}).items() if k not in workspace_vars}
        workspace_vars.update(env or {})
        try:
            with _translated("pulumi up"):
                result = stack.up(message=message, on_output=on_output, color="never")
        finally:
            for key in added:
                workspace_vars.pop(key, None)
        summary = result.summary
        version = summary.version or (self.history()[0].version if summary.result == "succeeded" else 0)
        return UpResult(version=version, result=summary.result, changes=changes_from_summary(summary))

    def history(self, *, page_size: int | None = None) -> list[HistoryEntry]:
        with _translated("read stack history"):
            summaries = self._select().history(page_size=page_size, show_secrets=False)
        return numbered([entry_from_summary(summary) for summary in summaries], complete=page_size is None)

    def refresh(self) -> None:
        with _translated("pulumi refresh"):
            self._select().refresh(color="never")

    def cancel(self) -> None:
        with _translated("cancel the running update"):
            self._select().cancel()


class _translated:
    """Turn the Automation API's errors into PlatformError at the call site (one place)."""

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> bool:
        if error is None or not isinstance(error, Exception) or isinstance(error, MeshliftError):
            return False
        detail = getattr(error, "stderr", "") or str(error)
        raise PlatformError(f"{self.action} failed: {detail.strip()[-2000:]}") from error
