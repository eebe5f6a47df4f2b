"""`meshlift check`: check Envoy proxies now, or run a gate over a window.

`check` and `inspect` are plain typer command functions: the orchestrator mounts
them into the `meshlift` app (`app.command("check")(checks.cli.check)`); `app`
here runs `check` standalone (`python -m checks`). Exit codes, mapped in one place (`_exit`):
0 every check (or the gate) passed, 1 something failed / the gate did not pass,
2 usage or configuration error (bad flag, unknown check id, bad threshold,
unreadable stack config, no Kubernetes access).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from rich.console import Console
from rich.table import Table

from .catalog import CATALOG
from .client import AdminClient
from .gate import run_gate
from . import terminal
from .interruptible import run as run_interruptible
from .report import error_to_dict, gate_to_json, print_gate, print_report, report_to_json
from .runner import run_checks
from .target import Target
from .targets_file import read_targets

__all__ = ["app", "check", "inspect", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "load_settings"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

CHECK_EPILOG = """\
Examples:

\b
  meshlift check --admin http://127.0.0.1:15000 --expected-version 1.40.0     # one sample, every check
  meshlift check --admin URL --check proxy-version --check certificates-valid # only these checks
  meshlift check --admin URL --gate --window 10s                              # a gate over a window
  meshlift check --admin CANARY --baseline BASELINE                           # a gate: canary vs baseline
  meshlift check -n shop --revision 1-31-0 --baseline-revision 1-30-3 --json
  meshlift check --list-checks                                                # the check ids and hints
"""

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Health checks and gates over Envoy admin interfaces.",
                  rich_markup_mode=None, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


class ConfigError(Exception):
    """A configuration problem: exit code 2."""


def load_settings(stack_config: Path | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """`GateSettings` from a stack file's `meshlift:gates` (if given) plus CLI overrides; with a stack
    file, the proxy-profile check expects its `meshlift:proxyProfile` (defaults when absent).

    Raises ConfigError with every invalid key named (the flag, or file:line and key path).
    """
    from meshmodel.proxy_profile import ProxyProfile
    from meshmodel.spec import GateSettings  # the one definition of the thresholds
    from meshmodel.stackfile import StackFileError, read_stack_file

    values: dict[str, Any] = {}
    lines: Any = None
    profile: ProxyProfile | None = None
    if stack_config is not None:
        try:
            stack_file = read_stack_file(str(stack_config))
        except StackFileError as exc:
            raise ConfigError(f"--stack-config: {exc}") from None
        gates = stack_file.config.get("meshlift:gates") or {}
        if not isinstance(gates, dict):
            raise ConfigError(f"{stack_config}:{stack_file.line_of('meshlift:gates') or ''}: "
                              "meshlift:gates must be a mapping")
        values.update(gates)
        lines = stack_file.line_of
        try:
            profile = ProxyProfile.model_validate(stack_file.config.get("meshlift:proxyProfile") or {})
        except ValidationError as exc:
            raise ConfigError(_located(exc, ProxyProfile, "meshlift:proxyProfile", stack_config, lines)) from None
    given = {to_camel(k) for k, v in (overrides or {}).items() if v is not None}
    flags = {to_camel(k): "--" + k.replace("_", "-") for k, v in (overrides or {}).items() if v is not None}
    flags.update({"checks": "--check", "skipChecks": "--skip"})
    values.update({to_camel(k): v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = GateSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_located(exc, GateSettings, "meshlift:gates", stack_config, lines, flags=flags, given=given)) from None
    settings._proxy_profile = profile
    return settings


def _located(exc: ValidationError, model: Any, prefix: str, stack_config: Path | None, lines: Any, *,
             flags: dict[str, str] | None = None, given: set[str] | None = None) -> str:
    """Each problem named by its flag when a flag set it, else by file:line and key path,
    in the words (and with the "did you mean") `meshlift validate` uses."""
    from meshmodel.spec_check import error_reason, known_keys

    known = known_keys(model)
    problems = []
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else ""
        reason = error_reason(error, known)
        if flags and given and key in flags and key in given:
            problems.append(f"{flags[key]}: {reason}")
        else:
            path = f"{prefix}." + ".".join(map(str, error["loc"]))
            line = lines(path) if lines else None
            problems.append(f"{stack_config}:{line}: {path}: {reason}" if line else f"{path}: {reason}")
    return "; ".join(problems)


MAX_TIMEOUT_S = 300.0


def _check_timeout(seconds: float) -> None:
    if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses NaN and infinity
        raise ConfigError(f"--timeout: {seconds:g} is not a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")


def _exit(code: int, message: str | None = None, console: Console | None = None) -> NoReturn:
    if message:
        (console or terminal.console(stderr=True)).print(message, style="red" if code else None, highlight=False,
                                                markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _list_checks(as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in CATALOG], indent=2))
        return
    if not terminal.console().is_terminal:  # piped: one check per line, tab-separated, for grep and cut
        for c in CATALOG:
            typer.echo("\t".join((c.id, c.category, "fatal" if c.fatal else "warning", str(c.threshold), c.hint)))
        return
    table = Table("id", "category", "level", "default threshold", "hint")
    table.columns[0].no_wrap = True  # an id is what --check/--skip take: never cut
    table.columns[4].overflow = "fold"  # a hint URL is folded, never cut to "…"
    for c in CATALOG:
        table.add_row(c.id, c.category, "fatal" if c.fatal else "warning", c.threshold, c.hint)
    terminal.console().print(table)


@app.command("check", epilog=CHECK_EPILOG)
def check(
    admin: Annotated[list[str] | None, typer.Option("--admin", help="Admin URL of a proxy to check (repeatable).", metavar="URL")] = None,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", help="Admin URL of a baseline proxy: the canary is compared with it over a gate window (implies --gate: a comparison needs several samples).", metavar="URL")] = None,
    expected_version: Annotated[str | None, typer.Option("--expected-version", help="Version (1.40.0) or revision (1-40-0) the checked proxies must run.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Kubernetes: namespace of the pods (default: all).")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Kubernetes: label selector of the pods.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Kubernetes: Istio revision that injected the pods (their sidecar.istio.io/status annotation).")] = None,
    baseline_revision: Annotated[str | None, typer.Option("--baseline-revision", help="Kubernetes: revision of the baseline pods (implies --gate).")] = None,
    kube_context: Annotated[str | None, typer.Option("--context", help="Kubernetes: kubeconfig context.")] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Run a gate over a window instead of one sample.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (schema meshlift.checks/v2 or meshlift.gate/v2).")] = False,
    stack_config: Annotated[Path | None, typer.Option("--stack-config", help="Read thresholds from a stack file's meshlift:gates.", exists=False)] = None,
    only: Annotated[list[str] | None, typer.Option("--check", help="Run only this check id (repeatable; see --list-checks).", metavar="ID")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip this check id (repeatable).", metavar="ID")] = None,
    window: Annotated[str | None, typer.Option(help="Gate window, e.g. 30s.")] = None,
    interval: Annotated[str | None, typer.Option(help="Gate sampling interval, e.g. 1s.")] = None,
    consecutive_passes: Annotated[int | None, typer.Option(help="Passing samples in a row that open the gate.")] = None,
    failure_limit: Annotated[int | None, typer.Option(help="Failing samples that close the gate.")] = None,
    min_success_rate: Annotated[float | None, typer.Option(help="Minimum upstream success rate, 0..1.")] = None,
    max_error_rate_delta: Annotated[float | None, typer.Option(help="Canary minus baseline error rate allowed, 0..1.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Fewer requests than this = no traffic.")] = None,
    min_cert_validity_days: Annotated[float | None, typer.Option(help="Minimum certificate validity in days.")] = None,
    max_connect_failures: Annotated[int | None, typer.Option(help="New upstream connect failures allowed per sample.")] = None,
    max_memory_bytes: Annotated[int | None, typer.Option(help="Absolute cap on server.memory_allocated.")] = None,
    max_memory_ratio: Annotated[float | None, typer.Option(help="Canary memory allowed, as a multiple of its baseline's.")] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds (total deadline is twice this).")] = 2.0,
    list_checks: Annotated[bool, typer.Option("--list-checks", help="Print the check catalog and exit.")] = False,
) -> None:
    """Check Envoy proxies through their admin interface (exit 0 pass, 1 fail, 2 usage/config error)."""
    if list_checks:
        _list_checks(as_json)
        raise typer.Exit(EXIT_OK)
    try:
        overrides = {
            "window": window, "interval": interval, "consecutive_passes": consecutive_passes,
            "failure_limit": failure_limit, "min_success_rate": min_success_rate,
            "max_error_rate_delta": max_error_rate_delta, "min_requests": min_requests,
            "min_cert_validity_days": min_cert_validity_days, "max_connect_failures": max_connect_failures,
            "max_memory_bytes": max_memory_bytes, "max_memory_ratio": max_memory_ratio,
            "checks": list(only) if only else None, "skip_checks": list(skip) if skip else None,
        }
        settings = load_settings(stack_config, overrides)
        _check_timeout(timeout)
        kube = bool(namespace or selector or revision or baseline_revision)
        if not admin and not kube:
            raise ConfigError("give --admin URL (repeatable), or --namespace/--selector/--revision for Kubernetes pods")
        if admin and kube:
            raise ConfigError("use either --admin URLs or the Kubernetes form, not both")
        role = "canary" if (gate or baseline or baseline_revision) else "proxy"
        if kube:
            code = _run_kube(settings, namespace, selector, revision, baseline_revision, kube_context,
                             role, expected_version, gate, as_json, timeout)
        else:
            try:
                targets = [Target.from_url(u, role=role, expected_version=expected_version) for u in admin or ()]
                baselines = [Target.from_url(u, role="baseline") for u in baseline or ()]
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            code = run_interruptible(_run(targets, baselines, settings, gate=gate, as_json=as_json, timeout=timeout))
    except (ConfigError, ValueError) as exc:  # ValueError: unknown check ids and the like, before any read
        if as_json:
            typer.echo(json.dumps(error_to_dict(f"meshlift check: {exc}", gate=gate or bool(baseline)), indent=2))
        _exit(EXIT_USAGE, f"× meshlift check: {exc}")
    raise typer.Exit(code)


async def _run(targets: list[Target], baselines: list[Target], settings: Any, *, gate: bool, as_json: bool, timeout: float) -> int:
    async with AdminClient(timeout=timeout) as client:
        if gate or baselines:
            result = await run_gate(
                [t for t in targets], settings, baseline_targets=baselines, client=client,
                on_sample=None if as_json else _progress,
            )
            if as_json:
                typer.echo(gate_to_json(result))
            else:
                print_gate(result)
            return EXIT_OK if result.passed else EXIT_FAILED
        report = await run_checks(targets, settings, client=client)
    if as_json:
        typer.echo(report_to_json(report))
    else:
        print_report(report)
    return EXIT_OK if report.success else EXIT_FAILED


def _progress(sample: Any) -> None:
    mark = {"pass": "√", "fail": "×", "no-data": "-"}[sample.verdict]
    terminal.console(stderr=True).print(f"sample {sample.index + 1} at {sample.elapsed:.1f}s: {mark} {sample.verdict}", highlight=False)


def _run_kube(settings: Any, namespace: str | None, selector: str | None, revision: str | None,
              baseline_revision: str | None, context: str | None, role: str, expected_version: str | None,
              gate: bool, as_json: bool, timeout: float) -> int:
    from kubernetes import client as k8s

    from .kube import describe_selection, kube_targets

    core = _core_v1(context)
    if expected_version is None and revision and re.fullmatch(r"\d+-\d+-\d+(-.+)?", revision):
        expected_version = revision  # a revision named after its version (1-40-0) says what to expect
    try:
        with kube_targets(core, namespace=namespace, selector=selector, revision=revision, role=role,
                          expected_version=expected_version) as targets:
            if not targets:
                raise ConfigError(f"no running pods with an istio-proxy in {describe_selection(namespace, selector, revision)}")
            if baseline_revision:
                with kube_targets(core, namespace=namespace, selector=selector, revision=baseline_revision,
                                  role="baseline") as baselines:
                    return run_interruptible(_run(targets, baselines, settings, gate=gate, as_json=as_json, timeout=timeout))
            return run_interruptible(_run(targets, [], settings, gate=gate, as_json=as_json, timeout=timeout))
    except k8s.ApiException as exc:
        raise ConfigError(f"Kubernetes API: {exc.status} {exc.reason}") from exc


def _core_v1(context: str | None) -> Any:
    """A CoreV1Api from the kubeconfig (`context`) or the in-cluster service account."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    try:
        try:
            k8s_config.load_kube_config(context=context)
        except k8s_config.ConfigException:
            k8s_config.load_incluster_config()
    except k8s_config.ConfigException as exc:
        if "Service host/port is not set" in str(exc):  # the in-cluster fallback's words: not in a pod either
            raise ConfigError(f"no Kubernetes access: the kubeconfig ({os.environ.get('KUBECONFIG') or '~/.kube/config'}) "
                              "is missing, unreadable or lists no contexts, and this is not a pod with a "
                              "service account") from exc
        raise ConfigError(f"no Kubernetes access: {exc}") from exc
    return k8s.CoreV1Api()


INSPECT_EPILOG = """\
Examples:

\b
  meshlift inspect --admin http://127.0.0.1:15000            # one proxy, summarised
  meshlift inspect --admin URL --diff http://127.0.0.1:15001  # what each serves that the other lacks
  meshlift inspect --rehearsal --against-baseline            # the running rehearsal: canaries vs baselines
  meshlift inspect -n shop --revision 1-31-0 --baseline-revision 1-30-3 --against-baseline
  meshlift inspect --admin URL --json --config-dump          # JSON (meshlift.inspect/v1), redacted dump included

\b
Exit codes: 0 every proxy read and no difference found, 1 a read failed or a diff
found differences, 2 usage error. Secrets (private keys, tokens, credential
headers) are always redacted.
"""


def inspect(
    admin: Annotated[list[str] | None, typer.Option("--admin", help="Admin URL of a proxy to inspect (repeatable).", metavar="URL")] = None,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", help="Admin URL of a baseline proxy (repeatable); --admin ones are then canaries.", metavar="URL")] = None,
    diff: Annotated[str | None, typer.Option("--diff", help="Compare every inspected proxy with this one (admin URL, or a target name).", metavar="OTHER")] = None,
    against_baseline: Annotated[bool, typer.Option("--against-baseline", help="Compare each canary with the baseline(s) of its workload.")] = False,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Kubernetes: namespace of the pods.")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Kubernetes: label selector of the pods.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Kubernetes: Istio revision of the (canary) pods.")] = None,
    baseline_revision: Annotated[str | None, typer.Option("--baseline-revision", help="Kubernetes: revision of the baseline pods (implies --gate).")] = None,
    kube_context: Annotated[str | None, typer.Option("--context", help="Kubernetes: kubeconfig context.")] = None,
    targets_file: Annotated[Path | None, typer.Option("--targets-file", help="Read targets from a meshlift.targets/v1 JSON file.")] = None,
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="The proxies of the running `meshlift rehearse` (.meshlift/rehearsal/targets.json).")] = False,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Leave out differences matching KIND:GLOB (as meshlift:gates.parityAllow).", metavar="KIND:GLOB")] = None,
    limit: Annotated[int, typer.Option(help="Items shown per section and diff kind (0: all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (schema meshlift.inspect/v1).")] = False,
    config_dump: Annotated[bool, typer.Option("--config-dump", help="With --json: add each proxy's whole /config_dump, redacted.")] = False,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 5.0,
) -> None:
    """Show what proxies really run (GET-only): versions, control plane, xDS, listeners, routes,
    clusters, certificates, overload, log levels; --diff / --against-baseline compare them."""
    from meshmodel.parity_allow import validate_allow_entry

    try:
        _check_timeout(timeout)
        if limit < 0:
            raise ConfigError(f"--limit: {limit} is negative; give a number of items, or 0 for all")
        for entry in allow or ():
            validate_allow_entry(entry)
        sources = sum(map(bool, (admin, namespace or selector or revision or baseline_revision, targets_file, rehearsal)))
        if sources != 1:
            raise ConfigError("give exactly one of --admin URL, the Kubernetes form (-n/-l/--revision), "
                              "--targets-file PATH or --rehearsal")
        if against_baseline and diff:
            raise ConfigError("use either --diff OTHER or --against-baseline, not both")
        if config_dump and not as_json:
            raise ConfigError("--config-dump needs --json (a whole dump is not for the terminal)")
        if namespace or selector or revision or baseline_revision:
            code = _inspect_kube(namespace, selector, revision, baseline_revision, kube_context, diff=diff,
                                 against_baseline=against_baseline, allow=allow or [], limit=limit,
                                 as_json=as_json, config_dump=config_dump, timeout=timeout)
        else:
            if admin:
                role = "canary" if baseline or against_baseline else "proxy"
                targets = [Target.from_url(u, role=role) for u in admin]
                targets += [Target.from_url(u, role="baseline") for u in baseline or ()]
            else:
                targets = read_targets(targets_file or _rehearsal_targets())
            code = run_interruptible(_inspect(targets, diff=diff, against_baseline=against_baseline, allow=allow or [],
                                        limit=limit, as_json=as_json, config_dump=config_dump, timeout=timeout))
    except (ConfigError, ValueError) as exc:
        if as_json:
            from .report import inspect_error_to_json

            typer.echo(inspect_error_to_json(f"meshlift inspect: {exc}"))
        _exit(EXIT_USAGE, f"× meshlift inspect: {exc}")
    raise typer.Exit(code)


def _rehearsal_targets() -> Path:
    import os

    root = Path(os.environ.get("MESHLIFT_PROJECT_DIR") or Path.cwd())
    path = root / ".meshlift" / "rehearsal" / "targets.json"
    if not path.exists():
        raise ConfigError(f"no running rehearsal: {path} does not exist (start `meshlift rehearse` first)")
    return path


async def _inspect(targets: list[Target], *, diff: str | None, against_baseline: bool, allow: list[str],
                   limit: int, as_json: bool, config_dump: bool, timeout: float) -> int:
    from .inspect import inspect_targets
    from .inspect_diff import baseline_pairs, diff_inspections
    from .report import inspect_to_json, print_inspection

    other = None
    if diff is not None:
        other = next((t for t in targets if t.name == diff), None)
        if other is None:
            try:
                other = Target.from_url(diff, role="baseline")
            except ValueError as exc:
                raise ConfigError(f"--diff {diff!r} is neither a target name nor an admin URL: {exc}") from exc
            targets = [*targets, other]
    pairs = [(t, other) for t in targets if other is not None and t is not other]
    if against_baseline:
        pairs = baseline_pairs(targets)
        if not pairs:
            raise ConfigError("--against-baseline found no canary with a baseline of the same workload")
    async with AdminClient(timeout=timeout, deadline=3 * timeout) as client:
        inspections = await inspect_targets(client, targets, with_dump=config_dump and as_json)
    by_name = {i.name: i for i in inspections}
    diffs = [diff_inspections(by_name[a.name], by_name[b.name], allow=allow) for a, b in pairs]
    if as_json:
        typer.echo(inspect_to_json(inspections, diffs))
    else:
        print_inspection(inspections, diffs, limit=limit)
    failed = any(i.errors for i in inspections) or any(not d.identical for d in diffs)
    return EXIT_FAILED if failed else EXIT_OK


def _inspect_kube(namespace: str | None, selector: str | None, revision: str | None, baseline_revision: str | None,
                  context: str | None, **options: Any) -> int:
    from kubernetes import client as k8s

    from .kube import describe_selection, kube_targets

    core = _core_v1(context)
    role = "canary" if baseline_revision or options.get("against_baseline") else "proxy"
    try:
        with kube_targets(core, namespace=namespace, selector=selector, revision=revision, role=role) as targets:
            if not targets:
                raise ConfigError(f"no running pods with an istio-proxy in {describe_selection(namespace, selector, revision)}")
            if baseline_revision:
                with kube_targets(core, namespace=namespace, selector=selector, revision=baseline_revision,
                                  role="baseline") as baselines:
                    return run_interruptible(_inspect([*targets, *baselines], **options))
            return run_interruptible(_inspect(targets, **options))
    except k8s.ApiException as exc:
        raise ConfigError(f"Kubernetes API: {exc.status} {exc.reason}") from exc


def main() -> None:  # pragma: no cover - console entry
    app()
