"""``python -m tools.orchestrator``: run the pipeline's stages end to end (see :mod:`.app`).

This package's own module stays light: the ``resumable-pipeline`` console script and ``python
-m tools.orchestrator`` import only it before :func:`main` is running, and the checkpoint CLI
imports the stage table without the orchestrator's runtime.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

__all__ = ["STOPPED_AT_ONCE", "main"]

#: The line a run stopped by a signal at once (or before it had anything to pause) ends with.
STOPPED_AT_ONCE = "stopped at once; checkpoints are valid: run the same command to resume"


def main(argv: Sequence[str] | None = None) -> int:
    """The orchestrator (:func:`tools.orchestrator.app.main`): the exit code.

    Its modules (Scrapy, aiohttp, rich: the first few tenths of a second) are imported here,
    inside the same ``try`` as the run: a Ctrl-C while they load, or before the run's own
    signal handling is in place, ends with :data:`STOPPED_AT_ONCE` and 130, not a traceback.
    """
    try:
        try:
            from tools.orchestrator.app import main as run
        except ModuleNotFoundError as exc:  # run by a Python without the project installed
            from tools.environment import missing_dependency

            print(missing_dependency(exc), file=sys.stderr)
            return 1
        return run(argv)
    except KeyboardInterrupt:
        print(STOPPED_AT_ONCE, flush=True)
        return 128 + signal.SIGINT
