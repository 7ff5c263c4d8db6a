"""Every error the checkpoint engine and its integrations raise, in one tree.

All of them derive from :class:`CheckpointError`, and each carries the stage and the file it is
about, so a message can always tell the user *which* checkpoint is in trouble. Two families:
the checkpoint's *state* refuses (fix the input, reset, force), and the *infrastructure* a
stage depends on is unreachable (:class:`StoreUnavailableError`: retry when it is back,
nothing about the stage is wrong)::

    CheckpointError
    ├── InvalidStageNameError      a stage name that is empty, too long or would leave the directory
    ├── InvalidTransitionError     e.g. completed -> running without a reset
    ├── CheckpointLockedError      another live process holds the stage
    ├── CheckpointCorruptError     main file and backup both unreadable (nothing was overwritten)
    │   └── CheckpointSchemaError  readable JSON of the wrong shape, or from a newer version
    ├── CheckpointUnreadableError  a checkpoint file the process may not read (EACCES, EIO): not
    │                              corruption, so no backup is used and nothing is moved aside
    ├── CheckpointSaveError        a save failed (disk full, read-only); the previous file is intact
    ├── InputChangedError          resuming over an input file whose content changed
    ├── InputInvalidError          a stage starting over on an input with a bad record (FILE:LINE)
    ├── ConfigChangedError         resuming with a different configuration
    ├── OutputConflictError        an output file another stage of the directory records, one
    │                              holding records its checkpoint never wrote, or a resume
    │                              naming another output than the checkpoint's
    ├── StageNotFoundError         a stage with no checkpoint in the directory
    ├── StoreMismatchError         an explicit store that is not the one holding the directory's
    │                              checkpoints (also a ValueError: a bad option value)
    ├── LedgerUnavailableError     the store keeps no per-item ledger (JSON): use SQLite
    ├── FrontierConfigError        a Redis crawl prefix started with another configuration
    ├── WorkQueueError             (common.work_queue.errors) the PostgreSQL queue refuses
    │   ├── StageNotLoadedError    no starter has loaded the stage's items yet
    │   ├── LeaseLostError         a batch passed to another worker; its results were dropped
    │   └── WorkQueueUnavailableError  its server is unreachable (also a StoreUnavailableError)
    └── StoreUnavailableError      infrastructure: a server the stage's state lives on cannot be
                                   reached (PostgreSQL, Redis); nothing about the stage is wrong
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointSaveError",
    "CheckpointSchemaError",
    "CheckpointUnreadableError",
    "ConfigChangedError",
    "FrontierConfigError",
    "InputChangedError",
    "InputInvalidError",
    "InvalidStageNameError",
    "InvalidTransitionError",
    "LedgerUnavailableError",
    "OutputConflictError",
    "StageNotFoundError",
    "StoreMismatchError",
    "StoreUnavailableError",
]


class CheckpointError(Exception):
    """Root of the engine's errors; ``stage`` and ``path`` say what it is about."""

    def __init__(
        self, message: str, *, stage: str | None = None, path: Path | str | None = None
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.path = Path(path) if path is not None else None


class InvalidStageNameError(CheckpointError, ValueError):
    """The stage name cannot be used as a file name inside the checkpoint directory."""


class InvalidTransitionError(CheckpointError):
    """A status change the status machine does not allow."""


class CheckpointLockedError(CheckpointError):
    """Another process is writing this stage; ``holder_pid`` is its process id when known."""

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        path: Path | str | None = None,
        holder_pid: int | None = None,
    ) -> None:
        super().__init__(message, stage=stage, path=path)
        self.holder_pid = holder_pid


class CheckpointCorruptError(CheckpointError):
    """No readable checkpoint: the files named in the message were left untouched."""


class CheckpointSchemaError(CheckpointCorruptError):
    """Valid JSON that is not a checkpoint this version understands."""


class CheckpointUnreadableError(CheckpointError):
    """A checkpoint file exists but cannot be read (permissions, I/O error).

    Its content is unknown, so it is neither corrupt nor replaceable by the backup: the load
    stops and nothing on disk changes.
    """


class CheckpointSaveError(CheckpointError):
    """Persisting failed; the checkpoint on disk is still the previous one."""


class InputChangedError(CheckpointError):
    """The input file differs from the one the checkpoint was started on."""


class InputInvalidError(CheckpointError, ValueError):
    """A stage's input failed validation before the stage started over; nothing was cut."""


class ConfigChangedError(CheckpointError):
    """The configuration differs from the one the checkpoint was started with."""


class OutputConflictError(CheckpointError):
    """An output file this stage cannot take: another stage in the same checkpoint directory
    records it, it holds records this stage's checkpoint never wrote (``fresh`` overwrites
    them), or the checkpoint's committed records are in another file than this run's."""


class LedgerUnavailableError(CheckpointError):
    """The store keeps no ledger (the JSON store): use the SQLite store."""


class FrontierConfigError(CheckpointError):
    """The crawl under this prefix was started with another configuration."""


class StoreUnavailableError(CheckpointError):
    """Infrastructure, not state: a server the stage depends on cannot be reached."""


class StageNotFoundError(CheckpointError, KeyError):
    """No checkpoint exists for the stage; ``known`` lists the stages that do."""

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        path: Path | str | None = None,
        known: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, stage=stage, path=path)
        self.known = known

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class StoreMismatchError(CheckpointError, ValueError):
    """An explicit store (``--store``) that is not the store holding the directory's
    checkpoints: opening the other one would start every stage over."""
