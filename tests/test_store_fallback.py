"""The main/backup fallback both stores share: a damaged copy falls back, an unreadable one stops."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from common import EnhancedCheckpoint
from common.errors import (
    CheckpointCorruptError,
    CheckpointSchemaError,
    CheckpointUnreadableError,
)
from common.state import parse_checkpoint
from common.stores import JsonFileStore, SqliteStore
from common.stores.base import CheckpointStore, load_first_readable


def _parse(value: Any, path: Path) -> Any:
    if not isinstance(value, dict) or "n" not in value:
        raise CheckpointSchemaError(f"{path}: not a record", path=path)
    return value["n"]


def _corrupt(path: Path) -> Any:
    raise CheckpointCorruptError(f"{path}: invalid JSON", path=path)


def _eacces(path: Path) -> Any:
    raise PermissionError(errno.EACCES, "Permission denied", str(path))


def test_first_readable_copy_wins_and_says_whether_it_was_the_backup() -> None:
    main, backup = Path("main"), Path("backup")
    loaded = load_first_readable(
        "s",
        [(main, lambda: {"n": 1}), (backup, lambda: {"n": 0})],
        _parse,
        error_path=main,
        advice="",
    )
    assert loaded is not None and (loaded.value, loaded.restored_from_backup) == (1, False)
    loaded = load_first_readable(
        "s",
        [(main, lambda: _corrupt(main)), (backup, lambda: {"n": 0})],
        _parse,
        error_path=main,
        advice="",
    )
    assert loaded is not None and (loaded.value, loaded.source) == (0, backup)
    assert loaded.restored_from_backup

    def absent() -> Any:
        raise FileNotFoundError("main")

    assert load_first_readable("s", [(main, absent)], _parse, error_path=main, advice="") is None
    with pytest.raises(CheckpointSchemaError):  # a file holding `null` exists: it is not absent
        load_first_readable("s", [(main, lambda: None)], _parse, error_path=main, advice="")


def test_no_readable_copy_names_every_copy_and_the_advice() -> None:
    main, backup = Path("main"), Path("backup")
    with pytest.raises(CheckpointSchemaError, match=r"main: not a record; backup: not a .*Fix it"):
        load_first_readable(
            "s",
            [(main, lambda: {}), (backup, lambda: [])],
            _parse,
            error_path=main,
            advice="Fix it.",
        )
    with pytest.raises(CheckpointCorruptError) as caught:
        load_first_readable(
            "s",
            [(main, lambda: _corrupt(main)), (backup, lambda: {})],
            _parse,
            error_path=main,
            advice="",
        )
    assert not isinstance(caught.value, CheckpointSchemaError)


def test_a_copy_that_cannot_be_read_stops_the_load_without_trying_the_backup() -> None:
    main = Path("main")
    tried: list[str] = []

    def backup() -> Any:
        tried.append("backup")
        return {"n": 0}

    with pytest.raises(CheckpointUnreadableError, match="cannot read main: permission denied"):
        load_first_readable(
            "s",
            [(main, lambda: _eacces(main)), (Path("b"), backup)],
            _parse,
            error_path=main,
            advice="",
        )
    assert tried == []


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def test_json_store_permission_denied_keeps_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(2):  # two saves: a main file and a backup
        checkpoint = EnhancedCheckpoint(tmp_path / "s.json")
        checkpoint.start("s", total_items=5)
        checkpoint.update(processed=1, successful=1, index=n)
        checkpoint.pause()
        checkpoint.close()
    before = _files(tmp_path)
    main = tmp_path / "s.json"
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == main:
            _eacces(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(CheckpointUnreadableError, match=f"cannot read {main}: permission denied"):
        EnhancedCheckpoint(main)
    store = JsonFileStore(tmp_path)
    with pytest.raises(CheckpointUnreadableError):
        store.load("s", lambda d, p: parse_checkpoint(d, path=p, stage="s"))
    monkeypatch.undo()
    assert _files(tmp_path) == before
    # Readable again: the main file is used, as if nothing had happened.
    loaded = store.load("s", lambda d, p: parse_checkpoint(d, path=p, stage="s"))
    assert loaded is not None and not loaded.restored_from_backup


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_both_stores_fall_back_to_the_backup_of_a_damaged_record(tmp_path: Path, kind: str) -> None:
    store: CheckpointStore = JsonFileStore(tmp_path) if kind == "json" else SqliteStore(tmp_path)
    first = {"n": 1}
    store.save("s", first)
    store.save("s", {"n": 2})
    if kind == "json":
        (tmp_path / "s.json").write_bytes(b"{torn")
    else:
        assert isinstance(store, SqliteStore)
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE records SET body = '{torn' WHERE stage = 's'")
    loaded = store.load("s", _parse)
    assert loaded is not None and loaded.value == 1 and loaded.restored_from_backup
    store.close()
    assert json.dumps(first)  # the fixture's record, for the reader


def test_a_load_logs_a_damaged_copy_only_when_a_backup_takes_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seed 003's "Failed to load checkpoint" line belongs to a restore from backup; when no
    copy parses, the error raised names every copy and the caller reports it once (the
    orchestrator printed both copies' problems seven times before its one error line)."""
    main, backup = Path("main"), Path("backup")
    caplog.set_level("INFO", logger="common.stores")
    with pytest.raises(CheckpointCorruptError):
        load_first_readable(
            "s",
            [(main, lambda: _corrupt(main)), (backup, lambda: _corrupt(backup))],
            _parse,
            error_path=main,
            advice="",
        )
    assert caplog.records == []
    loaded = load_first_readable(
        "s",
        [(main, lambda: _corrupt(main)), (backup, lambda: {"n": 0})],
        _parse,
        error_path=main,
        advice="",
    )
    assert loaded is not None and loaded.restored_from_backup
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "Failed to load checkpoint: main: invalid JSON")
    ]
