"""The six checkpoint statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum

from common.errors import InvalidTransitionError

__all__ = ["CheckpointStatus", "check_transition"]


class CheckpointStatus(StrEnum):
    """Lifecycle of one stage's checkpoint (seed 003, "Checkpoint Status States")."""

    INITIALIZED = "initialized"  # created, not started
    RUNNING = "running"  # processing; found on load with no live owner => crashed
    PAUSED = "paused"  # stopped on purpose (signal, cancellation); resume later
    COMPLETED = "completed"  # finished; skipped on the next run unless the input changed
    FAILED = "failed"  # a fatal error; fix it and run again
    RECOVERING = "recovering"  # a crash was detected on load; the next start resumes


_ALLOWED: dict[CheckpointStatus, frozenset[CheckpointStatus]] = {
    CheckpointStatus.INITIALIZED: frozenset({CheckpointStatus.RUNNING, CheckpointStatus.FAILED}),
    CheckpointStatus.RUNNING: frozenset(
        {
            CheckpointStatus.PAUSED,
            CheckpointStatus.COMPLETED,
            CheckpointStatus.FAILED,
            CheckpointStatus.RECOVERING,
        }
    ),
    CheckpointStatus.PAUSED: frozenset({CheckpointStatus.RUNNING, CheckpointStatus.FAILED}),
    CheckpointStatus.RECOVERING: frozenset(
        {CheckpointStatus.RUNNING, CheckpointStatus.PAUSED, CheckpointStatus.FAILED}
    ),
    CheckpointStatus.FAILED: frozenset({CheckpointStatus.RUNNING}),
    CheckpointStatus.COMPLETED: frozenset(),
}

_HINTS: dict[CheckpointStatus, str] = {
    CheckpointStatus.COMPLETED: "the stage is finished; reset it (or run with --fresh) to redo it",
    CheckpointStatus.INITIALIZED: "call start() first",
    CheckpointStatus.FAILED: "start() it again to retry",
}


def check_transition(
    current: CheckpointStatus, new: CheckpointStatus, *, stage: str | None = None
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``current -> new`` is allowed.

    Staying in the same status is always allowed (pausing twice is not an error).
    """
    if new is current or new in _ALLOWED[current]:
        return
    hint = _HINTS.get(current, "")
    raise InvalidTransitionError(
        f"stage {stage!r}: cannot go from {current.value} to {new.value}"
        + (f" ({hint})" if hint else ""),
        stage=stage,
    )


def allowed_transitions(current: CheckpointStatus) -> frozenset[CheckpointStatus]:
    """The statuses reachable from ``current`` in one step."""
    return _ALLOWED[current]
