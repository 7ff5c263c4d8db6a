"""Where a stage resumes, moved by hand, and the parts of its input.

:class:`Position` is the manual control of a stage's resume point (``set_position``, the
``checkpoint set-position`` command) and the declaration of the parts of its input (a split,
shard or file, each with its own completion window). Moving a position must not break "none
written twice": a position is refused for a stage resumed by key, and for one that would write
records its output already holds. The per-item marking of a part (``update(part=...)``) stays
on the facade's hot path; :meth:`common.state.CheckpointState.part` finds or declares it.

Threads: everything here runs on the checkpoint's owner thread under the save coordinator's
``guard`` and touches only the owner's state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.completion import CompletionWindow, PartProgress
from common.errors import InvalidTransitionError
from common.itemargs import item_index, item_text
from common.outputs import FAILED_JOURNAL, OUTPUT_JOURNAL, Outputs
from common.save_coordinator import SaveCoordinator
from common.state import StateHolder
from common.status import CheckpointStatus, transition

__all__ = ["Position"]

logger = logging.getLogger("common.checkpoint")


class Position:
    """The resume point and the parts of ``stage``'s checkpoint, whose state ``holder`` keeps.

    ``become_writer`` takes the stage's lock (and reloads if the record changed) before the
    position moves.
    """

    def __init__(
        self,
        holder: StateHolder,
        *,
        stage: str,
        path: Path,
        clock: Callable[[], float],
        outputs: Outputs,
        saving: SaveCoordinator,
        become_writer: Callable[[], None],
    ) -> None:
        self._holder = holder
        self._stage = stage
        self._path = path
        self._clock = clock
        self._outputs = outputs
        self._saving = saving
        self._become_writer = become_writer

    def set_position(self, index: int, part: str | None = None) -> None:
        """:meth:`common.checkpoint.EnhancedCheckpoint.set_position`."""
        index = item_index(self._stage, "set_position()", index)
        if part is not None:
            part = item_text(self._stage, "set_position()", "part", part)
        with self._saving.guard:
            self._become_writer()
            state = self._holder.state
            if state.status is CheckpointStatus.RUNNING:
                raise InvalidTransitionError(
                    f"stage {self._stage!r} is running; stop it before moving its position",
                    stage=self._stage,
                    path=self._path,
                )
            previous = state.completion.watermark
            self._refuse_a_position_that_would_double(index, part)
            window = CompletionWindow(index)
            if part is None:
                state.completion = window
                progress = state.progress
                progress.processed_items = index
                progress.successful_items = min(progress.successful_items, index)
                progress.failed_items = min(
                    progress.failed_items, index - progress.successful_items
                )
                state.last_processed_index = index - 1 if index else None
            else:
                state.part(part).window = window
            if state.status is CheckpointStatus.COMPLETED:
                transition(state, CheckpointStatus.PAUSED, stage=self._stage, by="set_position")
            self._saving.dirty = True
            logger.info("Stage %s position set by hand: %d -> %d", self._stage, previous, index)
            self._saving.submit(history_reason=f"set-{index}")
            self._saving.flush()

    def _refuse_a_position_that_would_double(self, index: int, part: str | None) -> None:
        """``set_position`` must not break "none written twice": refuse what would.

        A stage resumed by key (a URL per item, as the Scrapy stages are) has no index to move.
        A stage whose output already holds records cannot be moved back over items it wrote:
        their records would be appended a second time (they are not tied to indices in the
        output, items finish out of order), so only a reset, which starts the output over,
        redoes them.
        """
        state = self._holder.state
        done_keys = len(self._outputs.load_keys(state))
        if done_keys:
            raise ValueError(
                f"stage {self._stage!r} resumes by key ({done_keys} done), not by "
                f"index: a position does not apply to it; reset the stage to redo it"
            )
        window = state.completion if part is None else state.part(part).window
        highest = window.highest_done
        written = sum(state.journals.get(name, 0) for name in (OUTPUT_JOURNAL, FAILED_JOURNAL))
        if written and highest is not None and index <= highest:
            raise ValueError(
                f"moving stage {self._stage!r} back to {index} would write the records of items "
                f"{index} to {highest} a second time (its output already holds them); set "
                f"{highest + 1} or more, or reset the stage to redo everything"
            )

    # Parts -------------------------------------------------------------------------------------

    def start_part(self, name: str, total: int | None = None) -> PartProgress:
        """Declare a part of the input (a split, shard or file) and its size."""
        name = item_text(self._stage, "start_part()", "part", name)
        with self._saving.guard:
            part = self._holder.state.part(name)
            if total is not None:
                part.total = total
            self._saving.dirty = True
            return part

    def finish_part(self, name: str) -> None:
        """Mark a whole part done: it is skipped whole on resume."""
        name = item_text(self._stage, "finish_part()", "part", name)
        with self._saving.guard:
            self._holder.state.part(name).finished = True
            self._saving.dirty = True
            self._saving.save_due(self._clock(), throttle=False)
