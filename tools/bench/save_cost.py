"""What one auto-save costs in CPU: the owner's snapshot plus the saver thread's write.

A save of the seed loop's shape (ten updates since the last one, default JSON store), timed
by the process's CPU clock around ``save(force=True)``: the owner only waits meanwhile, so
the figure is the snapshot, the JSON encoding, the writes, the fsyncs and the renames, on
whichever thread they ran. With an output attached, each save also appends and fsyncs the
journal its records went to (three fsyncs instead of two).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common.checkpoint import EnhancedCheckpoint

__all__ = ["measure_save_cpu"]

_URL = "https://example.edu/page"


def measure_save_cpu(saves: int, *, output: bool) -> tuple[float, float]:
    """Median CPU seconds and wall seconds of ``saves`` saves, ten updates before each."""
    cpu: list[float] = []
    wall: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-save-cost-") as tmp:
        checkpoint = EnhancedCheckpoint(
            Path(tmp) / "checkpoints" / "bench.json",
            auto_save_interval=10**9,
            save_every_seconds=1e9,
            min_save_interval=0.0,
        )
        try:
            checkpoint.start(total_items=10 * (saves + 10))
            if output:
                checkpoint.attach_output(Path(tmp) / "out.jsonl")
            checkpoint.save(force=True)
            for n in range(saves + 10):  # the first ten warm up (and make the backup)
                for i in range(10 * n, 10 * n + 10):
                    record = {"url": _URL, "i": i} if output else None
                    checkpoint.update(1, 1, 0, 0, _URL, i, record=record)
                start, started = time.process_time(), time.perf_counter()
                checkpoint.save(force=True)
                if n >= 10:
                    cpu.append(time.process_time() - start)
                    wall.append(time.perf_counter() - started)
        finally:
            checkpoint.close()
    return statistics.median(cpu), statistics.median(wall)


def print_save_cpu(saves: int = 300) -> None:
    """The figures ``python -m tools.bench engine`` prints."""
    print(f"one save's cost, seed-loop shape (10 updates a save, median of {saves})")
    for output in (False, True):
        cpu, wall = measure_save_cpu(saves, output=output)
        label = "with an output journal" if output else "record only"
        print(f"  {label:<24} {cpu * 1e6:7.1f} us CPU  {wall * 1e6:7.1f} us wall")
