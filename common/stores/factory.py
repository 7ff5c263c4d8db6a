"""Pick a checkpoint store from one string, the same everywhere (argument, setting, CLI option)."""

from __future__ import annotations

from pathlib import Path

from common.stores.base import CheckpointStore
from common.stores.json_file import JsonFileStore

__all__ = ["STORE_KINDS", "open_store"]

#: What ``open_store`` understands, for help texts and error messages.
STORE_KINDS = "'json' (default)"


def open_store(spec: str | None, directory: Path | str) -> CheckpointStore:
    """The store named by ``spec`` for checkpoints kept under ``directory``.

    ``None`` or ``"json"``: one JSON file per stage in ``directory`` (the default).
    Anything else is refused with the kinds that are understood.
    """
    kind = (spec or "json").strip()
    if kind == "json":
        return JsonFileStore(directory)
    raise ValueError(f"unknown checkpoint store {spec!r}: use {STORE_KINDS}")
