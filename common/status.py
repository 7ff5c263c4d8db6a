"""The six checkpoint statuses and the transitions allowed between them.

:func:`transition` is the only writer of a state's status. Besides the table of the normal
lifecycle (:data:`_ALLOWED`) there are two edges that only one named operation may take
(:data:`_BY_HAND`): ``set_position`` reopens a completed stage as paused (its position was
moved back by hand), and ``reset`` returns any stage to initialized. Crash detection on load
(running -> recovering) is a normal edge.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from common.errors import InvalidTransitionError

__all__ = ["CheckpointStatus", "allowed_transitions", "check_transition", "transition"]


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

_BY_HAND: dict[str, dict[CheckpointStatus, frozenset[CheckpointStatus]]] = {
    "set_position": {CheckpointStatus.COMPLETED: frozenset({CheckpointStatus.PAUSED})},
    "reset": {status: frozenset({CheckpointStatus.INITIALIZED}) for status in CheckpointStatus},
}

_HINTS: dict[CheckpointStatus, str] = {
    CheckpointStatus.COMPLETED: "the stage is finished; reset it (or run with --fresh) to redo it",
    CheckpointStatus.INITIALIZED: "call start() first",
    CheckpointStatus.FAILED: "start() it again to retry",
}


class _HasStatus(Protocol):
    status: CheckpointStatus


def check_transition(
    current: CheckpointStatus,
    new: CheckpointStatus,
    *,
    stage: str | None = None,
    by: str | None = None,
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``current -> new`` is allowed (for the
    operation ``by``, when it has edges of its own).

    Staying in the same status is always allowed (pausing twice is not an error).
    """
    if new is current or new in _ALLOWED[current]:
        return
    if by is not None and new in _BY_HAND.get(by, {}).get(current, frozenset()):
        return
    hint = _HINTS.get(current, "")
    raise InvalidTransitionError(
        f"stage {stage!r}: cannot go from {current.value} to {new.value}"
        + (f" ({hint})" if hint else ""),
        stage=stage,
    )


def transition(
    state: _HasStatus,
    new: CheckpointStatus,
    *,
    stage: str | None = None,
    by: str | None = None,
) -> CheckpointStatus:
    """Move ``state`` to ``new`` if allowed (see :func:`check_transition`); returns the old."""
    old = state.status
    check_transition(old, new, stage=stage, by=by)
    state.status = new
    return old


def allowed_transitions(current: CheckpointStatus) -> frozenset[CheckpointStatus]:
    """The statuses reachable from ``current`` in one step."""
    return _ALLOWED[current]
