"""The ``CHECKPOINT_*`` settings the Scrapy components read, and a misspelt one named.

Scrapy ignores a setting nobody reads without a word, so ``CHECKPOINT_FRESHH=True`` resumed a
crawl its user meant to start over and ``CHECKPOINT_ENABLE=True`` checkpointed nothing. A start
with a name close to one that exists is refused (:func:`misspelt_settings`); any other
``CHECKPOINT_*`` name is the project's own (a path it builds ``CHECKPOINT_DIR`` from, its own
extension's setting) and only named in a warning (:func:`unread_settings`). A component switched
off says it in the reason Scrapy logs (:func:`disabled_reason`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Sequence

__all__ = [
    "SETTINGS",
    "disabled_reason",
    "misspelt_settings",
    "unknown_settings",
    "unread_settings",
    "warn_unread",
]

#: Every ``CHECKPOINT_*`` setting the components and the Redis add-on read: another one is a
#: typo (``CHECKPOINT_FRESHH``, ``CHECKPOINT_ENABLE``) that Scrapy would ignore without a word,
#: and the crawl would resume where a fresh start was asked for, or checkpoint nothing.
SETTINGS = frozenset(
    {
        "CHECKPOINT_ENABLED",
        "CHECKPOINT_DIR",
        "CHECKPOINT_STORE",
        "CHECKPOINT_WORKER_ID",
        "CHECKPOINT_LEDGER",
        "CHECKPOINT_STAGE_NAME",
        "CHECKPOINT_AUTO_SAVE_INTERVAL",
        "CHECKPOINT_SAVE_EVERY_SECONDS",
        "CHECKPOINT_MIN_SAVE_INTERVAL",
        "CHECKPOINT_OUTPUT_FILE",
        "CHECKPOINT_INPUT_FILE",
        "CHECKPOINT_CONFIG",
        "CHECKPOINT_IDENTITY_IGNORE",
        "CHECKPOINT_ITEM_KEY",
        "CHECKPOINT_FORCE",
        "CHECKPOINT_FRESH",
        "CHECKPOINT_REFUSED_EXIT_CODE",
        "CHECKPOINT_REDIS_URL",
        "CHECKPOINT_REDIS_PREFIX",
        "CHECKPOINT_REDIS_LEASE_SECONDS",
        "CHECKPOINT_REDIS_PREFETCH",
        "CHECKPOINT_REDIS_POLL_SECONDS",
    }
)


_PREFIX = len("CHECKPOINT_")  # shared by every name: compared, it would match anything


def _unknown(settings: Iterable[str]) -> list[tuple[str, str | None]]:
    """Each ``CHECKPOINT_*`` name among ``settings`` that no component reads, with the known
    name it is closest to (None when it is close to none)."""
    known = {name[_PREFIX:]: name for name in SETTINGS}
    found = []
    for name in sorted(n for n in settings if n.startswith("CHECKPOINT_") and n not in SETTINGS):
        close = difflib.get_close_matches(name[_PREFIX:], known, n=1)
        found.append((name, known[close[0]] if close else None))
    return found


def _describe(names: Sequence[tuple[str, str | None]]) -> str:
    described = [f"{name} (did you mean {close}?)" if close else name for name, close in names]
    noun = "setting" if len(names) == 1 else "settings"
    return f"unknown checkpoint {noun} {', '.join(described)}"


def unknown_settings(settings: Iterable[str]) -> str | None:
    """What is wrong with the ``CHECKPOINT_*`` names among ``settings`` that no component
    reads (each with the known name it is closest to, if any), or None when there is none."""
    unknown = _unknown(settings)
    return _describe(unknown) if unknown else None


def misspelt_settings(settings: Iterable[str]) -> str | None:
    """The ``CHECKPOINT_*`` names no component reads that are close to one that exists
    (``CHECKPOINT_FRESHH``, ``CHECKPOINT_OUTPUT``), each with that name, or None: a start with
    one is refused, as the setting meant would be ignored."""
    misspelt = [(name, close) for name, close in _unknown(settings) if close is not None]
    return _describe(misspelt) if misspelt else None


def unread_settings(settings: Iterable[str]) -> list[str]:
    """The ``CHECKPOINT_*`` names no component reads and close to none that exists
    (``CHECKPOINT_ROOT``): the project's own, named in a warning, not refused."""
    return [name for name, close in _unknown(settings) if close is None]


def warn_unread(settings: Iterable[str], logger: logging.Logger) -> None:
    """Log one warning naming :func:`unread_settings`, if there are any."""
    unread = unread_settings(settings)
    if unread:
        logger.warning(
            "%s: no checkpoint component reads %s (close to none of their settings): "
            "ignored; the README's settings table lists those that exist",
            ", ".join(unread),
            "it" if len(unread) == 1 else "them",
        )


def disabled_reason(settings: Iterable[str]) -> str:
    """Why a component is not configured (Scrapy logs it as a WARNING): the switch is off,
    and, when a ``CHECKPOINT_*`` name is misspelt (``CHECKPOINT_ENABLE``), which."""
    problem = unknown_settings(settings)
    return "CHECKPOINT_ENABLED is off" + (f" ({problem})" if problem else "")
