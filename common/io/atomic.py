"""Durable, atomic file replacement (seed 003 "Atomic Updates").

Write a temporary file in the same directory, flush and fsync it, keep the current file as the
backup, rename the temporary file over the current one, then fsync the directory so the rename
itself survives a power cut. A crash at any step leaves the old or the new file readable.
"""

from __future__ import annotations

import contextlib
import os
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


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` (mode 0600), flushed and fsynced.

    Whatever was at ``path`` (a temporary file left by a crash) is replaced, never written
    through: a symbolic link planted there cannot make a save truncate another file.
    """
    fault_point("temp_open", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        fault_point("after_temp_write", path)
        os.fsync(fd)
        fault_point("after_temp_fsync", path)
    finally:
        os.close(fd)


def atomic_write_bytes(
    path: Path, data: bytes, *, temp_path: Path, backup_path: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically, keeping the previous file at ``backup_path``.

    The backup is a hard link to the current file, so ``path`` exists at every instant.
    """
    try:
        write_new_file(temp_path, data)
        # After a save interrupted between its backup and its replace, the backup already is
        # the current file: renaming a second link onto it would do nothing and leave the link.
        if backup_path is not None and path.exists() and not _same_file(path, backup_path):
            link_tmp = backup_path.with_name(backup_path.name + ".link")
            with contextlib.suppress(FileNotFoundError):
                link_tmp.unlink()
            try:
                os.link(path, link_tmp)
            except OSError:  # a file system without hard links: copy instead
                write_new_file(link_tmp, path.read_bytes())
            fault_point("after_backup_link", link_tmp)
            os.replace(link_tmp, backup_path)
            fault_point("after_backup", backup_path)
        os.replace(temp_path, path)
        fault_point("after_replace", path)
        fsync_dir(path.parent)
        fault_point("after_dir_fsync", path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False
