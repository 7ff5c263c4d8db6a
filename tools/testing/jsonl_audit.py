"""What a stage's JSON Lines output holds, for the tests and tools that compare runs.

Unlike :func:`common.records.iter_records`, which stops at the first bad line, an audit reads
the whole file and counts what is wrong: a last line without its newline (torn), lines that are
not a record with a ``url``, and URLs written more than once. One auditor for the crawl, kill,
load and chaos tests and benchmarks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileAudit", "audit_jsonl"]


@dataclass
class FileAudit:
    """One file's records by URL, and what is wrong with it."""

    path: Path
    exists: bool = True
    urls: Counter[str] = field(default_factory=Counter)
    """How often each URL was written, in the order of first appearance."""
    torn: bool = False
    """The file ends mid-line (that last part is not counted as a line)."""
    bad_lines: int = 0
    """Complete lines that are not JSON objects with a string ``url``."""

    @property
    def lines(self) -> int:
        """Records (complete lines with a URL)."""
        return sum(self.urls.values())

    @property
    def url_set(self) -> set[str]:
        return set(self.urls)

    @property
    def doubled(self) -> int:
        """Extra copies: a URL written three times counts two."""
        return sum(count - 1 for count in self.urls.values() if count > 1)

    @property
    def doubled_urls(self) -> list[str]:
        """The URLs written more than once, sorted."""
        return sorted(url for url, count in self.urls.items() if count > 1)


def audit_jsonl(path: Path, key: Callable[[str], str] = str) -> FileAudit:
    """Read ``path`` (a missing file is an empty one); ``key`` maps each URL before counting."""
    audit = FileAudit(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        audit.exists = False
        return audit
    lines = data.split(b"\n")
    if lines[-1]:
        audit.torn = True
    for line in lines[:-1]:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            audit.bad_lines += 1
            continue
        url = record.get("url") if isinstance(record, dict) else None
        if not isinstance(url, str):
            audit.bad_lines += 1
            continue
        audit.urls[key(url)] += 1
    return audit
