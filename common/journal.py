"""Append-only JSON Lines files whose committed length lives in the checkpoint.

This is how stage outputs are written exactly once. Records are buffered in memory; a checkpoint
save writes and fsyncs the buffered bytes first, then records the new length in the same atomic
checkpoint write that records which items are done. After a crash the file is cut back to the
recorded length, so a record exists on disk exactly when its item counts as done: items finished
after the last save are redone and written once, never twice, and no line is ever torn.

The same mechanism keeps the keyed done-set (URLs, ids) and, for the Scrapy stages, the request
journal: each save appends only what is new, so its cost does not grow with what is done.

A journal is one writer's: from the moment a writer opens it (to cut it back, or to append)
until it closes it, it holds an exclusive ``flock`` on the file, so a second process (another
stage configured with the same output file, or a copy of the same script) is refused with
:class:`~common.errors.CheckpointLockedError` before it truncates or appends anything. The
lock is on the file itself: no lock file is left beside it, and the kernel drops it when the
writer dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.errors import CheckpointCorruptError, CheckpointLockedError, CheckpointSaveError
from common.io.atomic import FILE_MODE, ensure_private_dir, fsync_dir
from common.io.faults import fault_point
from common.io.locking import FlockHeld, flock_or_close

__all__ = [
    "Journal",
    "encode_record",
    "is_stage_journal",
    "remove_stage_journals",
    "stage_journal_path",
]

logger = logging.getLogger(__name__)

_JOURNAL_NAME = re.compile(r"[A-Za-z0-9_-]+")


def stage_journal_path(directory: Path, stage: str, name: str) -> Path:
    """``<directory>/<stage>.<name>.jsonl``: where a store keeps a stage's journal ``name``.

    ``stage`` must already be a validated stage name.
    """
    if not _JOURNAL_NAME.fullmatch(name):
        raise ValueError(f"invalid journal name {name!r}: letters, digits, '_' and '-' only")
    return directory / f"{stage}.{name}.jsonl"


def remove_stage_journals(directory: Path, stage: str) -> bool:
    """Delete exactly ``stage``'s journals in ``directory``; True if any was removed.

    ``s.t.keys.jsonl`` belongs to stage ``s.t``, not ``s``.
    """
    removed = False
    if directory.is_dir():
        for path in directory.iterdir():
            if _names_journal_of(path.name, stage):
                path.unlink()
                removed = True
                fault_point("after_unlink", path)
    if removed:
        fsync_dir(directory)
    return removed


def is_stage_journal(directory: Path, stage: str, path: Path | str) -> bool:
    """True when ``path`` is, or would be, one of ``stage``'s journals in ``directory``
    (``<stage>.<name>.jsonl``, whatever the name: a reset of the stage deletes it)."""
    path = Path(path)
    return os.path.realpath(path.parent) == os.path.realpath(directory) and _names_journal_of(
        path.name, stage
    )


def _names_journal_of(name: str, stage: str) -> bool:
    prefix = f"{stage}."
    return (
        name.startswith(prefix)
        and name.endswith(".jsonl")
        and _JOURNAL_NAME.fullmatch(name[len(prefix) : -len(".jsonl")]) is not None
    )


def encode_record(record: Any) -> bytes:
    """One JSON value on one line, UTF-8."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class Journal:
    """One append-only JSON Lines file owned by a checkpoint.

    Appends happen on the owner's thread and only touch memory; the checkpoint's saver thread
    does the file I/O. ``committed`` is the length recorded in the last completed save.
    """

    def __init__(self, name: str, path: Path | str) -> None:
        self.name = name
        self.path = Path(path)
        self.committed = 0
        self._staged = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._fd: int | None = None

    # Owner thread ----------------------------------------------------------------------------

    def append(self, record: Any) -> int:
        """Buffer one record; it reaches disk with the next checkpoint save. Returns the
        bytes buffered now."""
        return self.append_line(encode_record(record))

    def append_line(self, line: bytes) -> int:
        """:meth:`append` for a record already encoded by :func:`encode_record`."""
        self._pending.append(line)
        self._pending_bytes += len(line)
        return self._pending_bytes

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def take_pending(self) -> tuple[bytes, int]:
        """Hand the buffered bytes to a save; returns them and the length after writing them."""
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._staged += len(data)
        return data, self._staged

    def adopt(self, committed: int | None) -> None:
        """Take the committed length from the checkpoint without touching the file, so the
        committed records can be read before :meth:`recover` cuts the rest (a start that may
        still be refused must not change the file)."""
        self.committed = self._staged = committed or 0
        self._pending.clear()
        self._pending_bytes = 0

    def claim(self, *, create: bool = False) -> bool:
        """Lock the file now if it exists, changing nothing in it; True when it was opened
        here (False: already open, or missing: nobody else can hold a file that is not there,
        and :meth:`recover` creates it). ``create`` makes a missing file (empty) and locks it.

        A start or a reset claims every journal before it writes anything, so another
        process's lock refuses it (:class:`CheckpointLockedError`) with everything as it was.
        """
        if self._fd is not None or not (create or self.path.exists()):
            return False
        try:
            self._open_locked()
        except OSError as exc:
            raise CheckpointSaveError(
                f"cannot prepare journal {self.path}: {exc.strerror or exc}",
                path=self.path,
            ) from exc
        return True

    def check(self, committed: int | None) -> None:
        """Raise :class:`CheckpointCorruptError` when the file holds fewer bytes than
        ``committed`` (or is missing): committed records are gone. Reads only."""
        target = committed or 0
        if not target:
            return
        try:
            size = os.fstat(self._fd).st_size if self._fd is not None else self.path.stat().st_size
        except FileNotFoundError:
            raise CheckpointCorruptError(
                f"journal {self.path} is missing but the checkpoint says {target} bytes were "
                f"committed to it; restore the file or reset the stage",
                path=self.path,
            ) from None
        except OSError as exc:
            raise CheckpointSaveError(
                f"cannot prepare journal {self.path}: {exc.strerror or exc}",
                path=self.path,
            ) from exc
        if size < target:
            raise CheckpointCorruptError(
                f"journal {self.path} has {size} bytes but the checkpoint says {target} were "
                f"committed; records are missing. Restore the file or reset the stage",
                path=self.path,
            )

    def recover(self, committed: int | None) -> int:
        """Cut the file back to ``committed`` (None: nothing committed); return bytes cut.

        Raises :class:`CheckpointCorruptError` if the file is shorter than the committed length:
        committed records are missing and resuming would silently lose them; and
        :class:`CheckpointLockedError` if another open journal (another process) writes it.
        From here on the journal keeps the file open and locked until :meth:`close`.
        """
        try:
            return self._recover(committed)
        except OSError as exc:
            raise CheckpointSaveError(
                f"cannot prepare journal {self.path}: {exc.strerror or exc}",
                path=self.path,
            ) from exc

    def _recover(self, committed: int | None) -> int:
        target = committed or 0
        ensure_private_dir(self.path.parent)
        if self._fd is None:
            self.check(target)  # a missing file with committed bytes is not created here
        # Locked before anything is cut (and sized under the lock); an empty output exists
        # from the start ("no records" is a result, not an error).
        fd = self._fd if self._fd is not None else self._open_locked()
        self.check(target)
        cut = os.fstat(fd).st_size - target
        if cut:
            os.ftruncate(fd, target)
            os.fsync(fd)
            fault_point("after_journal_truncate", self.path)
            if committed is None:
                logger.warning(
                    "Truncated %s (%d bytes) for a fresh start of its stage", self.path, cut
                )
            else:
                logger.info(
                    "Cut %d uncommitted bytes from %s (written after the last checkpoint)",
                    cut,
                    self.path,
                )
        self.committed = self._staged = target
        self._pending.clear()
        self._pending_bytes = 0
        return cut

    def read_committed(self) -> Iterator[Any]:
        """The committed records, decoded, in order (streamed: constant memory)."""
        if self.committed == 0:
            return
        with self.path.open("rb") as handle:
            remaining = self.committed
            for line in handle:
                if remaining <= 0:
                    break
                remaining -= len(line)
                if remaining < 0:  # a line straddling the committed length is not committed
                    break
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise CheckpointCorruptError(
                        f"journal {self.path} holds a damaged record ({exc})", path=self.path
                    ) from None
                yield value

    def load_committed(self) -> list[Any]:
        """All committed records at once: one JSON parse of the whole journal (fast for 1M+).

        Encoded records never contain a raw newline (JSON escapes it), so joining the lines
        with commas gives one JSON array.
        """
        if self.committed == 0:
            return []
        try:
            with self.path.open("rb") as handle:
                data = handle.read(self.committed)
        except FileNotFoundError:
            raise CheckpointCorruptError(
                f"journal {self.path} is missing but {self.committed} bytes were committed to it;"
                f" restore the file or reset the stage",
                path=self.path,
            ) from None
        if len(data) < self.committed:
            raise CheckpointCorruptError(
                f"journal {self.path} is shorter than its committed length {self.committed}",
                path=self.path,
            )
        body = data[:-1] if data.endswith(b"\n") else data
        try:
            values: list[Any] = json.loads(b"[" + body.replace(b"\n", b",") + b"]")
        except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, an integer too long
            raise CheckpointCorruptError(
                f"journal {self.path} holds a damaged record ({exc})", path=self.path
            ) from None
        return values

    # Saver thread ----------------------------------------------------------------------------

    def write_durable(self, data: bytes) -> None:
        """Append ``data`` and fsync it."""
        fd = self._fd if self._fd is not None else self._open_locked()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        fault_point("after_journal_write", self.path)
        # Before the record that counts these bytes is written: a power cut must never leave
        # a record committing bytes the disk lost.
        os.fsync(fd)
        fault_point("after_journal_fsync", self.path)

    def _open_locked(self) -> int:
        """The journal's file, opened for appending (created if missing) and locked.

        Called by the owner's :meth:`recover` before it cuts anything, or by the saver's
        first write when no recover ran; the fd then stays open (and the file locked) until
        :meth:`close`.
        """
        ensure_private_dir(self.path.parent)
        fault_point("journal_open", self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        held = flock_or_close(fd, self.path)
        if isinstance(held, FlockHeld):
            pid = held.holder_pid
            who = f"process {pid}" if pid else "another process"
            raise CheckpointLockedError(
                f"{self.path} is being written by {who} (another stage or another run of "
                f"this one); give each stage an output file of its own, or wait for that run "
                f"to finish (nothing was changed)",
                path=self.path,
                holder_pid=pid,
            )
        self._fd = fd
        return fd

    def close(self) -> None:
        """Close the file (giving its lock up); a later recover or write opens it again."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
