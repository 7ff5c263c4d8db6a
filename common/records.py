"""Reading stage records back: one JSON object per line, each with a ``url``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["iter_numbered_records", "iter_records", "unique_urls", "validate_records"]


def iter_records(path: Path | str, *, kind: str = "stage") -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines file; a line that is not an object with a ``url`` is a
    ``ValueError`` naming the file, the line number and ``kind`` of record expected."""
    for _, record in iter_numbered_records(path, kind=kind):
        yield record


def iter_numbered_records(
    path: Path | str, *, kind: str = "stage"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`iter_records`, with each record's line number (for the caller's errors)."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("url"), str):
                    raise TypeError("expected an object with a 'url' string")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a {kind} record ({exc})") from None
            yield number, record


def validate_records(path: Path | str, *, kind: str = "stage") -> int:
    """Read the whole file and return its record count; the first bad line is a
    ``ValueError`` naming ``FILE:LINE`` (what an engine ``input_validator`` raises)."""
    count = 0
    for _ in iter_numbered_records(path, kind=kind):
        count += 1
    return count


def unique_urls(records: Iterator[dict[str, Any]]) -> list[str]:
    """The records' URLs in order, each once."""
    return list(dict.fromkeys(record["url"] for record in records))
