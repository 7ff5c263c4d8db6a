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
from typing import NoReturn

__all__ = ["item_index", "item_text", "negative_index", "shown"]


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


def item_text(stage: str, call: str, name: str, value: object) -> str:
    """``value`` (the ``key`` or ``part`` named ``name``) as a plain ``str``, or the
    ``TypeError`` naming ``stage`` and ``call``."""
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(
        f"stage {stage!r}: {call} {name} must be a string, not {type(value).__name__} "
        f"({shown(value)}); nothing was changed"
    )
