"""The phases of a rollout and the transitions between them, as data.

A run moves through these phases (Flagger keeps the same kind of enum on the
Canary object; we keep it in the journal so a new process resumes where the
last one stopped):

    Planned ─► Installing ─► CanaryVerifying ─► [WaitingApproval] ─► Promoting (wave 1..N)
                  │               │                    │                    │
                  └───────────────┴────────┬───────────┴────────────────────┤
                                           ▼                                ▼
                                      RollingBack ◄──── CleaningUp ◄──── Verifying
                                        │     │            │
                                 RolledBack  Failed    Succeeded

- **Planned**: the spec validated and the stages listed; nothing has changed yet.
- **Installing**: stage `install` applied: the target revision's control plane runs
  beside the stable one; no workload uses it yet.
- **CanaryVerifying**: stage `canary` applied: canary proxies on the target revision
  take real traffic; the canary gate compares them with the stable baseline.
- **WaitingApproval**: only with `requireApproval`: the canary stays up, the gate keeps
  sampling (a failure still rolls back) until `meshlift promote` or a prompt says go.
- **Promoting**: stage `promote`, one `up` per wave (`promotedWaves` = 1..N); after each
  wave the promoted proxies are gated before the next wave starts.
- **Verifying**: every wave is on the target revision; one last gate over the fleet.
- **CleaningUp**: stage `cleanup`: the old revision is removed.
- **Succeeded**: terminal; exit code 0.
- **RollingBack**: a gate failed (or an apply failed): the config of the last good
  update is re-applied.
- **RolledBack**: terminal; the mesh is back on the last good state; exit code 1.
- **Failed**: terminal; the rollback itself failed and needs a human; exit code 3.
- **Abandoned**: terminal; a run that never applied anything (it stopped at Planned,
  e.g. the backend went away) was given up with `meshlift abandon`.
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    PLANNED = "Planned"
    INSTALLING = "Installing"
    CANARY_VERIFYING = "CanaryVerifying"
    WAITING_APPROVAL = "WaitingApproval"
    PROMOTING = "Promoting"
    VERIFYING = "Verifying"
    CLEANING_UP = "CleaningUp"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    ABANDONED = "Abandoned"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def exit_code(self) -> int | None:
        """The CLI's exit code for a run that ended in this phase (None: not ended)."""
        return EXIT_CODES.get(self)


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABANDONED})

EXIT_CODES = {Phase.SUCCEEDED: 0, Phase.ROLLED_BACK: 1, Phase.FAILED: 3}

# The forward path; WaitingApproval is skipped unless the rollout requires approval.
FORWARD: tuple[Phase, ...] = (
    Phase.PLANNED,
    Phase.INSTALLING,
    Phase.CANARY_VERIFYING,
    Phase.WAITING_APPROVAL,
    Phase.PROMOTING,
    Phase.VERIFYING,
    Phase.CLEANING_UP,
    Phase.SUCCEEDED,
)

# Every phase in which the mesh may have changed can roll back.
_ROLLBACK_FROM = (
    Phase.INSTALLING,
    Phase.CANARY_VERIFYING,
    Phase.WAITING_APPROVAL,
    Phase.PROMOTING,
    Phase.VERIFYING,
    Phase.CLEANING_UP,
)

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PLANNED: frozenset({Phase.INSTALLING, Phase.ABANDONED}),
    Phase.INSTALLING: frozenset({Phase.CANARY_VERIFYING, Phase.ROLLING_BACK}),
    Phase.CANARY_VERIFYING: frozenset({Phase.WAITING_APPROVAL, Phase.PROMOTING, Phase.ROLLING_BACK}),
    Phase.WAITING_APPROVAL: frozenset({Phase.PROMOTING, Phase.ROLLING_BACK}),
    # Promoting -> Promoting is the next wave.
    Phase.PROMOTING: frozenset({Phase.PROMOTING, Phase.VERIFYING, Phase.ROLLING_BACK}),
    Phase.VERIFYING: frozenset({Phase.CLEANING_UP, Phase.ROLLING_BACK}),
    Phase.CLEANING_UP: frozenset({Phase.SUCCEEDED, Phase.ROLLING_BACK}),
    Phase.ROLLING_BACK: frozenset({Phase.ROLLED_BACK, Phase.FAILED}),
    Phase.SUCCEEDED: frozenset(),
    Phase.ROLLED_BACK: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.ABANDONED: frozenset(),
}
assert all(Phase.ROLLING_BACK in TRANSITIONS[p] for p in _ROLLBACK_FROM)


class IllegalTransition(RuntimeError):
    """A bug or a corrupted journal: the machine never takes an edge not in TRANSITIONS."""


def check_transition(current: Phase, following: Phase) -> Phase:
    if following not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(p.value for p in TRANSITIONS[current])) or "none (terminal)"
        raise IllegalTransition(f"{current.value} -> {following.value} is not allowed (allowed: {allowed})")
    return following


def next_forward(current: Phase, *, require_approval: bool) -> Phase:
    """The phase after `current` on the happy path."""
    index = FORWARD.index(current)
    following = FORWARD[index + 1]
    if following is Phase.WAITING_APPROVAL and not require_approval:
        following = FORWARD[index + 2]
    return check_transition(current, following)
