"""A stage run through the engine, for the crash-point and disk-fault tests to kill or starve.

    python -m tests._crash_child WORKDIR ITEMS [--fresh | --reset] [--tracker] [--store KIND]

Processes ``ITEMS`` items out of order (shuffled in blocks of 16) with an attached output and
failed-items sidecar and a done-key per item (every fifth item fails), saving every 7 updates, so
every step of a save, of an output commit and of recovery is reached many times (the child
waits for each save, so the number of arrivals at a step does not depend on the machine's speed). ``--fresh``
starts over through ``start(fresh=True)``; ``--reset`` through ``reset()`` (what the tracker does);
``--tracker`` runs the same work through ``AsyncCheckpointTracker`` on asyncio. ``--store KIND``
chooses the store as the entry points do (:func:`common.stores.factory.select_store`: with
``--fresh``, a switch from the other store's checkpoints, made by the start). The fault
switches of :mod:`common.io.faults` come from the environment. Exit codes: 0 completed, 1 a
checkpoint error (printed as one ``error:`` line, never a traceback).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

from common import AsyncCheckpointTracker, CheckpointError, EnhancedCheckpoint
from common.outputs import failed_sidecar_path
from common.stores.factory import StoreChoice, select_store

STAGE = "crashy"
BLOCK = 16


def paths(workdir: Path) -> tuple[Path, Path, Path]:
    """The checkpoint directory, the output file and the input file of a work directory."""
    return workdir / "checkpoints", workdir / "out" / "output.jsonl", workdir / "input.txt"


def run(
    workdir: Path, items: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this child over ``items`` items in ``workdir`` from the repository's root, ``env``
    added to this process's environment (the fault switches)."""
    return subprocess.run(
        [sys.executable, "-m", "tests._crash_child", str(workdir), str(items), *args],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def url(index: int) -> str:
    return f"https://site.test/page/{index}"


def order(items: int, seed: int) -> list[int]:
    """Indices finishing out of order inside blocks, as concurrent work does."""
    rng = random.Random(seed)
    indices = list(range(items))
    for start in range(0, items, BLOCK):
        block = indices[start : start + BLOCK]
        rng.shuffle(block)
        indices[start : start + BLOCK] = block
    return indices


def outcome(index: int) -> dict[str, object]:
    """The update for one item: a record, or a failed record for every fifth item."""
    if index % 5 == 0:
        return {
            "processed": 1,
            "failed": 1,
            "failed_record": {"url": url(index), "error": "HTTP 404"},
        }
    return {"processed": 1, "successful": 1, "record": {"url": url(index), "n": index}}


def choose_store(workdir: Path, store: str | None, *, fresh: bool) -> StoreChoice:
    """The store as ``python -m enrich --store`` chooses it for this one stage."""
    checkpoint_dir, output, _ = paths(workdir)
    return select_store(
        store,
        checkpoint_dir,
        fresh=fresh,
        restarting=[STAGE],
        outputs=[output, failed_sidecar_path(output)],
    )


def run_engine(
    workdir: Path,
    items: int,
    *,
    fresh: bool,
    reset: bool,
    no_flush: bool = False,
    store: str | None = None,
) -> None:
    checkpoint_dir, output, input_file = paths(workdir)
    choice = choose_store(workdir, store, fresh=fresh)
    # --no-flush: saves are coalesced and deferred (the saver's state machine and timer run
    # while updates continue), so a kill can land in a save the timer took.
    checkpoint = EnhancedCheckpoint(
        checkpoint_dir / f"{STAGE}.json",
        auto_save_interval=7,
        min_save_interval=0.002 if no_flush else 0,
        store=choice.kind,
        store_switch=choice.switch,
    )
    with checkpoint:
        # As the entry points do with a store: start() cuts the journals, after the switch.
        checkpoint.acquire(cut=store is None)
        if reset:
            checkpoint.reset()
        checkpoint.attach_output(output)
        checkpoint.start(
            STAGE, total_items=items, input_file=input_file, config={"items": items}, fresh=fresh
        )
        for index in order(items, seed=items):
            if checkpoint.should_skip(index):
                continue
            checkpoint.update(index=index, key=url(index), last_item=url(index), **outcome(index))
            if not no_flush:
                checkpoint.flush()  # each auto-save (every 7th update) reaches the disk in turn
        checkpoint.complete()


async def run_tracker(workdir: Path, items: int, *, fresh: bool, store: str | None = None) -> None:
    checkpoint_dir, output, input_file = paths(workdir)
    choice = choose_store(workdir, store, fresh=fresh)
    tracker = AsyncCheckpointTracker(
        checkpoint_dir,
        STAGE,
        auto_save_interval=7,
        min_save_interval=0,
        input_file=input_file,
        config={"items": items},
        output_file=output,
        fresh=fresh,
        store=choice.kind,
        store_switch=choice.switch,
    )
    async with tracker:
        tracker.start(total_items=items)
        for index in order(items, seed=items):
            if tracker.should_skip(index):
                continue
            await asyncio.sleep(0)
            tracker.update(index=index, key=url(index), last_item=url(index), **outcome(index))
            await tracker.checkpoint.flush_async()


def main(argv: list[str]) -> int:
    workdir, items = Path(argv[0]), int(argv[1])
    fresh, reset = "--fresh" in argv, "--reset" in argv
    store = argv[argv.index("--store") + 1] if "--store" in argv else None
    try:
        if "--tracker" in argv:
            asyncio.run(run_tracker(workdir, items, fresh=fresh or reset, store=store))
        else:
            run_engine(
                workdir,
                items,
                fresh=fresh,
                reset=reset,
                no_flush="--no-flush" in argv,
                store=store,
            )
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
