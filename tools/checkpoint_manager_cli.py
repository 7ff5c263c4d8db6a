"""``python tools/checkpoint_manager_cli.py COMMAND ...``: seed 003's path to the checkpoint CLI.

The commands live in :mod:`tools.checkpoint_cli`; this file only makes the repository importable
when it is run by path, then hands over.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run by path: sys.path[0] is tools/, make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    from tools.checkpoint_cli.app import main
except ModuleNotFoundError as exc:
    if __name__ != "__main__":
        raise
    from tools.environment import missing_dependency

    sys.exit(missing_dependency(exc))

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
