"""Whether a path can take new files, asked before anything is written."""

from __future__ import annotations

from pathlib import Path

__all__ = ["directory_problem"]


def directory_problem(directory: Path, *, create: bool = False) -> str | None:
    """What keeps ``directory`` from holding new files, or None: it is missing (unless
    ``create``: then only a missing ancestor that is a file counts), or it is not a directory."""
    if directory.is_dir():
        return None
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return f"{existing} is not a directory"
    if create:
        return None
    return f"directory {directory} does not exist"
