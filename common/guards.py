"""The input and configuration guards of a resume, as pure functions of the recorded state.

A checkpoint records its input file's hash and size and its configuration's hash; a resume
over a different input or configuration is refused unless forced, and a completed stage whose
input or configuration changed starts over. Nothing here writes; only
:func:`validate_input_file` reads (the file it is asked about), so the CLI can check a stage
without opening a whole checkpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import CheckpointError, ConfigChangedError, InputChangedError
from common.hashing import config_hash, file_sha256
from common.state import CheckpointState

__all__ = [
    "Change",
    "ChangeKind",
    "change_reason",
    "is_stale",
    "validate_config",
    "validate_input_file",
]


class ChangeKind(enum.Enum):
    """What changed since the checkpoint was started."""

    INPUT = "input"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Change:
    """A typed reason a resume is not a plain resume."""

    kind: ChangeKind
    message: str

    @property
    def error(self) -> type[CheckpointError]:
        """The error a refused resume raises for this change."""
        return InputChangedError if self.kind is ChangeKind.INPUT else ConfigChangedError

    def __str__(self) -> str:
        return self.message


def change_reason(
    state: CheckpointState,
    input_file: Path | str | None,
    input_hash: str | None,
    new_config_hash: str | None,
) -> Change | None:
    """What changed since ``state`` was started (input first), or None."""
    if input_file is not None and state.input_file_hash and input_hash != state.input_file_hash:
        return Change(ChangeKind.INPUT, f"input file has changed since checkpoint ({input_file})")
    if new_config_hash is not None and state.config_hash and new_config_hash != state.config_hash:
        return Change(ChangeKind.CONFIG, "configuration has changed since checkpoint")
    return None


def validate_input_file(state: CheckpointState, input_file: Path | str) -> tuple[bool, str]:
    """Compare ``input_file`` with the one ``state`` started on: ``(ok, reason)``."""
    path = Path(input_file)
    recorded = state.input_file_hash
    if not recorded:
        return True, "no input hash recorded"
    if not path.is_file():
        return False, f"input file {path} does not exist"
    size = path.stat().st_size
    if state.input_file_size is not None and size != state.input_file_size:
        return (
            False,
            f"Input file has changed since checkpoint: {path} is {size} bytes, was "
            f"{state.input_file_size}",
        )
    if file_sha256(path) != recorded:
        return False, f"Input file has changed since checkpoint: {path} content hash differs"
    return True, "input file unchanged"


def validate_config(state: CheckpointState, config: Mapping[str, Any]) -> tuple[bool, str]:
    """Compare a configuration with the one ``state`` started with: ``(ok, reason)``."""
    recorded = state.config_hash
    if not recorded:
        return True, "no configuration hash recorded"
    if config_hash(config) != recorded:
        return False, "configuration has changed since checkpoint"
    return True, "configuration unchanged"


def is_stale(
    state: CheckpointState, now: float, max_age_hours: float, stored_at: float | None
) -> bool:
    """True when ``state`` was last updated more than ``max_age_hours`` before ``now``
    (``stored_at``: the record's modification time, for a stage that never ran)."""
    last = state.progress.last_update_time or state.progress.start_time
    if last is None:
        if stored_at is None:
            return False
        last = stored_at
    return now - last > max_age_hours * 3600
