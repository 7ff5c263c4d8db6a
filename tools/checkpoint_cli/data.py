"""The stage outputs of a data directory, as the checkpoints name them, read back record by record.

Each stage's checkpoint records its output file and how many of its bytes are committed (its
``output`` journal); the ``.failed.jsonl`` sidecar beside it holds the items that failed. Only the
committed bytes are read: a stage that is running, or was killed, may have appended records its
checkpoint does not count yet (the next run cuts them), and those are not results.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.manager import StageInfo, UnifiedCheckpointManager
from common.outputs import failed_sidecar_path
from tools.checkpoint_cli.base import (
    CliError,
    Unreadable,
    corrupt_stages,
    read_stages,
    require_stage,
)

__all__ = ["StageOutput", "data_dir_of", "read_records", "recorded_outputs", "stage_outputs"]

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


def data_dir_of(args: argparse.Namespace) -> Path:
    """``--data-dir``, else the checkpoint directory's parent (``data/checkpoints`` -> ``data``)."""
    if getattr(args, "data_dir", None):
        return Path(args.data_dir)
    return Path(args.checkpoint_dir).resolve().parent


def recorded_outputs(
    manager: UnifiedCheckpointManager, data_dir: Path, stage_names: Sequence[str] | None
) -> tuple[list[StageOutput], list[Unreadable]]:
    """The outputs of the stages named on the command line (every stage when None), and the
    stages among them whose checkpoint could not be read (one ``error:`` line each, for the
    command to print at the end: one such stage does not hide the others).

    A named stage that neither records an output nor is unreadable is a :class:`CliError`.
    """
    chosen = [require_stage(manager, name) for name in stage_names] if stage_names else None
    infos, unreadable = read_stages(manager)
    unreadable = [
        u for u in unreadable + corrupt_stages(infos) if chosen is None or u.stage in chosen
    ]
    outputs = stage_outputs(infos, data_dir, chosen)
    if chosen:
        missing = sorted(set(chosen) - {o.stage for o in outputs} - {u.stage for u in unreadable})
        if missing:
            raise CliError(
                f"no stage output recorded for {', '.join(missing)} in {manager.checkpoint_dir}"
            )
    return outputs, unreadable


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
