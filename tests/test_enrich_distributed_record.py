"""The distributed starter's engine record: the queue's workers are saved, ids in one format."""

from __future__ import annotations

import json
from pathlib import Path

from common import EnhancedCheckpoint
from common.work_queue.progress import QueueProgress, WorkerProgress
from enrich.distributed import DistributedOptions, _mirror, worker_command


def _progress(workers: tuple[WorkerProgress, ...]) -> QueueProgress:
    return QueueProgress(
        stage="stage3",
        total=10,
        successful=0,
        skipped=0,
        failed=0,
        leased=2,
        pending=8,
        abandoned=0,
        run_finished=0,
        run_seconds=1.0,
        workers=workers,
    )


def test_work_queue_metadata_alone_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints/stage3.json"
    cp = EnhancedCheckpoint(path, save_every_seconds=3600)
    try:
        cp.start(total_items=10)
        cp.save(force=True)
        worker = WorkerProgress("host-1", "host", 1, 0, 0, 2, 0.1, False, True)
        _mirror(cp, _progress((worker,)))  # no count moved: only the metadata changed
        assert cp.save() is True  # the change is pending, so a plain save writes it
        saved = json.loads(path.read_text())["metadata"]["work_queue"]
        assert saved["in_flight"] == 2
        assert [w["worker"] for w in saved["workers"]] == ["host-1"]
    finally:
        cp.close()


def test_local_workers_name_themselves() -> None:
    # No id of the starter's own making: each worker process uses default_worker_id().
    command = worker_command(DistributedOptions(dsn="postgresql://x/y", workers=2), "stage3")
    assert "--worker-id" not in command
    assert command[-2:] == ["--stage", "stage3"]
