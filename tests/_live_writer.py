"""Another process that holds a stage while a test runs its commands beside it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CHECKPOINT_WRITER", "OUTPUT_WRITER", "live_writer", "release"]

ROOT = Path(__file__).resolve().parents[1]

#: ``CHECKPOINT_PATH [STORE]``: starts the stage, records one item and saves it, then holds the
#: stage (its writer lock) until stdin closes, and pauses it.
CHECKPOINT_WRITER = """
import sys
from common import EnhancedCheckpoint
checkpoint = EnhancedCheckpoint(sys.argv[1], store=sys.argv[2] if len(sys.argv) > 2 else None)
checkpoint.start(total_items=10)
checkpoint.update(processed=1, successful=1, index=0)
checkpoint.save(force=True)
print("ready", flush=True)
sys.stdin.read()
checkpoint.pause()
checkpoint.close()
"""

#: ``CHECKPOINT_PATH OUTPUT``: a stage (JSON store) writing ``OUTPUT`` through the engine: starts
#: fresh (whatever the file held goes), commits one record ``{"url": "live"}`` to it, then holds
#: the file's journal lock (and the stage's) until stdin closes, and pauses.
OUTPUT_WRITER = """
import sys
from common import EnhancedCheckpoint
checkpoint = EnhancedCheckpoint(sys.argv[1])
checkpoint.attach_output(sys.argv[2])
checkpoint.start(total_items=2, fresh=True)
checkpoint.update(processed=1, successful=1, index=0, record={"url": "live"})
checkpoint.save(force=True)
print("ready", flush=True)
sys.stdin.read()
checkpoint.pause()
checkpoint.close()
"""


@contextmanager
def live_writer(script: str, *args: str | Path) -> Iterator[subprocess.Popen[str]]:
    """Run ``python -c script ARGS`` from the repository root and yield it once it printed
    ``ready`` (from then on it holds what it holds, until :func:`release`). Killed if it is
    still running when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def release(process: subprocess.Popen[str]) -> int:
    """Close the writer's stdin, its cue to finish what it holds and exit; its exit code."""
    assert process.stdin is not None
    process.stdin.close()
    return process.wait(timeout=30)
