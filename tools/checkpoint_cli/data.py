"""The stage outputs of a data directory, as the checkpoints name them, read back record by record.

Each stage's checkpoint records its output file and how many of its bytes are committed (its
``output`` journal); the ``.failed.jsonl`` sidecar beside it holds the items that failed. Only the
committed bytes are read: a stage that is running, or was killed, may have appended records its
checkpoint does not count yet (the next run cuts them), and those are not results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.manager import StageInfo
from common.outputs import failed_sidecar_path

__all__ = ["StageOutput", "read_records", "stage_outputs"]

OUTPUT_JOURNAL = "output"
FAILED_JOURNAL = "failed"


@dataclass(frozen=True, slots=True)
class StageOutput:
    """Where one stage's records are, and how many bytes of each file its checkpoint counts.

    ``committed`` / ``failed_committed`` are None when the checkpoint does not say (then the
    whole file is read).
    """

    stage: str
    status: str
    output: Path
    failed: Path
    committed: int | None
    failed_committed: int | None


def _resolve(recorded: str, data_dir: Path) -> Path:
    """A recorded output path: absolute as is; relative to the data dir, else to the cwd."""
    path = Path(recorded)
    if path.is_absolute():
        return path
    beside = data_dir / path
    return beside if beside.exists() or not path.exists() else path


def _output_of(info: StageInfo, data_dir: Path) -> StageOutput | None:
    state = info.state
    if state is None or not state.output_file:
        return None
    output = _resolve(state.output_file, data_dir)
    return StageOutput(
        stage=info.stage,
        status=info.status,
        output=output,
        failed=failed_sidecar_path(output),
        committed=state.journals.get(OUTPUT_JOURNAL),
        failed_committed=state.journals.get(FAILED_JOURNAL),
    )


def stage_outputs(
    infos: Iterable[StageInfo], data_dir: Path, stages: list[str] | None = None
) -> list[StageOutput]:
    """Every stage of ``infos`` (or those named) whose checkpoint names an output file, in
    stage order."""
    outputs = []
    for info in infos:
        if stages is not None and info.stage not in stages:
            continue
        found = _output_of(info, data_dir)
        if found is not None:
            outputs.append(found)
    return outputs


def read_records(path: Path, committed: int | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, up to ``committed`` bytes (all when None).

    A missing file has no records. A line that is not a JSON object is a ``ValueError`` naming
    the file and the line number.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        remaining = committed
        for number, line in enumerate(handle, 1):
            if remaining is not None:
                remaining -= len(line)
                if remaining < 0:  # past what the checkpoint counts
                    break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"{path}:{number}: not a JSON record ({exc})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            yield record
            if remaining == 0:
                break
