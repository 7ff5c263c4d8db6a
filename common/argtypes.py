"""Argument types shared by every command line (argparse ``type=`` callables).

In ``common`` so that ``tools`` and ``enrich`` (which may not import ``tools``) use one set.
Each raises ``argparse.ArgumentTypeError`` with the reason, so argparse exits 2 with
``error: argument --NAME: REASON`` before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "count_argument",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "port_number",
    "positive_float",
    "positive_int",
    "seconds_argument",
]


def _integer(text: str, noun: str = "an integer") -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None


def _finite_non_negative(text: str, noun: str, bound: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _at_least_one(_integer(text))


def count_argument(text: str) -> int:
    """A whole number >= 1 (stage 3's ``--concurrency``, ``--per-host``)."""
    return _at_least_one(_integer(text, "a whole number"))


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: any free one); a larger one is refused here, not by bind()."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _finite_non_negative(text, "a number", "a finite number >= 0")


def seconds_argument(text: str) -> float:
    """A finite number of seconds >= 0 (stage 3's ``--delay``)."""
    return _finite_non_negative(text, "a number of seconds", ">= 0 and finite")


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
