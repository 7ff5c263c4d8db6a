"""An entry point run by a Python without the project's dependencies says so in one line.

``python3 tools/checkpoint_manager_cli.py list`` before activating ``.venv`` ended in a
ModuleNotFoundError traceback. Here a Python where ``anyio`` cannot be imported stands in for
it (an import hook refuses it), so the test needs no second interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WITHOUT_ANYIO = """
import runpy, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "anyio":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_checkpoint_cli_by_path_without_the_dependencies_is_one_error_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ANYIO, "tools/checkpoint_manager_cli.py", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result
    assert result.stderr == (
        f"error: anyio is not installed for {sys.executable}: run the project's environment "
        "(source .venv/bin/activate, or .venv/bin/python), or install the project into this "
        "one (pip install -e .)\n"
    )
