"""Argument types shared by every command line in ``tools`` (argparse ``type=`` callables).

Each raises ``argparse.ArgumentTypeError`` with the reason, so argparse exits 2 with
``error: argument --NAME: REASON`` before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["fraction", "non_negative_float", "non_negative_int", "positive_float", "positive_int"]


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = non_negative_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(upper: float) -> Callable[[str], float]:
    """A number between 0 and ``upper`` inclusive."""

    def parse(text: str) -> float:
        value = non_negative_float(text)
        if value > upper:
            raise argparse.ArgumentTypeError(f"must be between 0 and {upper:g}, got {text}")
        return value

    return parse
