"""``python -m tools.orchestrator``: run the pipeline's stages end to end (see :mod:`.app`)."""

from __future__ import annotations

from tools.orchestrator.app import main

__all__ = ["main"]
