"""The checkpoint CLI: ``python tools/checkpoint_manager_cli.py``, ``python -m tools.checkpoint_cli``
or the installed ``checkpoint-manager``. Parser in :mod:`.app`, commands in
:mod:`.commands`, rendering in :mod:`.render`."""

from __future__ import annotations

from tools.checkpoint_cli.app import main

__all__ = ["main"]
