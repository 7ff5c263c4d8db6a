"""What an entry point says when it runs in a Python without the project's dependencies.

``python3 tools/checkpoint_manager_cli.py list`` before ``source .venv/bin/activate`` (the
README's Quick start installs into ``.venv``) ended in a ModuleNotFoundError traceback from
deep inside an import. Standard library only: it runs before anything else is importable.
"""

from __future__ import annotations

import sys

__all__ = ["missing_dependency"]

#: The project's own packages: one of them missing is a broken checkout, not an environment
#: without the dependencies, and keeps its traceback.
_PROJECT_PACKAGES = frozenset({"common", "crawler", "enrich", "tools"})


def missing_dependency(exc: ModuleNotFoundError) -> str:
    """The one error line for ``exc``, raised while importing an entry point's code; ``exc``
    itself again when the missing module is one of the project's own."""
    name = exc.name or str(exc)
    if name.partition(".")[0] in _PROJECT_PACKAGES:
        raise exc
    return (
        f"error: {name} is not installed for {sys.executable}: run the project's environment "
        f"(source .venv/bin/activate, or .venv/bin/python), or install the project into this "
        f"one (pip install -e .)"
    )
