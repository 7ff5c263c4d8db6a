"""Pick a checkpoint store from one string, the same everywhere (argument, setting, CLI option)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointError, StoreMismatchError
from common.io.atomic import fsync_dir
from common.io.faults import fault_point
from common.ownership import writers_held
from common.stores.base import CheckpointStore, WriterLock
from common.stores.json_file import JsonFileStore
from common.stores.sqlite import DATABASE_NAME, SqliteStore

__all__ = [
    "STORE_KINDS",
    "StoreChoice",
    "StoreMismatchError",
    "StoreSwitch",
    "detect_store",
    "open_store",
    "select_store",
    "store_argument",
    "validate_store_spec",
]

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


@dataclass(frozen=True, slots=True)
class StoreSwitch:
    """A fresh start's switch of ``directory`` from the ``old`` store's checkpoints of
    ``stages`` to another store, not made yet: nothing is removed until :meth:`make`.

    :func:`select_store` returns it; the start makes it once it is known to go ahead (every
    guard passed, before its first write: ``EnhancedCheckpoint(..., store_switch=)`` does that
    in ``start()``), so a refused start, a fresh one included, changes no file.
    """

    old: str
    directory: Path
    stages: tuple[str, ...]
    #: The files the start will write, claimed too (besides those the old records name).
    outputs: tuple[Path, ...]

    def make(self, held: MutableMapping[str, WriterLock] | None = None) -> None:
        """Remove the old store's checkpoints under every stage's writer lock and every
        output's journal lock (``held``: the writer locks the caller holds already).

        While a live process writes one of those stages or files this raises its
        :class:`~common.errors.CheckpointLockedError` and removes nothing.
        """
        self._locked(held, remove=True)

    def check(self) -> None:
        """Raise what :meth:`make` would raise over a live writer now, removing nothing."""
        self._locked(None, remove=False)

    def _locked(self, held: MutableMapping[str, WriterLock] | None, *, remove: bool) -> None:
        # Here: common.outputs imports the stores' package, which imports this module.
        from common.outputs import outputs_claimed, recorded_output

        store = open_store(self.old, self.directory)
        try:
            with writers_held(store, self.stages, held):
                recorded = [recorded_output(store, stage) for stage in self.stages]
                claimed = [Path(path) for path in (*self.outputs, *recorded) if path is not None]
                with outputs_claimed(claimed):
                    if remove:
                        _remove_store(self.old, store, self.directory, self.stages)
        finally:
            store.close()


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """What :func:`select_store` chose: the store ``kind`` to open, and the ``switch`` the
    caller's start makes once it goes ahead (None: nothing to remove)."""

    kind: str
    switch: StoreSwitch | None = None


def select_store(
    requested: str | None,
    directory: Path | str,
    *,
    fresh: bool = False,
    restarting: Collection[str] | None = None,
    everything: bool = False,
    start_over: str = "pass --fresh",
    start_over_all: str = "start every stage over",
    option: str = "--store",
    outputs: Collection[Path | str] = (),
) -> StoreChoice:
    """The store to open on ``directory``: ``requested`` if it is the one holding its checkpoints.

    Without ``requested``: :func:`detect_store`. A ``requested`` store that differs from the one
    holding checkpoints in ``directory`` would start every stage over in an empty store and
    truncate finished outputs, so it raises :class:`StoreMismatchError` naming the directory,
    what it holds and the way out, and nothing is changed.

    ``restarting`` names the stages the caller can start over (None: it starts nothing over,
    e.g. the checkpoint CLI); ``everything`` says it starts the whole directory over. With
    ``fresh``, when they cover every stage the directory holds, ``requested`` is returned with
    a :class:`StoreSwitch` that removes the other store's checkpoints (a directory holds one
    store's checkpoints, so detection stays true) once the caller's start goes ahead: nothing
    is removed here. While a live process writes one of those stages, or one of the output
    files (or their failed sidecars) their records name or ``outputs`` lists (the ones the
    caller's start will write), this raises :class:`~common.errors.CheckpointLockedError`
    naming the stage or file and the pid instead: the start would be refused by that lock.
    ``start_over`` and ``start_over_all`` are the caller's advice for starting over, and for
    starting every stage over; ``option`` is what the caller calls the store's choice (a
    Scrapy crawl: ``CHECKPOINT_STORE``).
    """
    held = detect_store(directory)
    if requested is None:
        return StoreChoice(held)
    kind = validate_store_spec(requested)
    if kind == held:
        return StoreChoice(kind)  # the caller opens it: no second open here to list its stages
    directory = Path(directory)
    stages = _held_stages(held, directory)
    if held == "json" and not stages:
        return StoreChoice(kind)
    if stages is None:
        raise StoreMismatchError(
            f"{directory} holds a {held} checkpoint database ({DATABASE_NAME}) that cannot be "
            f"read; omit {option} to see why, or move it aside to start over with {kind} "
            "(nothing was changed)",
            path=directory,
        )
    if stages:
        what = f"{held} checkpoints ({len(stages)} stage{'s' if len(stages) > 1 else ''})"
    else:
        what = f"an empty {held} checkpoint database ({DATABASE_NAME})"
    if restarting is None:
        raise StoreMismatchError(
            f"{directory} holds {what}; omit {option} (or pass {option} {held}) to read them",
            path=directory,
        )
    others = [] if everything else sorted(set(stages) - set(restarting))
    if fresh and not others:
        switch = StoreSwitch(held, directory, tuple(stages), tuple(Path(p) for p in outputs))
        switch.check()  # refused now, not after the caller's checks, while a live one writes
        return StoreChoice(kind, switch)
    advice = f"omit {option} to use them, or {start_over} to start over with {kind}"
    if others:
        # --fresh here would still be refused: it cannot forget stages it does not run.
        advice = f"omit {option} to use them, or {start_over_all} to start over with {kind}"
    if fresh:
        advice = (
            f"starting over with {kind} would also forget {', '.join(others)}: omit {option} "
            f"to use them, or {start_over_all}"
        )
    raise StoreMismatchError(
        f"{directory} holds {what}; {advice} (nothing was changed)", path=directory
    )


def _held_stages(kind: str, directory: Path) -> list[str] | None:
    """The stages ``kind``'s store holds in ``directory``; None when they cannot be read."""
    store = open_store(kind, directory)
    try:
        with contextlib.suppress(CheckpointError):
            return store.list_stages()
        return None
    finally:
        store.close()


def _remove_store(
    kind: str, store: CheckpointStore, directory: Path, stages: Collection[str]
) -> None:
    """The removal itself, under every lock :meth:`StoreSwitch.make` holds."""
    if kind == "sqlite":
        # The database file itself goes last, durably after its -wal: its presence is what
        # makes a directory a sqlite one, and SQLite pairs a -wal with a database by name, so
        # one left without its database could be taken for the next one made there.
        for suffix in ("-wal", "-shm", ""):
            path = directory / f"{DATABASE_NAME}{suffix}"
            if not suffix:
                fsync_dir(directory)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                fault_point("after_unlink", path)
        fsync_dir(directory)
        return
    assert isinstance(store, JsonFileStore)
    for stage in stages:
        # The record last: until it goes the stage is listed (detection and the checkpoint
        # CLI tell the truth) and the same --fresh command switches again to remove the rest.
        # Removed first, a crash left its backup to be restored from, or journals no record
        # names, which the new store adopted.
        store.delete(stage, record_last=True)
