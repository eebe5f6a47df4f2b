"""From a spec and a target version to the sequence of stage configs a rollout applies.

Pure functions: `meshlift plan` prints them, the orchestrator applies them, the
tests compare them with what the Automation API double recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshmodel.plan import MeshPlan, plan_for, wave_restart_order
from meshmodel.spec import CONFIG_NAMESPACE, IstioVersion, MeshSpec, RolloutSpec, SpecError, Stage
from meshmodel.spec_check import load_spec
from rollout.errors import UsageError
from rollout.platforms.base import StageChange

ROLLOUT_KEY = f"{CONFIG_NAMESPACE}:rollout"
REVISIONS_KEY = f"{CONFIG_NAMESPACE}:revisions"


def rollout_config(rollout: RolloutSpec, stage: Stage, waves: int = 0, restarted: int | None = None) -> dict[str, Any]:
    """The `meshlift:rollout` value for one stage (what `set_config` writes); `restarted`: the part of
    the last promoted wave applied so far (None: all of it)."""
    value = rollout.model_dump(by_alias=True, mode="json", exclude_none=True)
    value["stage"] = stage.value
    value["promotedWaves"] = waves if stage is Stage.PROMOTE else 0
    value.pop("restartedInWave", None)
    if stage is Stage.PROMOTE and waves and restarted is not None:
        value["restartedInWave"] = restarted
    if not value.get("requireApproval"):
        value.pop("requireApproval", None)
    return value


def spec_at(spec: MeshSpec, stage: Stage, waves: int = 0, restarted: int | None = None) -> MeshSpec:
    assert spec.rollout is not None
    promote = stage is Stage.PROMOTE
    rollout = spec.rollout.model_copy(update={"stage": stage, "promoted_waves": waves if promote else 0,
                                              "restarted_in_wave": restarted if promote and waves else None})
    return spec.model_copy(update={"rollout": rollout})


def change_for(spec: MeshSpec, stage: Stage, waves: int = 0, *, extra: dict[str, Any] | None = None,
               restarted: int | None = None) -> StageChange:
    """The StageChange of one stage: the whole spec at that stage plus the config to set."""
    assert spec.rollout is not None
    rollout = spec.rollout
    label = stage.value + (f" wave {waves}/{len(spec.waves)}" if stage is Stage.PROMOTE else "")
    if stage is Stage.PROMOTE and waves and restarted is not None:
        label += f" ({restarted}/{len(wave_restart_order(spec, spec.waves[waves - 1]))} workloads)"
    return StageChange(
        spec=spec_at(spec, stage, waves, restarted),
        config={**(extra or {}), ROLLOUT_KEY: rollout_config(rollout, stage, waves, restarted)},
        message=f"meshlift: {label} {rollout.from_version} -> {rollout.to_version}",
    )


def wave_parts(spec: MeshSpec, waves: int, *, reached: int = 0) -> list[int | None]:
    """The `restartedInWave` of each part promoting waves 1..`waves` applies, in order; None: the whole wave.

    Parts of at most `restarts.maxRolling` workloads each; a run that reached `reached` workloads of the
    wave resumes there (re-applying that part), never at an earlier one, which would restart some back.
    """
    count = len(wave_restart_order(spec, spec.waves[waves - 1])) if waves else 0
    step = spec.restarts.max_rolling
    if step is None or count <= step or reached >= count:
        return [None]
    parts = [reached or step]
    while parts[-1] + step < count:
        parts.append(parts[-1] + step)
    return [*parts, None]


@dataclass(frozen=True)
class UpgradeTarget:
    """A validated spec with the rollout to `to`, and the config keys the upgrade adds."""

    spec: MeshSpec
    extra: dict[str, Any]  # e.g. meshlift:revisions with the target appended
    already_done: bool = False  # the stack config already records this rollout as cleaned up

    def change(self, stage: Stage, waves: int = 0, restarted: int | None = None) -> StageChange:
        return change_for(self.spec, stage, waves, extra=self.extra, restarted=restarted)


def upgrade_target(config: dict[str, Any], to: str, *, require_approval: bool | None = None) -> UpgradeTarget:
    """Validate the stack config with a rollout to `to` added; SpecError if the config is invalid,
    UsageError naming `--to` if only the upgrade to `to` is.

    `from` is the rollout's `from` if the config has one, else the default revision's
    version; the target is added to `revisions` when it is not listed yet, with the
    `from` revision's Helm values (the mesh config, hub, resources a team chose carry
    over to the new control plane, as a Helm upgrade of that release would keep them).
    """
    try:
        target = str(IstioVersion.parse(to))
    except ValueError as error:
        raise UsageError(f"--to: {error}") from None
    current = load_spec(config)
    default = current.default_revision or (current.rollout.from_revision if current.rollout else None)
    source_revision = current.revision(default) if default else current.revisions[0]
    extra: dict[str, Any] = {}
    revisions = [r.model_dump(by_alias=True, mode="json", exclude_defaults=True) for r in current.revisions]
    if target not in {r.version for r in current.revisions}:
        revisions.append({"version": target, **({"values": source_revision.values} if source_revision.values else {})})
        extra[REVISIONS_KEY] = revisions
    done = False
    if current.rollout is not None and current.rollout.to_version == target:
        rollout = current.rollout.model_dump(by_alias=True, mode="json", exclude_none=True)
        done = current.rollout.stage is Stage.CLEANUP
    else:
        if current.rollout is not None and current.rollout.stage is not Stage.INSTALL:
            raise UsageError(
                f"the stack is mid-rollout to {current.rollout.to_version} (stage {current.rollout.stage.value}); "
                "finish it, or `meshlift rollback`, before starting another upgrade")
        source = source_revision.version
        rollout = {"from": source, "to": target}
    if require_approval is not None:
        rollout["requireApproval"] = require_approval
    rollout["stage"], rollout["promotedWaves"] = Stage.INSTALL.value, 0
    rollout.pop("restartedInWave", None)
    merged = {**config, **extra, ROLLOUT_KEY: rollout}
    try:
        spec = load_spec(merged)
    except SpecError as error:
        # The stack file alone is valid (loaded above): every problem comes from `--to`, so it is
        # named as the flag, not put on a line of the file that never held this version.
        raise UsageError(f"--to {target}: the stack cannot be upgraded to this version "
                         f"({len(error.problems)} problem(s)); nothing changed",
                         details=[str(problem) for problem in error.problems]) from None
    return UpgradeTarget(spec, extra, already_done=done)


def before_rollout(spec: MeshSpec) -> MeshSpec:
    """The mesh as it ran before `spec.rollout` started: only the `from` revision's control plane."""
    rollout = spec.rollout
    assert rollout is not None
    revisions = [r for r in spec.revisions if r.revision != rollout.to_revision]
    return spec.model_copy(update={"rollout": None, "revisions": revisions,
                                   "default_revision": spec.default_revision or rollout.from_revision})


def gate_duration(spec: MeshSpec) -> tuple[float, float]:
    """(at least, at most) seconds one gate takes with the spec's gate settings."""
    gates = spec.gates
    return gates.consecutive_passes * gates.interval, gates.window


def stage_sequence(spec: MeshSpec) -> list[tuple[Stage, int]]:
    """Every (stage, promotedWaves) an upgrade applies, in order."""
    waves = len(spec.waves)
    steps: list[tuple[Stage, int]] = [(Stage.INSTALL, 0), (Stage.CANARY, 0)]
    steps += [(Stage.PROMOTE, wave) for wave in range(1, waves + 1)] or [(Stage.PROMOTE, 0)]
    steps.append((Stage.CLEANUP, 0))
    return steps


def plan_changes(before: MeshPlan | None, after: MeshPlan) -> list[str]:
    """What applying `after` on top of `before` changes, in words (for `meshlift plan`)."""
    changes: list[str] = []
    old_planes = {p.revision for p in before.control_planes} if before else set()
    new_planes = {p.revision for p in after.control_planes}
    changes += [f"install control plane istiod-{r}" for r in sorted(new_planes - old_planes)]
    changes += [f"remove control plane istiod-{r}" for r in sorted(old_planes - new_planes)]
    if before is not None:
        for tag, revision in sorted(after.tags.items()):
            if before.tags.get(tag) != revision:
                changes.append(f"move tag {tag}: {before.tags.get(tag)} -> {revision}")
        if before.default_revision != after.default_revision:
            changes.append(f"default revision (validating webhook): {before.default_revision} -> "
                           f"{after.default_revision}")
    old_canaries = {(c.namespace, c.name) for c in before.canaries} if before else set()
    new_canaries = {(c.namespace, c.name): c for c in after.canaries}
    changes += [f"start canary {ns}/{name} on {c.revision}" for (ns, name), c in sorted(new_canaries.items())
                if (ns, name) not in old_canaries]
    changes += [f"remove canary {ns}/{name}" for ns, name in sorted(old_canaries - set(new_canaries))]
    old_workloads = {(w.namespace, w.name): w.proxy_revision for w in before.workloads} if before else {}
    for workload in after.workloads:
        previous = old_workloads.get((workload.namespace, workload.name))
        if previous is not None and previous != workload.proxy_revision:
            changes.append(f"restart {workload.namespace}/{workload.name} (wave {workload.wave}): "
                           f"{previous} -> {workload.proxy_revision}")
    old_labels = {str(r): r.revision for r in before.relabels} if before else {}
    changes += [f"relabel {r}: istio.io/rev {old_labels[str(r)]} -> {r.revision}" for r in after.relabels
                if old_labels.get(str(r), r.revision) != r.revision]
    old_gateways = {(g.namespace, g.name): g for g in before.gateways} if before else {}
    for gateway in after.gateways:
        previous_gateway = old_gateways.get((gateway.namespace, gateway.name))
        if previous_gateway is not None and previous_gateway.revision != gateway.revision:
            changes.append(f"upgrade gateway {gateway.namespace}/{gateway.name} in place: "
                           f"{previous_gateway.revision} -> {gateway.revision}")
        if gateway.canary_revision and not (previous_gateway and previous_gateway.canary_revision):
            changes.append(f"start canary gateway {gateway.namespace}/{gateway.name} on {gateway.canary_revision}")
        if previous_gateway and previous_gateway.canary_revision and not gateway.canary_revision:
            changes.append(f"remove canary gateway {gateway.namespace}/{gateway.name}")
    return changes or ["no change"]


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    waves: int
    label: str
    changes: list[str]
    gate: str | None  # the gate that runs after it
    min_s: float
    max_s: float


def planned_stages(spec: MeshSpec, *, current: MeshSpec | None = None) -> list[PlannedStage]:
    """Every stage of the upgrade `spec.rollout`, what it changes and which gate follows; a wave applied
    in parts (`restarts.maxRolling`) is one stage per part, its gate after the last."""
    least, most = gate_duration(spec)
    total = len(spec.waves)
    before = plan_for(current) if current is not None else None
    stages: list[PlannedStage] = []
    for stage, waves in stage_sequence(spec):
        parts = wave_parts(spec, waves) if stage is Stage.PROMOTE else [None]
        for part, restarted in enumerate(parts, 1):
            after = plan_for(spec_at(spec, stage, waves, restarted))
            last = part == len(parts)
            if stage is Stage.INSTALL:
                gate, label = None, "install"
            elif stage is Stage.CANARY:
                gate, label = "canary (canaries vs. their stable baseline)", "canary"
            elif stage is Stage.PROMOTE:
                gate = (f"wave {waves} (waves 1..{waves} vs. the rest)" + (" then verify (everything)"
                                                                          if waves == total else "")
                        if last else None)
                label = f"promote wave {waves}/{total}" + (f" part {part}/{len(parts)}" if len(parts) > 1 else "")
            else:
                gate, label = None, "cleanup"
            gates = 0 if gate is None else (2 if "verify" in gate else 1)
            stages.append(PlannedStage(stage, waves, label, plan_changes(before, after), gate,
                                       gates * least, gates * most))
            before = after
    if spec.rollout is not None and spec.rollout.require_approval:
        canary = next(i for i, s in enumerate(stages) if s.stage is Stage.CANARY)
        stages.insert(canary + 1, PlannedStage(Stage.CANARY, 0, "approval",
                                               ["wait for `meshlift promote` (canary gate keeps sampling)"],
                                               "canary, repeated while waiting", 0.0, float("inf")))
    return stages
