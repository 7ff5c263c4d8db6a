"""Restoring a history snapshot as a stage's checkpoint, so that the stage can resume from it.

A checkpoint record counts committed bytes of the stage's journals (its output, the failed
sidecar, the done keys, Scrapy's request journal) and, in a store that keeps them, done keys.
Writing an old record back is only safe while those bytes are still there and are still the
bytes it counted: journals are append-only except when a stage starts over (a reset, a fresh
start, a changed input, a cleanup), and each of those first saves a ``before-...`` snapshot.
So a restore is refused, changing nothing, when a journal is missing or shorter than the
snapshot claims, when the store holds fewer done keys, or when the stage started over after the
snapshot and has run since. Bytes written after the snapshot are cut by the stage's next start,
as after a crash. :meth:`common.manager.UnifiedCheckpointManager.restore` is the public face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointCorruptError, CheckpointError, CheckpointLockedError
from common.outputs import FAILED_JOURNAL, OUTPUT_JOURNAL, failed_sidecar_path
from common.state import CheckpointState, parse_checkpoint
from common.stores.base import CheckpointStore, validate_stage_name

__all__ = ["RestoreResult", "restore_snapshot"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did; ``saved_as`` is the snapshot id of the checkpoint it replaced (None
    when the stage had no readable one)."""

    stage: str
    snapshot_id: str
    state: CheckpointState
    saved_as: str | None


def _is_cut(reason: str) -> bool:
    """A history reason written just before a stage's journals were cut or removed."""
    return reason.startswith("before-") and reason != "before-restore"


def _current(store: CheckpointStore, stage: str) -> CheckpointState | None:
    if stage not in store.list_stages():
        return None
    try:
        loaded = store.load(stage, lambda d, p: parse_checkpoint(d, path=p, stage=stage))
    except CheckpointCorruptError:
        return None  # nothing readable to keep; the restore replaces it
    return None if loaded is None else loaded.value[0]


def restore_snapshot(
    store: CheckpointStore,
    stage: str,
    snapshot_id: str,
    *,
    data_dir: Path,
    clock: Callable[[], float],
) -> RestoreResult:
    """Make snapshot ``snapshot_id`` ``stage``'s checkpoint (see the module docstring).

    ``data_dir`` resolves a relative output path. The current checkpoint is kept in the history
    as ``before-restore``. Raises :class:`CheckpointLockedError` while a live process writes the
    stage, :class:`CheckpointError` for a refused restore.
    """
    validate_stage_name(stage)
    validate_stage_name(snapshot_id)
    entries = store.list_history(stage)
    position = next((i for i, e in enumerate(entries) if e.snapshot_id == snapshot_id), None)
    if position is None:
        raise CheckpointError(
            f"stage {stage!r} has no snapshot {snapshot_id!r} (see: history {stage})",
            stage=stage,
            path=store.describe(stage),
        )
    entry = entries[position]
    state, _ = parse_checkpoint(
        store.load_history(stage, snapshot_id), path=entry.path, stage=stage
    )
    lock = store.lock(stage)
    if lock.is_held_elsewhere():
        raise CheckpointLockedError(
            f"stage {stage!r} is being written by process {lock.holder_pid() or '?'}; stop it "
            f"before restoring a snapshot (it would overwrite the restore)",
            stage=stage,
            path=store.describe(stage),
            holder_pid=lock.holder_pid(),
        )
    lock.acquire()
    try:
        current = _current(store, stage)
        # A "before-reset" (or -fresh, -cleanup) snapshot was taken just before its cut.
        cut = next((e for e in entries[position:] if _is_cut(e.reason)), None)
        if cut is not None and current is not None:
            raise CheckpointError(
                f"cannot restore snapshot {snapshot_id} of stage {stage!r}: the stage was "
                f"started over after it ({cut.snapshot_id}) and has run since, so its outputs "
                f"no longer hold what the snapshot counted. Nothing was changed",
                stage=stage,
                path=store.describe(stage),
            )
        _check_journals(store, stage, state, data_dir)
        saved_as = None
        if current is not None:
            saved_as = store.save_history(stage, current.to_dict(), "before-restore", clock())
        store.save(stage, state.to_dict())
    finally:
        lock.release()
    logger.info("Restored %s from snapshot %s", stage, snapshot_id)
    return RestoreResult(stage, snapshot_id, state, saved_as)


def _check_journals(
    store: CheckpointStore, stage: str, state: CheckpointState, data_dir: Path
) -> None:
    """Refuse a record whose committed journal bytes (or store keys) are not all there."""
    for name, committed in sorted(state.journals.items()):
        if not committed:
            continue
        path = _journal_file(store, stage, state, name, data_dir)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        if size < committed:
            have = "is missing" if size < 0 else f"holds {size} bytes"
            raise CheckpointError(
                f"cannot restore stage {stage!r}: the snapshot counts {committed} bytes of "
                f"{path}, which {have}; restoring it would leave a stage that cannot resume. "
                f"Nothing was changed",
                stage=stage,
                path=path,
            )
    keys = store.key_set(stage)
    if keys is not None and state.keys_done > len(keys):
        raise CheckpointError(
            f"cannot restore stage {stage!r}: the snapshot counts {state.keys_done} done keys "
            f"but {store.location} holds {len(keys)}. Nothing was changed",
            stage=stage,
            path=store.describe(stage),
        )


def _journal_file(
    store: CheckpointStore, stage: str, state: CheckpointState, name: str, data_dir: Path
) -> Path:
    if name in (OUTPUT_JOURNAL, FAILED_JOURNAL) and state.output_file:
        output = Path(state.output_file)
        if not output.is_absolute() and not output.exists():
            beside = data_dir / output
            output = beside if beside.exists() else output
        if name == OUTPUT_JOURNAL:
            return output
        return failed_sidecar_path(output)
    return store.journal_path(stage, name)
