"""The ``CHECKPOINT_*`` settings the Scrapy components read, and a misspelt one named.

Scrapy ignores a setting nobody reads without a word, so ``CHECKPOINT_FRESHH=True`` resumed a
crawl its user meant to start over and ``CHECKPOINT_ENABLE=True`` checkpointed nothing. The
runtime refuses a start with such a name (:func:`unknown_settings`); a component switched off
says it in the reason Scrapy logs (:func:`disabled_reason`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["SETTINGS", "disabled_reason", "unknown_settings"]

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


def unknown_settings(settings: Iterable[str]) -> str | None:
    """What is wrong with the ``CHECKPOINT_*`` names among ``settings`` that no component
    reads (each with the known name it is closest to), or None when there is none."""
    unknown = sorted(
        name for name in settings if name.startswith("CHECKPOINT_") and name not in SETTINGS
    )
    if not unknown:
        return None
    prefix = len("CHECKPOINT_")  # shared by every name: compared, it would match anything
    known = {name[prefix:]: name for name in SETTINGS}
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name[prefix:], known, n=1)
        described.append(f"{name} (did you mean {known[close[0]]}?)" if close else name)
    noun = "setting" if len(unknown) == 1 else "settings"
    return f"unknown checkpoint {noun} {', '.join(described)}"


def disabled_reason(settings: Iterable[str]) -> str:
    """Why a component is not configured (Scrapy logs it as a WARNING): the switch is off,
    and, when a ``CHECKPOINT_*`` name is misspelt (``CHECKPOINT_ENABLE``), which."""
    problem = unknown_settings(settings)
    return "CHECKPOINT_ENABLED is off" + (f" ({problem})" if problem else "")
