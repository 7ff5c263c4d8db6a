"""Why some of stage 3's input records were not fetched, in the words the summaries print.

Light on imports: the orchestrator's summary uses it without loading the enrichment stage.
"""

from __future__ import annotations

__all__ = ["not_fetched_reasons"]


def not_fetched_reasons(left_out: int, repeats: int, *, unit: str = "", after: str) -> str:
    """Why input records were not fetched, zero counts left out: ``"2 input records not HTML
    pages (HTTP errors, other types), 1 alias of a page listed before"`` for ``unit="input
    record"`` and ``after="listed before"`` (``""`` when both counts are zero)."""
    reasons = []
    if left_out:
        noun = f"{unit}{'' if left_out == 1 else 's'} " if unit else ""
        pages = "not an HTML page" if left_out == 1 else "not HTML pages"
        reasons.append(f"{left_out:,} {noun}{pages} (HTTP errors, other types)")
    if repeats:
        aliases = "alias of a page" if repeats == 1 else "aliases of pages"
        reasons.append(f"{repeats:,} {aliases} {after}")
    return ", ".join(reasons)
