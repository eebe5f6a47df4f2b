"""What a takeover would change in the installation it adopts: read from Helm's release records.

Helm keeps a release's earlier values on upgrade only when no new values are
given (`action/upgrade.go`, `reuseValues`), and meshlift always gives values: the
first `pulumi up` of a takeover replaces whatever the operator installed with.
So, before anything changes, the values of each release Helm records
(`sh.helm.release.v1.<name>.v<N>`, base64 of gzip of JSON, `config` = the values
given at install or upgrade) are compared with what meshlift would send:

- an adopted gateway: every value the operator set that meshlift's values do not
  reproduce (an HPA turned off, fewer replicas, Service annotations, a
  `loadBalancerIP`, extra ports: a cloud load balancer may get a new address),
  and every chart default the installation ran with that meshlift's own values
  would override (the chart's HPA, on by default, that meshlift turns off unless
  stated). Service ports compare as the API server stores them (`protocol` TCP
  and `targetPort` = `port` when left out);
- the unrevisioned `istiod` (never adopted: meshlift's revisions run beside it):
  the values that decide what its pods become when they move to a revision of
  meshlift's — mesh config (trust domain, outbound policy, extension providers),
  image hub and pull secrets, mesh and network ids, proxy settings.

Each difference is a problem at the stack key that states it; `meshlift upgrade`
refuses until the stack reproduces them. A gateway release whose recorded values
carry meshlift's pod annotation was taken over already: its values are the
stack's own and are not compared. The unrevisioned istiod is compared for as long
as it runs.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshmodel.plan import PROXY_REVISION_ANNOTATION, plan_for
from meshmodel.spec import MeshSpec, Problem, key_path
from rollout.errors import PlatformError

# Values of the unrevisioned istiod whose loss changes identity, policy or image pulls.
CARRIED_ISTIOD_VALUES = ("meshConfig", "global.hub", "global.imagePullSecrets", "global.meshID", "global.network",
                         "global.multiCluster", "global.proxy", "global.proxy_init")
UNREVISIONED_ISTIOD = "istiod"
_ABSENT = object()


# Istio's charts keep their values.yaml under this key and merge the user's values onto it in
# their templates (`zzz_profile.yaml`), so Helm's own merge never sees the defaults.
_CHART_DEFAULTS_KEY = "_internal_defaults_do_not_set"
# Where a gateway's stack states a value meshlift sets from a typed key rather than `values`.
_TYPED_GATEWAY_KEYS = (("replicaCount", "replicas"), ("service.type", "service.type"),
                       ("service.ports", "service.ports"), ("service.annotations", "service.annotations"))


def deployed_release(secrets: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest deployed release record among Helm's release Secrets (API JSON), or None."""
    newest: dict[str, Any] | None = None
    for secret in secrets:
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get("owner") != "helm" or labels.get("status") != "deployed":
            continue
        record = _decoded(secret)
        if newest is None or record["version"] > newest["version"]:
            newest = record
    return newest


def _decoded(secret: Mapping[str, Any]) -> dict[str, Any]:
    """A release record (the Secret's `release`: base64 of gzip of JSON, base64 again by the API); PlatformError,
    naming the Secret, when it is not one: what the installation runs with cannot be known from it."""
    name = (secret.get("metadata") or {}).get("name", "?")
    try:
        record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode((secret.get("data") or {})["release"]))))
    except (KeyError, TypeError, ValueError, binascii.Error, OSError, EOFError, zlib.error) as error:
        raise PlatformError(f"Helm's release record {name} cannot be read ({type(error).__name__}: {error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("version"), int):
        raise PlatformError(f"Helm's release record {name} cannot be read (no release version in it)")
    return record


def release_values(secrets: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """`config` (the values given at install or upgrade) of the newest deployed release, or None."""
    record = deployed_release(secrets)
    return None if record is None else record.get("config") or {}


def chart_defaults(record: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of the chart a release record was installed from (its values.yaml)."""
    from components._helm import deep_merge

    values = (record.get("chart") or {}).get("values") or {}
    rest = {key: value for key, value in values.items() if key != _CHART_DEFAULTS_KEY}
    return deep_merge(values.get(_CHART_DEFAULTS_KEY) or {}, rest)


def leaves(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf value with its key path (keys may contain dots: annotation names)."""
    for key, value in values.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from leaves(value, path)
        else:
            yield path, value


def value_at(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = values
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _ABSENT
        current = current[part]
    return current


KeyPrefix = str | tuple[str, ...]  # `a.b.c`, or its parts where a key holds dots (`labels`, `istio.io/rev`)


def _under(path: tuple[str, ...], prefixes: Iterable[KeyPrefix]) -> bool:
    for prefix in prefixes:
        parts = prefix if isinstance(prefix, tuple) else tuple(prefix.split("."))
        if path[:len(parts)] == parts:
            return True
    return False


def comparable(path: tuple[str, ...], value: Any) -> Any:
    """A value as the cluster ends up with it: a Service port without `protocol` is TCP, without
    `targetPort` it targets its own port (the API server's defaults)."""
    if path == ("service", "ports") and isinstance(value, list):
        return [{"protocol": "TCP", "targetPort": port.get("port"), **port} if isinstance(port, Mapping) else port
                for port in value]
    return value


@dataclass(frozen=True)
class Difference:
    """One value the installation runs with and what meshlift would send instead."""

    path: tuple[str, ...]
    installed: str  # as shown: JSON, marked when it is the chart's default
    sent: str

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.installed} -> {self.sent}"


def differences(installed: Mapping[str, Any], sent: Mapping[str, Any], *, only: tuple[KeyPrefix, ...] = (),
                ignore: tuple[KeyPrefix, ...] = ()) -> list[Difference]:
    """Every installed value the sent values do not reproduce."""
    found = []
    for path, value in leaves(installed):
        if (only and not _under(path, only)) or _under(path, ignore):
            continue
        now = value_at(sent, path)
        if comparable(path, now) != comparable(path, value):
            shown = "the chart's default" if now is _ABSENT else json.dumps(now)
            found.append(Difference(path, json.dumps(value), shown))
    return found


def overridden_defaults(defaults: Mapping[str, Any], installed: Mapping[str, Any], sent: Mapping[str, Any], *,
                        ignore: tuple[KeyPrefix, ...] = ()) -> list[Difference]:
    """Every chart default the installation ran with (it set nothing there) that the sent values replace."""
    found = []
    for path, value in leaves(sent):
        if _under(path, ignore) or value_at(installed, path) is not _ABSENT:
            continue
        default = value_at(defaults, path)
        if default is _ABSENT or default is None:  # nothing the installation ran with
            continue
        if comparable(path, default) != comparable(path, value):
            found.append(Difference(path, f"{json.dumps(default)} (the chart's default)", json.dumps(value)))
    return found


# Gateway values an adopted release may set that meshlift sets its own way: the revision (the gateway's
# `revision` key), the Deployment's name (when it is the release's, as meshlift names it) and its
# revision label (meshlift labels the Deployment with the gateway's revision).
_SET_BY_MESHLIFT: tuple[KeyPrefix, ...] = ("revision", "name", ("labels", "istio.io/rev"))


def _stated_at(difference: Difference) -> str:
    """A gateway's difference with the key that states its value: a typed key, else `values.<path>`."""
    typed = next((key for prefix, key in _TYPED_GATEWAY_KEYS if _under(difference.path, (prefix,))), None)
    return f"{difference} [state it in {typed or 'values.' + '.'.join(difference.path)}]"


def adopted_value_problems(spec: MeshSpec, reader: Any) -> list[Problem]:
    """Problems for each adopted gateway and the unrevisioned istiod whose values meshlift would drop."""
    from components.control_plane import DEFAULT_ISTIOD_VALUES
    from components._helm import deep_merge, layered_values
    from components.gateway import gateway_values
    from meshmodel.proxy_profile import istiod_values

    problems = []
    plan = plan_for(spec)
    for index, gateway in enumerate(spec.gateways):
        if f"{gateway.namespace}/{gateway.name}" not in spec.adopt:
            continue
        record = deployed_release(reader.helm_release_secrets(gateway.namespace, gateway.name)) or {}
        installed = record.get("config") or {}
        if PROXY_REVISION_ANNOTATION in (installed.get("podAnnotations") or {}):
            continue  # meshlift's own values since the takeover: changing them is the stack's business
        named = installed.get("name")
        if named not in (None, "", gateway.name):
            problems.append(Problem(key_path("gateways", index), (
                f"the adopted release {gateway.namespace}/{gateway.name} names its Deployment {named!r} "
                f"(values.name): meshlift names a gateway's Deployment after the gateway, so taking it over would "
                f"replace Deployment {named!r} with a new one. Take over a gateway release whose Deployment "
                "carries the release's name")))
            continue
        planned = next(g for g in plan.gateways if g.name == gateway.name)
        sent = gateway_values(planned, revision_label=planned.revision_label, revision=planned.revision,
                              replicas=planned.replicas, canary=False, chart_version=planned.version)
        changed = [*differences(installed, sent, ignore=_SET_BY_MESHLIFT),
                   *overridden_defaults(chart_defaults(record), installed, sent, ignore=_SET_BY_MESHLIFT)]
        if changed:
            problems.append(Problem(key_path("gateways", index), (
                f"the adopted release {gateway.namespace}/{gateway.name} runs with values meshlift would "
                f"replace ({'; '.join(map(_stated_at, changed))}): Helm keeps none of them once meshlift sends its "
                "own. State each where it says (the same value keeps it)")))
    installed = release_values(reader.helm_release_secrets(spec.istio_namespace, UNREVISIONED_ISTIOD))
    if installed:
        # Revisions with the same values miss the same ones: one problem, at the first. The
        # revision `meshlift upgrade --to` adds copies its source's values, and is in no file.
        alike: dict[str, list[int]] = {}
        for index, revision in enumerate(spec.revisions):
            alike.setdefault(json.dumps(revision.values, sort_keys=True), []).append(index)
        for first, *others in alike.values():
            sent = layered_values(deep_merge(DEFAULT_ISTIOD_VALUES, istiod_values(spec.proxy_profile)),
                                  spec.revisions[first].values, {})
            changed = differences(installed, sent, only=CARRIED_ISTIOD_VALUES)
            also = "".join(f" (so does revisions[{index}], which has the same values)" for index in others)
            if changed:
                problems.append(Problem(key_path("revisions", first, "values"), (
                    f"the unrevisioned istiod ({spec.istio_namespace}/{UNREVISIONED_ISTIOD}) runs with values this "
                    f"revision does not carry{also} ({'; '.join(map(str, changed))}): pods moving to it would change "
                    "identity, policy or image source. Reproduce them in this revision's values")))
    return problems
