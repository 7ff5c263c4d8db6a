"""Content hashes that guard a resume: the input file's and the configuration's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["config_hash", "file_sha256"]


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's content, streamed (constant memory, fast on multi-GB files)."""
    with Path(path).open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of a configuration's canonical JSON (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
