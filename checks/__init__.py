"""meshlift checks: health gates over Envoy admin interfaces.

Public API (everything else is private and may change):

- `Target(name, admin_url, role="proxy"|"canary"|"baseline", expected_version=None, labels={}, pod=None)`
  one proxy's admin interface; `Target.from_url(url, **kw)`.
- `AdminClient(*, timeout=2.0, deadline=None, max_body_bytes=16 MiB, concurrency=16, attempts=3, transport=None,
  pool_per_proxy=8, keepalive_s=60.0)`; `AdminClient.for_targets(targets, interval)` is sized for a gate
  of that many proxies (`limits_for`: reads in flight and per-read limits grow with the targets)
  async, GET-only on `ALLOWED_PATHS`, connections pooled per proxy and kept alive between samples;
  every failure is an `AdminError`:

  ```
  AdminError
   ├── AdminTransportError
   │    ├── AdminUnreachable      refused, reset, DNS           (retried)
   │    └── AdminTimeout          timeout or total deadline (hanging, byte-by-byte)
   ├── AdminBadResponse
   │    ├── AdminStatusError      unexpected HTTP status
   │    ├── AdminBodyTooLarge     above the size cap
   │    └── AdminDecodeError      garbage, truncated, wrong shape
   └── AdminPathNotAllowed        not a read-only admin path (nothing sent)
  ```
- `CATALOG` / `CheckSpec` / `select_checks`: the checks as data (id, category,
  description, hint, fatal, reads, stats, default threshold).
- `await run_checks(targets, settings, *, client=None, previous=None, only=None, clock=..., wall_clock=...) -> Report`
  one sample; pass the previous `Report` to judge counters as deltas.
- `await run_gate(canary_targets, settings, *, baseline_targets=(), client=None, on_sample=None,
  sleep=asyncio.sleep, clock=time.monotonic, wall_clock=None, name=None, only=None) -> GateResult`
  `GateResult.outcome` is `GateOutcome.PASSED|FAILED|INCONCLUSIVE`, `.message` a Flagger-style
  halt message, `.failing_checks` the check ids, `.samples` the evidence (`to_dict()` is JSON-safe).
- `Report` / `TargetReport` / `CheckResult` / `Status`: results; `report_to_json`, `gate_to_json`,
  `print_report`, `print_gate` present them (schemas `meshlift.checks/v2`, `meshlift.gate/v2`).
- `checks.cli.check`: the typer command for `meshlift check`; `checks.cli.app` runs it standalone.
  `checks.cli.inspect`: the typer command for `meshlift inspect` (mounted by the orchestrator's CLI).
- `checks.inspect.inspect_proxy(client, target)` -> `ProxyInspection` (schema `meshlift.inspect/v1`),
  `checks.inspect_diff.diff_inspections(a, b)`; `checks.config_dump`: a whole /config_dump parsed into
  a `ConfigSnapshot` (normalised inventory, listener states, profile facts) and `redact()`.
- `checks.targets_file`: `write_targets` / `read_targets` (schema `meshlift.targets/v1`).
- `checks.kube`: Kubernetes discovery (`kube_targets`, `discover_pods`, `pod_targets`, `PortForward`).
- `checks.sampling`: `choose(items, count, name=...)`, the deterministic per-workload sample a gate
  reads of its baseline, and `Sampled` (what was read of how many).
- `parse_json_stats`, `parse_text_stats`, `parse_prometheus`, `Stats`: stats parsing.

`settings` is any object with the fields of `meshmodel.spec.GateSettings`.
"""

from __future__ import annotations

from ._exceptions import (
    AdminBadResponse,
    AdminBodyTooLarge,
    AdminDecodeError,
    AdminError,
    AdminPathNotAllowed,
    AdminStatusError,
    AdminTimeout,
    AdminTransportError,
    AdminUnreachable,
)
from .catalog import CATALOG, CATEGORIES, CheckSpec, check_by_id, select_checks
from .client import ALLOWED_PATHS, AdminClient, AdminResponse
from .context import GateSettingsLike
from .gate import GateOutcome, GateResult, GateSample, run_gate
from .report import gate_to_json, print_gate, print_report, render_gate, render_report, report_to_json
from .result import CheckResult, Report, Status, TargetReport
from .runner import RATE_LOOKBACK_SAMPLES, run_checks
from .stats import PromSample, Stats, parse_json_stats, parse_prometheus, parse_text_stats
from .target import ContainerFacts, PodFacts, Target

__all__ = [
    # targets
    "Target",
    "PodFacts",
    "ContainerFacts",
    # client and its errors
    "AdminClient",
    "AdminResponse",
    "ALLOWED_PATHS",
    "AdminError",
    "AdminTransportError",
    "AdminUnreachable",
    "AdminTimeout",
    "AdminBadResponse",
    "AdminStatusError",
    "AdminBodyTooLarge",
    "AdminDecodeError",
    "AdminPathNotAllowed",
    # catalog
    "CATALOG",
    "CATEGORIES",
    "CheckSpec",
    "check_by_id",
    "select_checks",
    "GateSettingsLike",
    # running
    "run_checks",
    "run_gate",
    "RATE_LOOKBACK_SAMPLES",
    "GateOutcome",
    "GateResult",
    "GateSample",
    # results and presentation
    "Status",
    "CheckResult",
    "TargetReport",
    "Report",
    "report_to_json",
    "gate_to_json",
    "render_report",
    "render_gate",
    "print_report",
    "print_gate",
    # stats
    "Stats",
    "PromSample",
    "parse_json_stats",
    "parse_text_stats",
    "parse_prometheus",
]
