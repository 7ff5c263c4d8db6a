"""The pipeline's three stages by name: checkpoint names, short names, input and output files.

Apart from :mod:`.stages` (which runs them) so that the checkpoint CLI can resolve a short name
(``discovery``) without importing the orchestrator's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.outputs import failed_sidecar_path

__all__ = ["STAGES", "StageSpec", "find_stage", "short_name"]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One pipeline stage: its checkpoint name, alias, input and output files."""

    name: str
    alias: str
    output: str
    input: str | None

    def sidecar(self) -> str:
        """Where the stage's failed items go (``<output>.failed.jsonl``)."""
        return failed_sidecar_path(self.output).as_posix()


STAGES: tuple[StageSpec, ...] = (
    StageSpec("stage1_discovery", "discovery", "processed/stage01/discovery_output.jsonl", None),
    StageSpec(
        "stage2_validation",
        "validation",
        "processed/stage02/validation_output.jsonl",
        "processed/stage01/discovery_output.jsonl",
    ),
    StageSpec(
        "stage3_async_enrichment",
        "enrichment",
        "processed/stage03/enrichment_output.jsonl",
        "processed/stage02/validation_output.jsonl",
    ),
)


def find_stage(choice: str) -> StageSpec | None:
    """The pipeline stage ``choice`` names, by its stage name or its short name; else None."""
    for stage in STAGES:
        if choice in (stage.name, stage.alias):
            return stage
    return None


def short_name(stage: str) -> str:
    """``discovery`` for ``stage1_discovery``; any other stage name as it is."""
    for spec in STAGES:
        if spec.name == stage:
            return spec.alias
    return stage
