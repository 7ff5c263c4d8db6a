"""What an entry point says when it runs in a Python without the project's dependencies.

``python3 tools/checkpoint_manager_cli.py list`` before ``source .venv/bin/activate`` (the
README's Quick start installs into ``.venv``) ended in a ModuleNotFoundError traceback from
deep inside an import. Standard library only: it runs before anything else is importable.
"""

from __future__ import annotations

import sys

__all__ = ["missing_dependency"]


def missing_dependency(exc: ModuleNotFoundError) -> str:
    """The one error line for ``exc``, raised while importing an entry point's code."""
    name = exc.name or str(exc)
    return (
        f"error: {name} is not installed for {sys.executable}: run the project's environment "
        f"(source .venv/bin/activate, or .venv/bin/python), or install the project into this "
        f"one (pip install -e .)"
    )
