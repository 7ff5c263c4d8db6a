"""Pick a checkpoint store from one string, the same everywhere (argument, setting, CLI option)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.stores.base import CheckpointStore
from common.stores.json_file import JsonFileStore
from common.stores.sqlite import DATABASE_NAME, SqliteStore

__all__ = ["STORE_KINDS", "detect_store", "open_store", "store_argument", "validate_store_spec"]

#: What ``open_store`` understands, for help texts and error messages.
STORE_KINDS = "'json' (default), 'sqlite'"


def validate_store_spec(spec: str) -> str:
    """``spec`` normalised if :func:`open_store` understands it; ValueError naming it if not."""
    kind = spec.strip().lower()
    if kind in ("json", "sqlite"):
        return kind
    raise ValueError(f"unknown checkpoint store {spec!r}: use {STORE_KINDS}")


def store_argument(text: str) -> str:
    """``type=`` of every ``--store`` option: a usage error listing the kinds on a bad one."""
    try:
        return validate_store_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def open_store(spec: str | None, directory: Path | str) -> CheckpointStore:
    """The store named by ``spec`` for checkpoints kept under ``directory``.

    ``None`` or ``"json"``: one JSON file per stage in ``directory`` (the default).
    ``"sqlite"``: every stage in ``directory/checkpoints.sqlite3`` (:mod:`common.stores.sqlite`).
    Anything else is refused with the kinds that are understood.
    """
    kind = validate_store_spec(spec or "json")
    if kind == "sqlite":
        return SqliteStore(directory)
    return JsonFileStore(directory)


def detect_store(directory: Path | str) -> str:
    """``"sqlite"`` when ``directory`` holds a SQLite checkpoint database, else ``"json"``."""
    return "sqlite" if (Path(directory) / DATABASE_NAME).is_file() else "json"
