"""The slow paths of the per-item arguments a user's code passes to the engine.

``update()``, ``should_skip()``, ``mark_done()`` and ``set_position()`` take an item's
``index`` (an int), ``key`` and ``part`` (strings) from the user's own code. Whatever reaches
the checkpoint's state is saved, and a value the record's schema refuses at the next load (a
float index, a tuple key) would leave a stage that cannot resume: so each is refused at the
call, with a ``TypeError`` (or, for a negative index, a ``ValueError``) naming the stage, the
call and the value, before anything changes.

The hot paths test only ``value.__class__ is not int`` (or ``str``) inline and call in here
for anything else, so an exact int or str costs one attribute load and one comparison. What
``operator.index`` accepts (``bool``, numpy integers, an ``int`` subclass) is converted to a
plain ``int``; a ``str`` subclass to a plain ``str``.
"""

from __future__ import annotations

import operator
from typing import Any, NoReturn, TypedDict

__all__ = [
    "UpdateArguments",
    "check_update_arguments",
    "counts_not_integers",
    "inconsistent_counts",
    "item_attempts",
    "item_index",
    "item_text",
    "negative_index",
    "shown",
]


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def item_index(stage: str, call: str, value: object) -> int:
    """``value`` as a plain ``int`` index >= 0, or the error naming ``stage`` and ``call``."""
    try:
        index = int(operator.index(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"stage {stage!r}: {call} index must be an integer, not {type(value).__name__} "
            f"({shown(value)}); nothing was changed"
        ) from None
    if index < 0:
        negative_index(stage, call, index)
    return index


def negative_index(stage: str, call: str, index: int) -> NoReturn:
    """Refuse a negative ``index`` (a ``ValueError`` naming ``stage`` and ``call``)."""
    raise ValueError(
        f"stage {stage!r}: {call} index must be >= 0, got {index}; nothing was changed"
    )


def item_attempts(stage: str, call: str, value: object) -> int:
    """``value`` (an item's ``attempts``) as a plain ``int`` >= 0, or the error naming
    ``stage`` and ``call`` (a ``TypeError``; a negative count is a ``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"stage {stage!r}: {call} attempts must be an integer, not {type(value).__name__} "
            f"({shown(value)}); nothing was changed"
        )
    if value < 0:
        raise ValueError(
            f"stage {stage!r}: {call} attempts must be >= 0, got {value}; nothing was changed"
        )
    return int(value)


def item_text(stage: str, call: str, name: str, value: object) -> str:
    """``value`` (the ``key`` or ``part`` named ``name``) as a plain ``str``, or the
    ``TypeError`` naming ``stage`` and ``call``."""
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(
        f"stage {stage!r}: {call} {name} must be a string, not {type(value).__name__} "
        f"({shown(value)}); nothing was changed"
    )


def counts_not_integers(
    stage: str, processed: object, successful: object, failed: object, skipped: object
) -> NoReturn:
    """Refuse counts that are not integers (a ``TypeError`` naming ``stage``)."""
    raise TypeError(
        f"stage {stage!r}: update() counts must be integers (processed={processed!r}, "
        f"successful={successful!r}, failed={failed!r}, skipped={skipped!r})"
    )


def inconsistent_counts(
    stage: str, processed: int, successful: int, failed: int, skipped: int
) -> NoReturn:
    """Refuse negative counts, or more successes and failures than items (a ``ValueError``)."""
    raise ValueError(
        f"stage {stage!r}: inconsistent update (processed={processed}, "
        f"successful={successful}, failed={failed}, skipped={skipped}): counts must be "
        f">= 0 and successful + failed <= processed + skipped"
    )


class UpdateArguments(TypedDict):
    """An ``update()``'s arguments, checked (see :func:`check_update_arguments`)."""

    processed: int
    successful: int
    failed: int
    skipped: int
    last_item: str | None
    index: int | None
    key: str | None
    part: str | None
    record: Any
    failed_record: Any
    attempts: int


def check_update_arguments(
    stage: str,
    processed: int = 1,
    successful: int = 0,
    failed: int = 0,
    skipped: int = 0,
    last_item: str | None = None,
    index: int | None = None,
    key: str | None = None,
    part: str | None = None,
    record: Any = None,
    failed_record: Any = None,
    attempts: int = 1,
) -> UpdateArguments:
    """An ``update()``'s arguments checked now, as ``update()`` checks them (the same errors),
    and converted as it converts them, for an update made later (a batch's).

    ``record`` and ``failed_record`` are the checkpoint's to check (they need its outputs).
    """
    try:
        inconsistent = (processed | successful | failed | skipped) < 0
    except TypeError:
        counts_not_integers(stage, processed, successful, failed, skipped)
    if inconsistent or successful + failed > processed + skipped:
        inconsistent_counts(stage, processed, successful, failed, skipped)
    if last_item is not None and last_item.__class__ is not str:
        last_item = item_text(stage, "update()", "last_item", last_item)
    if part is not None and part.__class__ is not str:
        part = item_text(stage, "update()", "part", part)
    if key is not None and key.__class__ is not str:
        key = item_text(stage, "update()", "key", key)
    if attempts.__class__ is not int or attempts < 0:
        attempts = item_attempts(stage, "update()", attempts)
    if index is not None and index.__class__ is not int:
        index = item_index(stage, "update()", index)
    elif index is not None and index < 0:
        negative_index(stage, "update()", index)
    return UpdateArguments(
        processed=int(processed),
        successful=int(successful),
        failed=int(failed),
        skipped=int(skipped),
        last_item=last_item,
        index=index,
        key=key,
        part=part,
        record=record,
        failed_record=failed_record,
        attempts=attempts,
    )
