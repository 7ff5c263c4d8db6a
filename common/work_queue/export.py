"""Write a finished stage's lines from the database to its JSON Lines files, exactly once.

Workers never write files: their lines are rows, committed with the items they describe. The
starter writes the files once nothing remains: it streams the rows in input order into temporary
files, fsyncs them and renames them over the outputs. A crash at any point leaves either no
new file or a complete one; running the export again writes the same bytes again, never a line
twice. The database stays the source of truth until the stage is reset.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from common.io.atomic import FILE_MODE, ensure_private_dir, fsync_dir
from common.journal import Journal
from common.work_queue.errors import WorkQueueError
from common.work_queue.queue import WorkQueue

__all__ = ["ExportResult", "export_outputs"]

_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Lines written to each file."""

    output_file: Path
    failed_file: Path
    output_lines: int
    failed_lines: int


def export_outputs(
    queue: WorkQueue, output_file: Path | str, failed_file: Path | str
) -> ExportResult:
    """Write every line of ``queue``'s stage to ``output_file`` and ``failed_file``.

    Refused (nothing written) while items remain, and while another process writes either
    file (:class:`~common.errors.CheckpointLockedError` naming it and the pid: a local stage's
    journal, or another export, holds a lock on it). Both files are created 0600.

    Whose file it is was settled before: the stage's engine record names ``output_file``
    (``EnhancedCheckpoint.start(output_file=...)``, which refuses another stage's output and
    a file holding records its checkpoint never wrote, as for an attached output).
    """
    remaining = queue.remaining()
    if remaining:
        raise WorkQueueError(
            f"cannot export stage {queue.stage!r}: {remaining} items are not finished yet",
            stage=queue.stage,
        )
    targets = {"output": Path(output_file), "failed": Path(failed_file)}
    # Each file's journal lock, as a local stage's writer takes it, held until the new file is
    # in place: a rename under a live writer would leave its records in a file nobody sees.
    locks = [Journal(kind, path) for kind, path in targets.items()]
    try:
        # The files that exist first: a refusal then leaves every file as it was.
        for create in (False, True):
            for lock in locks:
                lock.claim(create=create)
        return _export(queue, targets)
    finally:
        for lock in locks:
            lock.close()


def _export(queue: WorkQueue, targets: dict[str, Path]) -> ExportResult:
    temps = {kind: path.with_name(path.name + ".export.tmp") for kind, path in targets.items()}
    counts = dict.fromkeys(targets, 0)
    for path in targets.values():
        ensure_private_dir(path.parent)
    handles = {}
    try:
        for kind, temp in temps.items():
            # A leftover temp (or a link planted there) is removed, never written through.
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
            )
            os.fchmod(fd, FILE_MODE)
            handles[kind] = open(fd, "w", encoding="utf-8", buffering=_BUFFER)  # noqa: SIM115
        for kind, line in queue.iter_lines():
            handles[kind].write(line)
            counts[kind] += 1
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for kind, temp in temps.items():
            os.replace(temp, targets[kind])
        for directory in {path.parent for path in targets.values()}:
            fsync_dir(directory)
    except BaseException:
        for handle in handles.values():
            handle.close()
        for temp in temps.values():
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    queue.mark_exported()
    return ExportResult(targets["output"], targets["failed"], counts["output"], counts["failed"])
