"""``export-data``: the stage outputs (and failed sidecars) as CSV and Parquet files.

One row per committed record. Columns are the union of the records' keys, in the order they
first appear. In CSV, lists and objects are JSON text; in Parquet, a column keeps its type
(integers, floats, booleans, strings, lists of strings) when every value has it, and is JSON
text otherwise. Files are written whole or not at all (temporary file, then rename), mode 0600;
none is written when one of them would replace a stage's output or checkpoint file.
Parquet through pyarrow: a columnar file a dataframe library opens with its types intact.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from common.io.atomic import FILE_MODE, ensure_private_dir
from common.io.paths import directory_problem
from common.outputs import refuse_replacing
from tools.checkpoint_cli.base import (
    CliError,
    cannot_write,
    count,
    open_manager,
    out,
    say_unreadable,
)
from tools.checkpoint_cli.data import data_dir_of, read_records, recorded_outputs

__all__ = ["FORMATS", "cmd_export_data", "write_csv", "write_parquet"]

FORMATS = ("csv", "parquet")
_BATCH = 5000


@dataclass
class Columns:
    """Column names in first-seen order, and the kinds of value each column holds."""

    names: dict[str, set[str]] = field(default_factory=dict)
    rows: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.rows += 1
        for key, value in record.items():
            self.names.setdefault(key, set()).add(_kind(value))

    def arrow_kind(self, name: str) -> str:
        kinds = self.names[name] - {"null"}
        if kinds == {"int", "float"}:
            return "float"
        if len(kinds) == 1:
            return next(iter(kinds))
        return "json" if kinds else "str"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "json"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "list"
    return "json"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _temp_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")


@contextlib.contextmanager
def _atomic(target: Path, *, binary: bool) -> Iterator[Any]:
    """A new private file beside ``target`` that replaces it only when fully written."""
    ensure_private_dir(target.parent)
    temp = _temp_of(target)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        handle: IO[Any] = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")
        )
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def write_csv(records: Iterator[dict[str, Any]], columns: Columns, target: Path) -> int:
    """Write ``records`` as CSV with a header row; returns the rows written."""
    names = list(columns.names)
    rows = 0
    with _atomic(target, binary=False) as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for record in records:
            writer.writerow([_text(record.get(name)) for name in names])
            rows += 1
    return rows


def write_parquet(records: Iterator[dict[str, Any]], columns: Columns, target: Path) -> int:
    """Write ``records`` as one Parquet file (in batches: bounded memory); returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "str": pa.string(),
        "list": pa.list_(pa.string()),
        "json": pa.string(),
    }
    kinds = {name: columns.arrow_kind(name) for name in columns.names}
    schema = pa.schema([(name, types[kind]) for name, kind in kinds.items()])

    def cell(name: str, value: Any) -> Any:
        if value is None:
            return None
        kind = kinds[name]
        if kind == "json":
            return _text(value)
        if kind == "float":
            return float(value)
        return value

    rows = 0
    with _atomic(target, binary=True) as handle, pq.ParquetWriter(handle, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append({name: cell(name, record.get(name)) for name in kinds})
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                rows += len(batch)
                batch = []
        if batch or rows == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
    return rows


def cmd_export_data(args: argparse.Namespace) -> int:
    """``export-data``: every stage's output (and failed sidecar) to CSV and/or Parquet."""
    manager = open_manager(args)
    data_dir = data_dir_of(args)
    target_dir = Path(args.output_dir) if args.output_dir else data_dir / "exports"
    problem = directory_problem(target_dir, create=True)  # a missing one is created
    if problem is not None:
        option = "--output-dir" if args.output_dir else "the export directory"
        raise CliError(f"{option}: {problem} (nothing was written)")
    formats = args.format or list(FORMATS)
    outputs, unreadable = recorded_outputs(manager, data_dir, args.stage)
    if not outputs:
        out(f"no stage outputs recorded in {manager.checkpoint_dir}; nothing exported")
        return say_unreadable(unreadable)
    for output in outputs:  # every file this run may write, before the first is written
        for suffix in ("", ".failed"):
            for fmt in formats:
                refuse_replacing(manager.store, target_dir / f"{output.stage}{suffix}.{fmt}")
    written = 0
    for output in outputs:
        for suffix, path, committed in (
            ("", output.output, output.committed),
            (".failed", output.failed, output.failed_committed),
        ):
            columns = Columns()
            try:
                for record in read_records(path, committed):
                    columns.add(record)
                if suffix and columns.rows == 0:
                    continue  # no failed items: no empty sidecar export
                for fmt in formats:
                    target = target_dir / f"{output.stage}{suffix}.{fmt}"
                    writer = write_csv if fmt == "csv" else write_parquet
                    try:
                        rows = writer(read_records(path, committed), columns, target)
                    except OSError as exc:
                        ours = (str(target_dir), str(_temp_of(target)), str(target))
                        if exc.filename is not None and str(exc.filename) not in ours:
                            raise  # reading the stage output: that file's name says it
                        raise cannot_write(None, target, exc) from None
                    out(f"wrote {target} ({count(rows, 'row')} from {path})")
                    written += 1
            except ValueError as exc:
                raise CliError(str(exc)) from None
    out(f"exported {count(len(outputs), 'stage')} into {count(written, 'file')} in {target_dir}")
    return say_unreadable(unreadable)
