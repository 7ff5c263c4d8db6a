"""Input and output paths in a checkpoint record, relative to the data directory.

A record names its stage's input and output files. Written as absolute paths, a data directory
moved to another place (another disk, another machine) would point back at the old place: the
resume would refuse the input as missing and write its output where nothing is. So a store
writes every such path that lies under its data directory (the checkpoint directory's parent)
relative to it, and reads it back as an absolute path under wherever the directory is now.
Paths outside the data directory stay absolute: nothing moves them with it.

Records of earlier versions hold absolute paths (they load as they are) or paths relative to the
working directory of the run that wrote them: such a path is read relative to the data directory
when the file is there or is nowhere else, as ``checkpoint-manager`` always read it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["PATH_FIELDS", "absolute_paths", "relative_paths"]

#: The record fields that hold a file path.
PATH_FIELDS = ("input_file", "output_file")


def relative_paths(record: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """``record`` with every path under ``data_dir`` made relative to it (a copy if any changed)."""
    changed: dict[str, str] = {}
    base = os.path.abspath(data_dir)
    for key in PATH_FIELDS:
        value = record.get(key)
        if not isinstance(value, str) or not value:
            continue
        absolute = os.path.abspath(value)
        if os.path.commonpath([base, absolute]) == base and absolute != base:
            changed[key] = Path(os.path.relpath(absolute, base)).as_posix()
    return {**record, **changed} if changed else record


def absolute_paths(data: Any, data_dir: Path) -> Any:
    """``data`` (a decoded record) with its relative paths resolved under ``data_dir``."""
    if not isinstance(data, dict):
        return data  # the parser names what is wrong with it
    changed: dict[str, str] = {}
    for key in PATH_FIELDS:
        value = data.get(key)
        if not isinstance(value, str) or not value or os.path.isabs(value):
            continue
        beside = os.path.join(os.path.abspath(data_dir), value)
        # An older record's path relative to the writer's working directory: keep it when the
        # file is there and not under the data directory.
        if not os.path.exists(beside) and os.path.exists(value):
            changed[key] = os.path.abspath(value)
        else:
            changed[key] = os.path.normpath(beside)
    return {**data, **changed} if changed else data
