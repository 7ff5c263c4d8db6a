"""Durable, atomic file replacement (seed 003 "Atomic Updates").

Write a temporary file in the same directory, flush and fsync it, keep the current file as the
backup, rename the temporary file over the current one, then fsync the directory so the rename
itself survives a power cut. A crash at any step leaves the old or the new file readable.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from common.io.faults import fault_point

__all__ = [
    "FILE_MODE",
    "atomic_write_bytes",
    "ensure_private_dir",
    "fsync_dir",
    "open_private_append",
]

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(directory: Path) -> None:
    """Make a rename or creation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` if it is missing; every level we create is 0700."""
    if directory.is_dir():
        return
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE)


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 (an existing file is narrowed to 0600).

    For logs and other files written outside a checkpoint: ``open(fd, "ab")`` wraps it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted at the name fails the open instead of blocking the saver.
_REUSE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def write_new_file(path: Path, data: bytes, *, recycle: Path | None = None) -> None:
    """Write ``data`` to a new file ``path`` (mode 0600), flushed and fsynced.

    Whatever was at ``path`` (a temporary file left by a crash) is replaced, never written
    through: a symbolic link planted there cannot make a save truncate another file.

    With ``recycle`` (a file of ours being discarded: the oldest backup), that file is renamed
    to ``path`` and rewritten instead of a new one being made: creating an inode and freeing
    the old backup's on every save was a third of a save's CPU. It is rewritten only when it
    is a regular 0600 file with no other name (so never the current record, nor a file linked
    in from elsewhere); otherwise, or when it is missing, a new file is made.
    """
    fault_point("temp_open", path)
    reused = _recycled(recycle, path) if recycle is not None else None
    if reused is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd, size = os.open(path, _NEW_FLAGS, FILE_MODE), 0
        try:
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
        except BaseException:
            os.close(fd)
            raise
    else:
        fd, size = reused
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if size > len(data):
            os.ftruncate(fd, len(data))
        fault_point("after_temp_write", path)
        # The bytes must be on disk before a rename can make them the checkpoint.
        os.fsync(fd)
        fault_point("after_temp_fsync", path)
    finally:
        os.close(fd)


def _recycled(old: Path, path: Path) -> tuple[int, int] | None:
    """``old`` renamed to ``path`` and opened for rewriting (its descriptor and size); None
    if it cannot be (the caller then replaces whatever is at ``path``)."""
    try:
        os.rename(old, path)
    except FileNotFoundError:
        return None
    try:
        fd = os.open(path, _REUSE_FLAGS)
    except OSError:  # a symbolic link (ELOOP), a FIFO (ENXIO), a directory, ...
        return None
    try:
        info = os.fstat(fd)
        if (
            stat.S_ISREG(info.st_mode)
            and info.st_nlink == 1
            and stat.S_IMODE(info.st_mode) == FILE_MODE
        ):
            return fd, info.st_size  # O_NONBLOCK means nothing to a regular file
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def atomic_write_bytes(
    path: Path, data: bytes, *, temp_path: Path, backup_path: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically, keeping the previous file at ``backup_path``.

    The backup is a hard link to the current file, so ``path`` exists at every instant. With
    a backup, the temporary file is the previous backup's inode rewritten (see
    :func:`write_new_file`): the record and its backup take turns on two inodes. Between the
    temporary file's creation and the backup's link there is no backup, only the current
    file, whole and durable; a failed save links it as the backup again.
    """
    try:
        write_new_file(temp_path, data, recycle=backup_path)
        if backup_path is not None:
            _link_backup(path, backup_path)
        os.replace(temp_path, path)
        fault_point("after_replace", path)
        # A save that returned is on disk: the rename is, only once its directory is synced
        # (before that, a power cut could bring the previous record back).
        fsync_dir(path.parent)
        fault_point("after_dir_fsync", path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        if backup_path is not None:  # the old backup became the temporary file: keep one
            with contextlib.suppress(OSError):
                os.link(path, backup_path)
        raise


def _link_backup(path: Path, backup_path: Path) -> None:
    """Make ``backup_path`` another name of the current file ``path`` (if there is one)."""
    try:
        os.link(path, backup_path)  # the usual case: the old backup is the temporary file now
    except FileNotFoundError:
        return  # no current file yet: the first save
    except FileExistsError:  # a backup that could not be recycled
        _replace_backup(path, backup_path)
    except OSError:  # a file system without hard links
        _replace_backup(path, backup_path, copy=True)
    else:
        fault_point("after_backup_link", backup_path)
    fault_point("after_backup", backup_path)


def _replace_backup(path: Path, backup_path: Path, *, copy: bool = False) -> None:
    """The backup replaced by a link to (or a copy of) ``path`` under a temporary name."""
    # After a save interrupted between its backup and its replace, the backup already is the
    # current file: renaming a second link onto it would do nothing and leave the link.
    if not copy and _same_file(path, backup_path):
        fault_point("after_backup_link", backup_path)
        return
    link_tmp = backup_path.with_name(backup_path.name + ".link")
    try:
        if copy:
            write_new_file(link_tmp, path.read_bytes())
        else:
            with contextlib.suppress(FileNotFoundError):
                link_tmp.unlink()
            try:
                os.link(path, link_tmp)
            except OSError:  # a file system without hard links: copy instead
                write_new_file(link_tmp, path.read_bytes())
        fault_point("after_backup_link", link_tmp)
        os.replace(link_tmp, backup_path)
    except BaseException:
        with contextlib.suppress(OSError):
            link_tmp.unlink()
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False
