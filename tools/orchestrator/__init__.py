"""``python -m tools.orchestrator``: run the pipeline's stages end to end (see :mod:`.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.orchestrator.app import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    # Lazy: the checkpoint CLI imports the stage table without the orchestrator's runtime.
    if name == "main":
        from tools.orchestrator.app import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
