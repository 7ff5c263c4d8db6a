"""A logging filter for the terminal commands: each distinct message once."""

from __future__ import annotations

import logging

__all__ = ["SayOnce"]


class SayOnce(logging.Filter):
    """Pass each distinct (logger, message) once.

    The commands read checkpoints again and again (a bar refreshed, ``watch``, a check before a
    stage starts); a damaged record restored from its backup is news the first time only.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True
