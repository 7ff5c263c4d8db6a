"""A stage's outputs and done keys: the journals its saves commit, and the keys of items done.

An :class:`Outputs` holds a checkpoint's :class:`~common.journal.Journal` files by name (the
stage's ``output`` and its ``failed`` sidecar, the ``keys`` journal, any other an integration
attaches) and its done keys (the store's own key set, or the keys journal read into memory).
It keeps them true to the record: adopted from it while reading, cut back to what it commits
once the checkpoint becomes the stage's writer and a start has passed every guard, emptied on a
reset. Each save takes what is new here (journal bytes, keys, ledger rows) into its snapshot.

Threads: all of it belongs to the checkpoint's owner thread, including ``Journal.committed``
and the store's committed keys (they catch up when the owner applies a
:class:`~common.persist.SaveResult`); the saver thread only writes the snapshot's bytes to the
files. The owner calls in here under the checkpoint's lock, except from ``update()`` (see
:mod:`common.checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from common.errors import CheckpointError, OutputConflictError
from common.itemargs import shown
from common.journal import Journal, encode_record
from common.ledger import Ledger
from common.ownership import Ownership
from common.state import CheckpointState
from common.stores.base import (
    CheckpointStore,
    KeySet,
    MemoryKeySet,
    StagedRows,
    validate_stage_name,
)

__all__ = [
    "FAILED_JOURNAL",
    "KEYS_JOURNAL",
    "OUTPUT_JOURNAL",
    "JournalWrite",
    "Outputs",
    "failed_sidecar_path",
    "outputs_claimed",
    "recorded_output",
    "refuse_replacing",
]

OUTPUT_JOURNAL = "output"
FAILED_JOURNAL = "failed"
KEYS_JOURNAL = "keys"

#: A journal's new bytes in a snapshot, and the length they bring it to.
JournalWrite = tuple[Journal, bytes, int]


def failed_sidecar_path(output: Path | str) -> Path:
    """Where the failed records of the output file ``output`` go: ``<stem>.failed.jsonl``
    beside it (``out.jsonl`` -> ``out.failed.jsonl``)."""
    output = Path(output)
    return output.with_name(output.stem + ".failed.jsonl")


def recorded_output(store: CheckpointStore, stage: str) -> Path | None:
    """The output file ``stage``'s record in ``store`` names; None when it names none or cannot
    be read (read-only)."""
    try:
        loaded = store.load(stage, lambda data, _path: data)
    except CheckpointError:
        return None
    value = loaded.value if loaded is not None else None
    recorded = value.get("output_file") if isinstance(value, dict) else None
    return Path(recorded) if isinstance(recorded, str) and recorded else None


@contextlib.contextmanager
def outputs_claimed(outputs: Iterable[Path]) -> Iterator[None]:
    """Hold the journal lock of every output file in ``outputs`` and of its failed sidecar
    (those that exist) for the block, changing nothing in them.

    For a change that must not happen while another process writes one of them (a store
    switch forgetting the stages that wrote them, before a start that file's lock would
    refuse): raises :class:`~common.errors.CheckpointLockedError` naming the file and the pid,
    having kept no lock, when one is held.
    """
    paths: dict[str, Path] = {}
    for output in outputs:
        for path in (Path(output), failed_sidecar_path(output)):
            paths.setdefault(os.path.realpath(path), path)
    journals = [Journal(OUTPUT_JOURNAL, path) for path in paths.values()]
    try:
        for journal in journals:
            journal.claim()
        yield
    finally:
        for journal in journals:
            journal.close()


def _holds_bytes(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _named_outputs(store: CheckpointStore, stage: str) -> Iterator[Path]:
    """The output files ``stage`` names: its record's first, then its history's, newest first
    (read lazily; a record or snapshot that cannot be read is passed over)."""
    recorded = recorded_output(store, stage)
    if recorded is not None:
        yield recorded
    for entry in reversed(store.list_history(stage)):
        try:
            record = store.load_history(stage, entry.snapshot_id)
        except (CheckpointError, ValueError):
            continue
        named = record.get("output_file")
        if isinstance(named, str) and named:
            yield Path(named)


def _has_written(store: CheckpointStore, stage: str, output: Path) -> bool:
    """True when ``stage``'s record on disk, or a snapshot in its history, names ``output`` as
    its output file (read-only)."""
    ours = os.path.realpath(output)
    return any(os.path.realpath(named) == ours for named in _named_outputs(store, stage))


def _one_of(paths: Iterable[Path], output: Path) -> tuple[Path, str] | None:
    """The first of ``paths`` that is ``output`` or its failed sidecar, and which of them it is
    (``"output"``, ``"failed sidecar"``); None when none is."""
    theirs = {
        os.path.realpath(output): "output",
        os.path.realpath(failed_sidecar_path(output)): "failed sidecar",
    }
    for path in paths:
        kind = theirs.get(os.path.realpath(path))
        if kind is not None:
            return path, kind
    return None


def refuse_replacing(
    store: CheckpointStore,
    *paths: Path,
    own: Path | None = None,
    remedy: str = "choose another file (nothing was written)",
) -> None:
    """Refuse to write over ``paths``, files a command writes whole at a name its user gives
    (an export, a report; the first is the one the user named), when one is a file the stages
    of ``store`` keep. Reads only.

    Refused (:class:`OutputConflictError` naming the file, the stage and the store, nothing
    changed) when one is a file the store keeps a stage's checkpoint in
    (:meth:`~common.stores.base.CheckpointStore.owns_file`), when a stage's record names one as
    its output or failed sidecar, and when its history does (a stage that moved to another
    file: what it wrote there is still its records, as a start over it is refused); while
    another process writes one (a running stage's journal lock),
    :class:`~common.errors.CheckpointLockedError` naming it and the pid. ``own`` (and its
    failed sidecar) is the caller's own earlier output, written again: it is refused only as a
    store's file or while another process writes it. ``remedy`` ends the message: the caller's
    way out (the option or setting that names another file).
    """

    def refused(path: Path, stage: str, what: str) -> OutputConflictError:
        it = "it" if path == paths[0] else f"{path}, written with it,"
        return OutputConflictError(
            f"cannot write {paths[0]}: {it} is {what}; {remedy}",
            stage=stage,
            path=path,
        )

    stages = store.list_stages()
    for path in paths:
        owners = [stage for stage in stages if store.owns_file(stage, path)]
        if owners:
            whose = "stage" if len(owners) == 1 else "stages"
            raise refused(
                path,
                owners[0],
                f"a checkpoint file of {whose} {', '.join(map(repr, owners))} in {store.location}",
            )
    others = [path for path in paths if own is None or _one_of([path], own) is None]
    for stage in stages:
        for index, output in enumerate(_named_outputs(store, stage)):
            found = _one_of(others, output)
            if found is not None:
                path, kind = found
                source = "records it" if index == 0 else "history names it"
                raise refused(
                    path,
                    stage,
                    f"the {kind} of stage {stage!r} (its checkpoint in {store.location} {source})",
                )
    with outputs_claimed(paths):
        pass


class Outputs:
    """The journals and done keys of ``stage`` in ``store`` (``path`` names it in messages)."""

    def __init__(
        self,
        store: CheckpointStore,
        stage: str,
        path: Path,
        owner: Ownership,
        ledger: Ledger | None,
    ) -> None:
        self._store = store
        self._stage = stage
        self._path = path
        self._owner = owner
        self._ledger = ledger
        #: Attached journals by name (read by ``update()`` directly).
        self.journals: dict[str, Journal] = {}
        #: The done keys, once loaded (None: not read yet).
        self.keys: KeySet | None = None
        #: True once the journals are cut back to the record's committed lengths.
        self.cut = False

    # Attaching ---------------------------------------------------------------------------------

    def attach(self, name: str, path: Path | str, state: CheckpointState) -> Journal:
        """Attach journal ``name`` at ``path`` (the same one again is a no-op)."""
        validate_stage_name(name)  # journal names follow the stage names' rules
        if name in self.journals:
            existing = self.journals[name]
            if existing.path != Path(path):
                raise CheckpointError(
                    f"journal {name!r} of stage {self._stage!r} is already {existing.path}",
                    stage=self._stage,
                    path=self._path,
                )
            return existing
        journal = Journal(name, path)
        if self._owner.held and self.cut:
            try:
                journal.recover(state.journals.get(name))
            except BaseException:
                journal.close()
                raise
        else:
            journal.adopt(state.journals.get(name))
        self.journals[name] = journal
        return journal

    def attach_output(
        self, path: Path, failed_path: Path | str | None, state: CheckpointState
    ) -> Journal:
        """Attach the stage's output and its ``.failed.jsonl`` sidecar; the output journal.

        Refused (:class:`OutputConflictError`, nothing changed) when another stage in the
        store records either file as its output or sidecar, and, once the journals are cut
        back, when the record's committed records are in another output file.
        """
        failed = Path(failed_path) if failed_path is not None else failed_sidecar_path(path)
        self.refuse_shared_output(path, failed)
        if self._owner.held and self.cut:
            self._refuse_a_changed_output(state, path)
        journal = self.attach(OUTPUT_JOURNAL, path, state)
        self.attach(FAILED_JOURNAL, failed, state)
        if not state.journals.get(OUTPUT_JOURNAL):
            state.output_file = os.path.abspath(path)
        return journal

    def refuse_shared_output(self, *paths: Path) -> None:
        """Refuse files another stage of the store records as its output or failed sidecar.

        Two stages writing one file destroy each other's records: the second one's fresh
        start truncates what the first committed. Read-only (the other records are only
        read); an unreadable record is passed over (its own stage reports it). The lock
        each journal holds on its file refuses the same while the other stage runs.

        A file the store keeps a checkpoint in (this stage's or another's: its record, backup,
        lock, journals, snapshots) is refused too: the next save renames the record over it,
        or cuts a journal back, and the records written there are gone.
        """
        for path in paths:
            if Path(path).is_dir():  # else "cannot prepare journal data: Is a directory"
                raise CheckpointError(
                    f"stage {self._stage!r}: output {path} is a directory, not a JSON Lines "
                    f"file (nothing was changed)",
                    stage=self._stage,
                    path=path,
                )
        stages = self._store.list_stages()
        for path in paths:
            owners = [
                stage
                for stage in dict.fromkeys([self._stage, *stages])
                if self._store.owns_file(stage, path)
            ]
            if owners:
                whose = "its own" if owners[0] == self._stage else f"stage {owners[0]!r}'s"
                raise OutputConflictError(
                    f"stage {self._stage!r} cannot write {path}: it is {whose} checkpoint file "
                    f"in {self._store.location}; choose an output file outside the checkpoints "
                    f"(nothing was changed)",
                    stage=self._stage,
                    path=path,
                )
        for other in stages:
            if other == self._stage:
                continue
            recorded = recorded_output(self._store, other)
            found = _one_of(paths, recorded) if recorded is not None else None
            if found is not None:
                path, kind = found
                raise OutputConflictError(
                    f"stage {self._stage!r} cannot write {path}: stage {other!r} in "
                    f"{self._store.location} records it as its {kind}; give each stage an "
                    f"output file of its own (nothing was changed)",
                    stage=self._stage,
                    path=path,
                )

    def _refuse_a_changed_output(self, state: CheckpointState, path: Path) -> None:
        """Refuse to resume into ``path`` when the record's committed records are elsewhere."""
        recorded = state.output_file
        if (
            recorded is None
            or not state.journals.get(OUTPUT_JOURNAL)
            or os.path.realpath(recorded) == os.path.realpath(path)
        ):
            return
        raise OutputConflictError(
            f"stage {self._stage!r}: the checkpoint's output is {recorded}, this run names "
            f"{path}; pass the same one, or start fresh (nothing was changed)",
            stage=self._stage,
            path=path,
        )

    def refuse_another_completed_output(
        self, state: CheckpointState, output_file: Path | str | None
    ) -> None:
        """Refuse "nothing to do" to a run that names another output (``output_file``, else the
        attached one) than the one the completed stage wrote: it would find none of the
        records there (as a resume naming another output is refused, above)."""
        journal = self.journals.get(OUTPUT_JOURNAL)
        named = output_file if output_file is not None else journal.path if journal else None
        recorded = state.output_file
        if (
            named is None
            or recorded is None
            or os.path.realpath(recorded) == os.path.realpath(named)
        ):
            return
        raise OutputConflictError(
            f"stage {self._stage!r} completed with its records in {recorded}; this run names "
            f"{named}, which holds none of them: pass the same one, or start fresh to write "
            f"{named} (fresh=True, --fresh) (nothing was changed)",
            stage=self._stage,
            path=named,
        )

    def refuse_foreign_output(self, output: Path, *, fresh: bool) -> None:
        """Refuse an output file named to a start with no journal attached to it (the caller
        writes it by other means, as the work-queue export renames a new file over it, or
        attaches it after the start) by the rules an attached output's start follows.

        Refused when another stage of the store records the file or its failed sidecar
        (:class:`OutputConflictError`), while another process writes one of them
        (:class:`~common.errors.CheckpointLockedError` naming it and the pid) and, unless
        ``fresh``, when one holds bytes this checkpoint never wrote
        (:class:`OutputConflictError`). Changes nothing (each lock is let go at once).
        """
        files = [output, failed_sidecar_path(output)]
        self.refuse_shared_output(*files)
        with outputs_claimed([output]):
            if not fresh:
                self._refuse_files_never_written(output, files)

    def _refuse_files_never_written(self, output: Path, files: Iterable[Path]) -> None:
        """Refuse to empty or replace ``files`` (the output ``output`` and its failed sidecar,
        those the record commits no bytes to) when one holds records this checkpoint never
        wrote.

        Bytes in such a file are the stage's own when its record on disk, or a snapshot in its
        history, names ``output`` as its output (a crash before a save counted them; a
        ``reset``, which keeps the journals until the next start); otherwise they are another
        checkpoint's (a stage in another checkpoint directory that finished and let go of the
        file's lock, a stage of this one that has since moved to another file) or the user's,
        and a start is refused with nothing changed. ``fresh=True`` overwrites them.
        """
        strangers = [path for path in files if _holds_bytes(path)]
        if not strangers or _has_written(self._store, self._stage, output):
            return
        path = strangers[0]
        writer = next(
            (
                other
                for other in self._store.list_stages()
                if other != self._stage and _has_written(self._store, other, output)
            ),
            None,
        )
        whose = (
            f"stage {writer!r} in {self._store.location} wrote it"
            if writer is not None
            else "another checkpoint's output, or a file of yours"
        )
        raise OutputConflictError(
            f"stage {self._stage!r} cannot start on {path}: it holds "
            f"{path.stat().st_size} bytes its checkpoint ({self._store.describe(self._stage)}) "
            f"never wrote ({whose}); delete it or move it aside, choose another output file, "
            f"or start fresh to overwrite it (fresh=True, --fresh) (nothing was changed)",
            stage=self._stage,
            path=path,
        )

    def encode_records(self, record: Any, failed_record: Any) -> tuple[bytes | None, bytes | None]:
        """An ``update(record=..., failed_record=...)``'s lines, encoded before the update
        changes anything; refused with no output attached for them (``CheckpointError``),
        when one is not a mapping (``TypeError``: every reader of a stage output expects one
        JSON object a line) or when JSON cannot encode it (``TypeError``/``ValueError``),
        each naming the stage."""
        if (record is not None and OUTPUT_JOURNAL not in self.journals) or (
            failed_record is not None and FAILED_JOURNAL not in self.journals
        ):
            raise CheckpointError(
                f"stage {self._stage!r}: update(record=...) needs attach_output() first",
                stage=self._stage,
                path=self._path,
            )
        return (
            None if record is None else self._encode("record", record),
            None if failed_record is None else self._encode("failed_record", failed_record),
        )

    def _encode(self, name: str, value: Any) -> bytes:
        """One record's line, or the error naming the stage and saying nothing changed."""
        if value.__class__ is not dict:
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"stage {self._stage!r}: update({name}=...) must be a mapping (one JSON "
                    f"object a line), not {type(value).__name__} ({shown(value)}); nothing "
                    f"was changed"
                )
            value = dict(value)
        try:
            return encode_record(value)
        except (TypeError, ValueError, RecursionError) as exc:
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(
                f"stage {self._stage!r}: update({name}=...) cannot be written as JSON ({exc}); "
                f"nothing was changed"
            ) from None

    # Done keys ---------------------------------------------------------------------------------

    def keys_journal(self, state: CheckpointState) -> Journal:
        """The keys journal: attached (and cut back) for a writer, read-only otherwise."""
        journal = self.journals.get(KEYS_JOURNAL)
        if journal is not None:
            return journal
        journal = Journal(KEYS_JOURNAL, self._store.journal_path(self._stage, KEYS_JOURNAL))
        committed = state.journals.get(KEYS_JOURNAL)
        if self._owner.held:
            if self.cut:
                journal.recover(committed)
            else:
                journal.adopt(committed)
            self.journals[KEYS_JOURNAL] = journal
        else:
            journal.adopt(committed)
        return journal

    def keys_journal_if_present(self, state: CheckpointState) -> None:
        """Attach the keys journal when the record or the disk has one."""
        if (
            state.journals.get(KEYS_JOURNAL)
            or self._store.journal_path(self._stage, KEYS_JOURNAL).exists()
        ):
            self.keys_journal(state)

    def drop_vanished_keys_journal(self, state: CheckpointState) -> None:
        """Detach the keys journal when its file is gone and the record claims none of it.

        A store switch removes the old store's keys journal after the new writer saw it on
        disk (:meth:`keys_journal_if_present`); kept, the start would make it again, empty,
        for a store that may keep its keys elsewhere. A reset removes the stage's own: kept,
        its keys would go on into the removed file. One that does not keep its keys elsewhere
        attaches it again when it first writes a key.
        """
        journal = self.journals.get(KEYS_JOURNAL)
        if journal is None or state.journals.get(KEYS_JOURNAL) or journal.path.exists():
            return
        del self.journals[KEYS_JOURNAL]
        journal.close()

    def load_keys(self, state: CheckpointState) -> KeySet:
        """The done keys: the store's own table, or the keys journal read once into memory."""
        if self.keys is not None:
            return self.keys
        keys = self._store.key_set(self._stage)
        if keys is None:
            keys = MemoryKeySet(self.keys_journal(state).load_committed())
        self.keys = keys
        return keys

    # Becoming the writer -----------------------------------------------------------------------

    def adopt(self, state: CheckpointState) -> None:
        """The checkpoint just became the writer over ``state``: read (not cut) the journals'
        committed lengths, and take the done keys as the writer."""
        self.cut = False
        for journal in self.journals.values():
            journal.adopt(state.journals.get(journal.name))
        if self.keys is not None and KEYS_JOURNAL not in self.journals:
            self.keys = None  # read before we were the writer: reload as the writer
        self.keys_journal_if_present(state)
        keys = self._store.key_set(self._stage)
        if keys is not None:
            self.keys = keys

    def claim(self) -> None:
        """Lock every journal's file before anything is written to any of them.

        Raises :class:`~common.errors.CheckpointLockedError` while another process writes
        one (another stage with the same output, another run of this one), having changed
        nothing and kept none of the locks taken here. :meth:`cut_back` and a reset (the
        lifecycle's, before it records anything) call it first.
        """
        claimed: list[Journal] = []
        try:
            for journal in self.journals.values():
                if journal.claim():
                    claimed.append(journal)
        except BaseException:
            for journal in claimed:
                journal.close()
            raise

    def cut_back(self, state: CheckpointState, *, fresh: bool = False) -> None:
        """Cut every journal (and the store's done keys) back to what ``state`` commits.

        Only once a start has passed every guard (input, config, lock) and its input
        validated: a refused start writes nothing. Every refusal of its own (another
        output, a journal another process writes, committed records missing, an output file
        this checkpoint never wrote unless ``fresh``) comes before the first journal is cut.
        """
        if self.cut:
            return
        output = self.journals.get(OUTPUT_JOURNAL)
        if output is not None:
            self._refuse_a_changed_output(state, output.path)
        self.claim()
        for journal in self.journals.values():
            journal.check(state.journals.get(journal.name))
        if output is not None and not fresh:
            self._refuse_files_never_written(
                output.path,
                [
                    journal.path
                    for journal in (output, self.journals.get(FAILED_JOURNAL))
                    if journal is not None and state.journals.get(journal.name) is None
                ],
            )
        for journal in self.journals.values():
            journal.recover(state.journals.get(journal.name))
        if output is not None:
            state.output_file = os.path.abspath(output.path)
        keys = self.keys
        if keys is not None and keys.committed_by_store:
            keys.recover(state.keys_done)  # keys the record does not count are dropped
        self.cut = True

    # Saving --------------------------------------------------------------------------------------

    def buffered_bytes(self) -> int:
        """The most record bytes any journal holds for the next save."""
        return max((journal.pending_bytes for journal in self.journals.values()), default=0)

    def take_pending(
        self, state: CheckpointState
    ) -> tuple[list[JournalWrite], StagedRows, KeySet | None]:
        """A snapshot's part: the new journal bytes, the rows the store commits with the record
        (new keys, ledger rows) and the key set; ``state.journals`` and ``state.keys_done``
        move to the lengths and count this save commits."""
        writes: list[JournalWrite] = []
        rows = StagedRows()
        keys = self.keys
        if keys is not None:
            new_keys = keys.take_pending()
            if new_keys:
                if keys.committed_by_store:
                    rows.keys = new_keys  # committed in the record's own transaction
                else:
                    keys_journal = self.journals.get(KEYS_JOURNAL) or self.keys_journal(state)
                    for key in new_keys:
                        keys_journal.append(key)
                state.keys_done = len(keys)
        if self._ledger is not None:
            rows.ledger = self._ledger.take_pending()
        for journal in self.journals.values():
            data, offset = journal.take_pending()
            state.journals[journal.name] = offset
            if data:
                writes.append((journal, data, offset))
        return writes, rows, keys

    # Reset and close -----------------------------------------------------------------------------

    def reset(self, old: CheckpointState, commit_empty_record: Callable[[], None]) -> None:
        """Empty the journals, the done keys and the ledger of a stage starting over.

        When ``old`` (the record being forgotten) claims journal bytes or keys,
        ``commit_empty_record()`` first puts a record on disk that claims none: a crash in
        between would otherwise leave a record whose committed records are gone, which no
        later run could resume or start over from.
        """
        keys_path = self._store.journal_path(self._stage, KEYS_JOURNAL)
        keys_on_disk = KEYS_JOURNAL not in self.journals and keys_path.exists()
        if (
            old.journals
            or old.keys_done
            or keys_on_disk
            or any(j.committed for j in self.journals.values())
        ):
            commit_empty_record()
        keys = self._store.key_set(self._stage)  # after the flush: no save adds keys any more
        if keys is not None:
            keys.clear()
        self.keys = keys if keys is not None else MemoryKeySet()
        if self._ledger is not None:
            self._ledger.clear()
        for journal in self.journals.values():
            journal.recover(None)
        if keys_on_disk:
            leftover = Journal(KEYS_JOURNAL, keys_path)
            try:
                leftover.recover(None)
            finally:
                leftover.close()
        self.cut = True

    def close(self) -> None:
        """Close every journal's file."""
        for journal in self.journals.values():
            journal.close()
