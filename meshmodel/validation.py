"""Cross-field rules of the mesh spec: references, uniqueness, upgrade safety.

Field-level rules (types, ranges, unknown keys) live on the models in
`meshmodel.spec`; the rules here need the whole spec. Each returns problems
instead of raising, so one run reports everything that is wrong.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from meshmodel.chart_support import installable
from meshmodel.plan import (
    CANARY_SUFFIX,
    INJECT_REVISION_LABEL,
    TRACK_LABEL,
    declared_releases,
    promoted_tags,
    release_ref,
)
from meshmodel.spec import (
    INJECTION_LABELS,
    IstioVersion,
    MeshSpec,
    Problem,
    Stage,
    check_dns_label,
    key_path,
)

# Istio supports canary upgrades across at most two minor versions.
MAX_MINOR_SKIP = 2

_MAX_NAME = 63

# Helm values meshlift derives from the spec; a passthrough value would silently
# override (or fight) the spec, so they are rejected where the user can set them.
_OWNED_VALUES = {
    "baseValues": {"defaultRevision": "set meshlift:defaultRevision instead"},
    "revisions": {
        "revision": "the revision name is derived from 'version'",
        "revisionTags": "tags are separate webhook objects managed from meshlift:tags",
    },
    "gateways": {
        "revision": "set the gateway's 'revision' key instead",
        # The typed keys win over these: a replica count here would be replaced by `replicas` (2 unless set).
        "replicaCount": "set the gateway's 'replicas' key instead",
        "service.type": "set the gateway's 'service.type' key instead",
        "service.ports": "set the gateway's 'service.ports' key instead",
        # meshlift labels each gateway Deployment by server-side apply and finds it by the gateway's name.
        "name": "the gateway's Deployment is named after its 'name' key (its canary after '<name>-canary')",
        ("labels", "istio.io/rev"): "it would land on the Deployment too, where meshlift sets the revision "
                                    "injecting its pods; set the gateway's 'revision' key instead",
    },
}


def check_references(spec: MeshSpec) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (_chart_source, _owned_values, _revisions, _tags, _gateways, _namespaces,
                 _workloads, _inventory, _rollout, _gates, _adopt):
        problems += rule(spec)
    return problems


def _adopt(spec: MeshSpec) -> list[Problem]:
    """Only releases meshlift declares can be taken over, each once."""
    declared = declared_releases(spec)
    unrevisioned = release_ref(spec.istio_namespace, "istiod")
    problems, seen = [], set()
    for index, ref in enumerate(spec.adopt):
        key = key_path("adopt", index)
        namespace, _, name = ref.partition("/")
        if not namespace or not name or "/" in name:
            problems.append(Problem(key, f"{ref!r}: write '<namespace>/<release>', e.g. "
                                         f"{release_ref(spec.istio_namespace, 'istio-base')}"))
        elif ref in seen:
            problems.append(Problem(key, f"'{ref}' is listed twice"))
        elif ref == unrevisioned:
            problems.append(Problem(key, "an istiod installed without a revision is not taken over: meshlift "
                                         "installs its revisions beside it and the namespaces move to them; "
                                         "uninstall it once no pod runs on revision 'default' (docs/takeover.md)"))
        elif ref not in declared:
            problems.append(Problem(key, f"meshlift declares no Helm release '{ref}'; it can take over "
                                         + ", ".join(sorted(declared))))
        seen.add(ref)
    return problems


def _chart_source(spec: MeshSpec) -> list[Problem]:
    if spec.chart_repository.startswith(("https://", "http://", "oci://")):
        return []
    return [Problem(key_path("chartRepository"),
                    f"{spec.chart_repository!r} is not a Helm repository URL (https://... or oci://...)")]


def _owned_values(spec: MeshSpec) -> list[Problem]:
    problems = []
    for key, reason in _OWNED_VALUES["baseValues"].items():
        if key in spec.base_values:
            problems.append(Problem(key_path("baseValues", key), f"meshlift sets this value: {reason}"))
    for index, revision in enumerate(spec.revisions):
        for key, reason in _OWNED_VALUES["revisions"].items():
            if key in revision.values:
                problems.append(Problem(key_path("revisions", index, "values", key),
                                        f"meshlift sets this value: {reason}"))
    for index, gateway in enumerate(spec.gateways):
        for key, reason in _OWNED_VALUES["gateways"].items():
            path = list(key) if isinstance(key, tuple) else key.split(".")  # a label name holds dots
            parent = _at(gateway.values, path[:-1])
            if isinstance(parent, dict) and path[-1] in parent:
                problems.append(Problem(key_path("gateways", index, "values", *path),
                                        f"meshlift sets this value: {reason}"))
    return problems


def _at(values: Any, path: list[str]) -> Any:
    for part in path:
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _revisions(spec: MeshSpec) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    for index, revision in enumerate(spec.revisions):
        if reason := installable(IstioVersion.parse(str(revision.version))):
            problems.append(Problem(key_path("revisions", index, "version"), reason))
        if revision.revision in seen:
            problems.append(Problem(
                key_path("revisions", index, "version"),
                f"{revision.version} is already listed at revisions[{seen[revision.revision]}]",
            ))
        seen.setdefault(revision.revision, index)
    if spec.default_revision is not None and spec.default_revision not in seen:
        problems.append(Problem(
            key_path("defaultRevision"),
            f"revision '{spec.default_revision}' is not installed "
            f"(installed: {', '.join(spec.revision_names)})",
        ))
    return problems


def _tags(spec: MeshSpec) -> list[Problem]:
    problems = []
    installed = set(spec.revision_names)
    for tag, target in spec.tags.items():
        key = key_path("tags", tag)
        if tag in installed:
            problems.append(Problem(key, f"tag '{tag}' has the name of a revision; pick another name"))
        if tag == "default" and spec.default_revision not in (None, target):
            # istiod lets a `default` tag decide over the default revision; two answers confuse both.
            problems.append(Problem(key, f"the tag 'default' points at '{target}' but defaultRevision is "
                                         f"'{spec.default_revision}': point both at the same revision"))
        try:
            check_dns_label(tag)
        except ValueError as error:
            problems.append(Problem(key, str(error)))
        if target not in installed:
            # Only revisions here: a tag naming another tag would leave no webhook target.
            reason = f"'{target}' is not an installed revision (installed: {', '.join(spec.revision_names)})"
            if target in spec.tags:
                reason += "; a tag points at a revision, not at another tag"
            problems.append(Problem(key, reason))
    return problems


def _gateways(spec: MeshSpec) -> list[Problem]:
    problems = []
    names: dict[str, int] = {}
    app_namespaces = {ns.name for ns in spec.namespaces}
    for index, gateway in enumerate(spec.gateways):
        if gateway.name in names:
            problems.append(Problem(
                key_path("gateways", index, "name"),
                f"gateway '{gateway.name}' is already defined at gateways[{names[gateway.name]}]",
            ))
        names.setdefault(gateway.name, index)
        if gateway.namespace == spec.istio_namespace:
            problems.append(Problem(
                key_path("gateways", index, "namespace"),
                f"gateways run in their own namespace, not the control plane's ({spec.istio_namespace})",
            ))
        if gateway.namespace in app_namespaces:
            problems.append(Problem(
                key_path("gateways", index, "namespace"),
                f"'{gateway.namespace}' is an application namespace; gateways run in their own namespace",
            ))
        problems += _reference(spec, gateway.revision, key_path("gateways", index, "revision"))
        if gateway.canary and len(gateway.name) + len(CANARY_SUFFIX) > _MAX_NAME:
            problems.append(Problem(key_path("gateways", index, "name"),
                                    f"too long for its canary Deployment '{gateway.name}{CANARY_SUFFIX}' "
                                    f"(at most {_MAX_NAME - len(CANARY_SUFFIX)} characters, or canary: false)"))
        problems += _ports(gateway.service.ports, key_path("gateways", index, "service", "ports"))
    for index, gateway in enumerate(spec.gateways):
        for other in spec.gateways:
            if other.canary and other.namespace == gateway.namespace and gateway.name == other.name + CANARY_SUFFIX:
                problems.append(Problem(key_path("gateways", index, "name"),
                                        f"'{gateway.name}' is the name of gateway '{other.name}''s canary release"))
    return problems


def _ports(ports, key: str) -> list[Problem]:
    problems = []
    names: dict[str, int] = {}
    numbers: dict[tuple[int, str], int] = {}  # a Service may use one number for TCP and UDP (HTTP/3)
    for index, port in enumerate(ports):
        if port.name in names:
            problems.append(Problem(f"{key}[{index}].name",
                                    f"port name '{port.name}' is already used at [{names[port.name]}]"))
        if (port.port, port.protocol) in numbers:
            problems.append(Problem(f"{key}[{index}].port",
                                    f"port {port.port}/{port.protocol} is already used at "
                                    f"[{numbers[port.port, port.protocol]}]"))
        names.setdefault(port.name, index)
        numbers.setdefault((port.port, port.protocol), index)
    return problems


def _workloads(spec: MeshSpec) -> list[Problem]:
    """Rules per workload entry that need its namespace, and the inventory when one is recorded."""
    problems = []
    for n_index, namespace in enumerate(spec.namespaces):
        listed: dict[tuple[str, str], int] = {}
        live = None if spec.inventory is None else spec.inventory.get(namespace.name, [])
        for w_index, workload in enumerate(namespace.workloads):
            key = key_path("namespaces", n_index, "workloads", w_index)
            if (workload.kind, workload.name) in listed:
                problems.append(Problem(f"{key}.name", f"{workload.kind} '{workload.name}' is listed twice "
                                                       f"(at workloads[{listed[workload.kind, workload.name]}])"))
            listed.setdefault((workload.kind, workload.name), w_index)
            for other in namespace.workloads:
                if other.canary and workload.name == other.name + CANARY_SUFFIX:
                    problems.append(Problem(f"{key}.name",
                                            f"'{workload.name}' is the name of workload '{other.name}''s canary"))
            problems += _canary_rules(spec, namespace, workload, key)
            if (workload.wave is not None and workload.wave < namespace.wave
                    and namespace.revision not in spec.tags):
                problems.append(Problem(
                    f"{key}.wave",
                    f"wave {workload.wave} comes before its namespace's (wave {namespace.wave}), which is "
                    f"enrolled by the revision name '{namespace.revision}': its pods would restart onto the "
                    "old revision; enrol the namespace through a tag, or give the workload a later wave",
                ))
            if live is not None:
                problems += _recorded(namespace, workload, live, key)
    return problems


def _canary_rules(spec: MeshSpec, namespace, workload, key: str) -> list[Problem]:
    if not workload.canary:
        return []
    problems = []
    if namespace.revision not in spec.tags:
        # The istiod chart's own webhook injects every pod of a namespace labelled with its
        # revision name; only tag-enrolled namespaces let a pod choose.
        problems.append(Problem(
            f"{key}.canary",
            f"a canary needs its namespace enrolled through a tag, not the revision "
            f"'{namespace.revision}': Istio injects every pod of a namespace labelled with a "
            "revision by that revision, whatever the pod's own istio.io/rev (istio/istio #37088)",
        ))
    if workload.kind == "DaemonSet":
        problems.append(Problem(f"{key}.canary",
                                "a DaemonSet runs one pod on every node, so a clone would double every "
                                "node's pods; restart it in a wave instead (canary: false)"))
    if len(workload.name) + len(CANARY_SUFFIX) > _MAX_NAME:
        problems.append(Problem(f"{key}.name",
                                f"too long for its canary '{workload.name}{CANARY_SUFFIX}' "
                                f"(at most {_MAX_NAME - len(CANARY_SUFFIX)} characters)"))
    return problems


def _recorded(namespace, workload, live, key: str) -> list[Problem]:
    """A workload entry must name a workload the inventory found, and the selection keeps."""
    found = [item for item in live if (item.kind, item.name) == (workload.kind, workload.name)]
    if not found:
        running = ", ".join(f"{item.kind}/{item.name}" for item in live) or "nothing"
        return [Problem(f"{key}.name", f"no {workload.kind} '{workload.name}' runs in namespace "
                                       f"'{namespace.name}' (running: {running})")]
    item = found[0]
    if not namespace.select.matches(item):
        return [Problem(f"{key}.name", f"{workload.kind} '{workload.name}' is left out by the namespace's "
                                       "'select'; widen the selection or remove this entry")]
    if not workload.canary:
        return []
    problems = []
    clone = workload.name + CANARY_SUFFIX
    if any(other.name == clone and other.kind == workload.kind for other in live):
        problems.append(Problem(f"{key}.canary", f"a {workload.kind} '{clone}' already runs in namespace "
                                                 f"'{namespace.name}': the canary clone would take it over"))
    if item.movement == "outsideMesh":
        problems.append(Problem(f"{key}.canary", f"{workload.kind} '{workload.name}' is not in the mesh "
                                                 f"({item.note}): its clone would get no proxy to judge"))
    if item.claims:
        problems.append(Problem(f"{key}.canary", f"{workload.kind} '{workload.name}' mounts the claim(s) "
                                                 f"{', '.join(item.claims)} directly: its clone would share "
                                                 "them (a ReadWriteOnce claim: Multi-Attach, or two writers on "
                                                 "one node); restart it in a wave instead (canary: false)"))
    return problems


def _inventory(spec: MeshSpec) -> list[Problem]:
    if spec.inventory is None:
        return []
    enrolled = {ns.name for ns in spec.namespaces}
    problems = [Problem(key_path("inventory", name), "not an enrolled namespace (meshlift writes this key; "
                                                     "remove it and let `meshlift upgrade` record it again)")
                for name in spec.inventory if name not in enrolled]
    for n_index, namespace in enumerate(spec.namespaces):
        live = {item.name for item in spec.inventory.get(namespace.name, [])}
        if spec.restarts.paused == "refuse":
            paused = [f"{item.kind}/{item.name}" for item in spec.inventory.get(namespace.name, [])
                      if item.movement == "paused" and namespace.select.matches(item)]
            if paused:
                problems.append(Problem(
                    key_path("namespaces", n_index),
                    f"paused in namespace '{namespace.name}': {', '.join(paused)}; a paused Deployment never "
                    "rolls, so its wave would wait and roll back: resume it (kubectl rollout resume), leave "
                    "it out with 'select', or set meshlift:restarts.paused: skip to leave it on the old proxy"))
        for index, name in enumerate(namespace.select.names or []):
            if name not in live:
                problems.append(Problem(key_path("namespaces", n_index, "select", "names", index),
                                        f"no workload '{name}' runs in namespace '{namespace.name}'"))
    return problems


def _namespaces(spec: MeshSpec) -> list[Problem]:
    problems = []
    first: dict[str, int] = {}
    for index, namespace in enumerate(spec.namespaces):
        key = key_path("namespaces", index)
        if namespace.name in first:
            earlier = spec.namespaces[first[namespace.name]]
            if spec.resolve(earlier.revision) != spec.resolve(namespace.revision):
                reason = (f"namespace '{namespace.name}' is enrolled in two revisions "
                          f"('{earlier.revision}' at namespaces[{first[namespace.name]}] "
                          f"and '{namespace.revision}')")
            else:
                reason = f"namespace '{namespace.name}' is already listed at namespaces[{first[namespace.name]}]"
            problems.append(Problem(f"{key}.name", reason))
        first.setdefault(namespace.name, index)
        if namespace.name == spec.istio_namespace:
            problems.append(Problem(f"{key}.name", "the control plane's namespace is not enrolled for injection"))
        for label in INJECTION_LABELS:
            if label in namespace.labels:
                problems.append(Problem(
                    f"{key}.labels.{label}",
                    "injection is set by 'revision'; meshlift owns this label (a second "
                    "injection label would enrol the namespace twice, Istio analyzer IST0123)",
                ))
        problems += _reference(spec, namespace.revision, f"{key}.revision")
    return problems


def _rollout(spec: MeshSpec) -> list[Problem]:
    rollout = spec.rollout
    if rollout is None:
        return []
    problems = []
    installed = set(spec.revision_names)
    source, target = IstioVersion.parse(rollout.from_version), IstioVersion.parse(rollout.to_version)
    if rollout.from_revision not in installed:
        problems.append(Problem(key_path("rollout", "from"),
                                f"the revision being replaced ({rollout.from_revision}) is not installed; "
                                "add it to revisions"))
    if rollout.to_revision not in installed:
        problems.append(Problem(key_path("rollout", "to"),
                                f"cannot promote to {rollout.to_revision}: it is not installed; add "
                                f"{{version: {rollout.to_version}}} to revisions"))
    if target <= source:
        problems.append(Problem(key_path("rollout", "to"),
                                f"{target} is not newer than {source}; to go back, roll back "
                                "(`meshlift rollback`) instead of upgrading"))
    elif target.major != source.major or target.minor - source.minor > MAX_MINOR_SKIP:
        problems.append(Problem(key_path("rollout", "to"),
                                f"{source} -> {target} spans more than {MAX_MINOR_SKIP} minor versions; "
                                "Istio canary upgrades support at most two: upgrade in steps"))
    waves = spec.waves
    if rollout.promoted_waves > len(waves):
        problems.append(Problem(key_path("rollout", "promotedWaves"),
                                f"only {len(waves)} wave(s) are defined"))
    if rollout.promoted_waves and rollout.stage in (Stage.INSTALL, Stage.CANARY):
        problems.append(Problem(key_path("rollout", "promotedWaves"),
                                f"waves are promoted in the promote stage, not in '{rollout.stage.value}'"))
    if rollout.restarted_in_wave is not None and (rollout.stage is not Stage.PROMOTE or not rollout.promoted_waves):
        problems.append(Problem(key_path("rollout", "restartedInWave"),
                                "only a promote stage with promotedWaves of at least 1 restarts a wave in parts"))
    for index, tag in enumerate(rollout.promote_tags or []):
        if tag not in spec.tags:
            problems.append(Problem(key_path("rollout", "promoteTags", index), f"tag '{tag}' is not defined in tags"))
        elif spec.tags[tag] != rollout.from_revision:
            problems.append(Problem(key_path("rollout", "promoteTags", index),
                                    f"tag '{tag}' points at {spec.tags[tag]}, not at the revision "
                                    f"being replaced ({rollout.from_revision})"))
    if rollout.stage is Stage.CLEANUP and not problems:
        problems += _still_served(spec)
    return problems


def _still_served(spec: MeshSpec) -> list[Problem]:
    """Cleanup removes `from`: nothing may still resolve to it after promotion."""
    rollout = spec.rollout
    assert rollout is not None
    old = rollout.from_revision
    moved = promoted_tags(spec)
    problems = []
    reason = (f"still served by revision {old}, which the cleanup stage removes; "
              "move it to {to} first (or add the tag to rollout.promoteTags)").replace("{to}", rollout.to_revision)
    for tag, target in spec.tags.items():
        if target == old and tag not in moved:
            problems.append(Problem(key_path("tags", tag), reason))
    dependants = defaultdict(list)
    for index, gateway in enumerate(spec.gateways):
        if gateway.revision in spec.tags and gateway.revision not in moved and spec.tags[gateway.revision] == old:
            dependants[key_path("gateways", index, "revision")].append(gateway.name)
    for index, namespace in enumerate(spec.namespaces):
        if namespace.revision in spec.tags and namespace.revision not in moved and spec.tags[namespace.revision] == old:
            dependants[key_path("namespaces", index, "revision")].append(namespace.name)
    for key in dependants:
        problems.append(Problem(key, reason))
    return problems


def _gates(spec: MeshSpec) -> list[Problem]:
    gates = spec.gates
    problems = []
    if gates.interval > gates.window:
        problems.append(Problem(key_path("gates", "interval"),
                                f"{gates.interval:g}s is longer than the window ({gates.window:g}s)"))
    elif gates.consecutive_passes * gates.interval > gates.window:
        problems.append(Problem(key_path("gates", "consecutivePasses"),
                                f"{gates.consecutive_passes} passes at {gates.interval:g}s intervals "
                                f"cannot fit in a {gates.window:g}s window"))
    overlap = set(gates.checks or []) & set(gates.skip_checks)
    if overlap:
        problems.append(Problem(key_path("gates", "skipChecks"),
                                f"{', '.join(sorted(overlap))} both required and skipped"))
    return problems


def _reference(spec: MeshSpec, ref: str, key: str) -> list[Problem]:
    if ref in spec.tags or ref in spec.revision_names:
        return []
    return [Problem(key, _not_installed(ref, spec))]


def _not_installed(ref: str, spec: MeshSpec) -> str:
    choices = ", ".join([*spec.revision_names, *spec.tags]) or "none"
    return f"'{ref}' is neither an installed revision nor a tag (choose from: {choices})"
