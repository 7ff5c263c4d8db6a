"""SIGKILL a process in a tight update/save loop, again and again; nothing is ever broken.

A child runs ``update()`` with ``auto_save_interval=1`` (and no minimum interval, so a save is
always in flight) and an attached output, finishing items slightly out of order. The parent kills
it at random moments (and at every crash point inside a save), then checks that a fresh checkpoint
loads, that the recovered output holds exactly the records of the done items (no torn line, no
duplicate, the committed prefix never rewritten), and that a run to completion writes every index
exactly once. When a child finishes before its kill, that campaign is checked complete and a new
one starts, so the test needs no tuning to the machine's speed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import CheckpointStatus, EnhancedCheckpoint
from common.io.faults import CRASH_POINTS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STAGE = "killed"
KILLS = 32
ITEMS = 60_000  # per campaign
BLOCK = 64  # items finish in random order inside blocks of this size

CHILD = textwrap.dedent(
    """
    import os, random, sys, time
    from common import EnhancedCheckpoint

    directory, output, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cp = EnhancedCheckpoint(
        os.path.join(directory, "killed.json"), auto_save_interval=1, min_save_interval=0
    )
    cp.attach_output(output)
    cp.start("killed", total_items=n)
    rng = random.Random(seed)
    order = list(range(n))
    for b in range(0, n, 64):
        block = order[b:b + 64]
        rng.shuffle(block)
        order[b:b + 64] = block
    print("ready", flush=True)
    began, count = time.perf_counter(), 0
    for i in order:
        if cp.should_skip(i):
            continue
        cp.update(processed=1, successful=1, index=i, record={"i": i, "url": f"https://site/{i}"})
        count += 1
    cp.complete()
    print("done", count, count / max(time.perf_counter() - began, 1e-6), flush=True)
    """
)


def _spawn(
    directory: Path, output: Path, n: int, seed: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(output), str(n), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _finish(child: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = child.communicate(timeout=60)
    return child.returncode, out


@dataclass
class Verifier:
    """What the parent has verified so far about the committed output."""

    directory: Path
    output: Path
    committed: bytes = b""
    seen: set[int] = field(default_factory=set)
    processed: int = 0
    last_cut: int = 0  # bytes the last recovery cut from the output

    def check(self) -> EnhancedCheckpoint:
        """Load like a resuming run would, cut the output, and check every invariant."""
        main = self.directory / f"{STAGE}.json"
        expected = {CheckpointStatus.RECOVERING, CheckpointStatus.COMPLETED}
        if main.exists():
            json.loads(main.read_bytes())  # the main file itself is always whole
        else:  # killed inside the very first save: nothing was ever committed
            assert self.processed == 0 and not self.committed
            assert not (self.directory / f"{STAGE}.backup.json").exists()
            expected = {CheckpointStatus.INITIALIZED}
        cp = EnhancedCheckpoint(main)
        try:
            assert cp.restored_from_backup is False
            assert cp.status in expected
            progress = cp.state.progress
            assert progress.processed_items >= self.processed  # never goes backwards
            self.processed = progress.processed_items
            before = self.output.stat().st_size if self.output.exists() else 0
            cp.attach_output(self.output)
            cp.acquire()  # cuts what was written after the last save
            data = self.output.read_bytes() if self.output.exists() else b""
            assert len(data) == cp.state.journals.get("output", 0)
            self.last_cut = before - len(data)
            assert data.startswith(self.committed)  # committed records are never rewritten
            new = data[len(self.committed) :]
            assert new == b"" or new.endswith(b"\n"), "torn last line"
            window = cp.state.completion
            for line in new.splitlines():
                record = json.loads(line)
                index = record["i"]
                assert record["url"] == f"https://site/{index}"
                assert index not in self.seen, f"duplicate record {index}"
                assert window.is_done(index)
                self.seen.add(index)
            assert len(self.seen) == window.done_count == progress.processed_items
            assert max(self.seen, default=-1) < window.watermark + BLOCK
            self.committed = data
            return cp
        finally:
            cp.close()


def _complete(verifier: Verifier) -> None:
    final = verifier.check()
    assert final.status is CheckpointStatus.COMPLETED
    assert verifier.seen == set(range(ITEMS))
    assert len(verifier.committed.splitlines()) == ITEMS


def test_sigkill_at_random_moments_and_at_every_crash_point(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    campaigns = 0

    def new_campaign() -> Verifier:
        nonlocal campaigns
        campaigns += 1
        return Verifier(
            tmp_path / f"c{campaigns}" / "checkpoints", tmp_path / f"c{campaigns}.jsonl"
        )

    verifier = new_campaign()
    kills = runs = 0
    while kills < KILLS:
        runs += 1
        assert runs <= 3 * KILLS, "children keep finishing before the kill"
        child = _spawn(verifier.directory, verifier.output, ITEMS, seed=runs)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.020, 0.200))  # the random moment to kill at
        child.send_signal(signal.SIGKILL)  # a no-op if it already finished
        code, out = _finish(child)
        if code == 0:
            assert "done" in out
            _complete(verifier)
            verifier = new_campaign()
            continue
        assert code == -signal.SIGKILL, out
        kills += 1
        verifier.check()

    for point in CRASH_POINTS:  # a fresh campaign each, so there is work left
        verifier = new_campaign()
        hits = runs = 0
        while hits < 2:
            runs += 1
            assert runs <= 8, f"{point}: the crash point is never reached"
            env = {"CHECKPOINT_CRASH_AT": point, "CHECKPOINT_CRASH_SKIP": str(rng.randint(0, 3))}
            child = _spawn(verifier.directory, verifier.output, ITEMS, rng.randrange(10**6), env)
            code, out = _finish(child)
            if code == 0:  # the work ran out before the crash point came: check, start over
                assert "done" in out
                _complete(verifier)
                verifier = new_campaign()
                continue
            assert code == -signal.SIGKILL, out
            hits += 1
            verifier.check()
            if point.startswith("after_journal"):  # records written, not yet committed
                assert verifier.last_cut > 0
        child = _spawn(verifier.directory, verifier.output, ITEMS, seed=999)
        code, out = _finish(child)
        assert code == 0 and "done" in out, out
        _complete(verifier)
