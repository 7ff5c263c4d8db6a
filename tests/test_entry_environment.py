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

REFUSING = """
import runpy, sys

refused = sys.argv[1]

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == refused:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[2:]
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_without(module: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` (a path or ``-m`` and a module, then arguments) in a Python where importing
    ``module`` fails as if it were not installed."""
    return subprocess.run(
        [sys.executable, "-c", REFUSING, module, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(module: str) -> str:
    return (
        f"error: {module} is not installed for {sys.executable}: run the project's environment "
        "(source .venv/bin/activate, or .venv/bin/python), or install the project into this "
        "one (pip install -e .)\n"
    )


def test_the_checkpoint_cli_by_path_without_the_dependencies_is_one_error_line() -> None:
    result = _run_without("anyio", "tools/checkpoint_manager_cli.py", "list")
    assert result.returncode == 1, result
    assert result.stderr == _one_line("anyio")


def test_the_orchestrator_without_the_dependencies_is_one_error_line() -> None:
    result = _run_without("rich", "-m", "tools.orchestrator", "--stage", "all")
    assert result.returncode == 1, result
    assert result.stderr == _one_line("rich")


def test_a_missing_module_of_the_project_keeps_its_traceback() -> None:
    """A broken checkout is not an environment without the dependencies."""
    result = _run_without("enrich", "-m", "tools.orchestrator", "--stage", "all")
    assert result.returncode == 1, result
    assert "Traceback" in result.stderr and "No module named 'enrich" in result.stderr
    assert "is not installed for" not in result.stderr
