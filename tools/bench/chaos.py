"""Chaos: SIGKILL the whole pipeline at random moments, resume each time, compare the outputs.

    python -m tools.bench chaos [--kills 50] [--pages 300] [--seed 7] [--deadline 180]

The pipeline is ``python -m tools.orchestrator --env development`` (it starts the demo site
itself, on the port remembered in its data directory). First one uninterrupted run, the
reference, timed stage by stage. Then rounds: each round starts from an empty data directory and
runs the same command again and again, SIGKILLing it at a random moment, until a run finishes;
rounds repeat until ``--kills`` kills were made, and the last round is run to its end. A kill
picks its moment among:

* ``stage``: aimed at a random stage: once that stage's child (or, when that stage is done, the
  child of the first stage after it that still works) has run a random fraction of the stage's
  time in the reference (a stage already done is skipped by its child quickly, so the clock
  restarts with the next child). Kills aimed at a later stage let the earlier ones finish;
* ``between``: as soon as a stage child has exited, before the orchestrator starts the next;
* ``startup``: within the first moments, before the first stage child.

and a way: ``orchestrator`` (SIGKILL to the orchestrator alone: its children must die with it)
or ``tree`` (the orchestrator and every descendant at once, as a power loss would). The next run
starts at once, as a supervisor restarting it would.

Each finished round's outputs (the three stages' outputs and the ``.failed.jsonl`` sidecars)
are compared with the reference's by URL path (each run of the demo site has its own port):
records lost, records doubled, records that should not be there, torn last lines, lines that
are not records. Runs that exit non-zero on their own are failed runs; a run that does not
finish within ``--deadline`` seconds is a hang (killed and counted). Exit code 0 when all of
these are zero.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from tools.testing.jsonl_audit import FileAudit, audit_jsonl

__all__ = ["ChaosReport", "main", "run_chaos"]

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
STAGES: Final = ("discovery", "validation", "enrichment")
OUTPUTS: Final = (
    "processed/stage01/discovery_output.jsonl",
    "processed/stage02/validation_output.jsonl",
    "processed/stage03/enrichment_output.jsonl",
    "processed/stage03/enrichment_output.failed.jsonl",
)
_POLL: Final = 0.005


# Processes ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(part) for part in handle.read().split()]
    except (OSError, ValueError):
        return []


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in _children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stage_of(pid: int) -> str | None:
    """Which stage a process runs (``discovery``, ...), or None (the demo site, gone, other)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    if b"enrich" in argv and b"-m" in argv:
        return "enrichment"
    if b"crawl" in argv:
        index = argv.index(b"crawl")
        if index + 1 < len(argv):
            name = argv[index + 1].decode(errors="replace")
            return name if name in STAGES else None
    return None


def running_stage(orchestrator: int) -> tuple[int, str] | None:
    """The orchestrator's live stage child and its stage, if one runs."""
    for child in _children(orchestrator):
        stage = stage_of(child)
        if stage is not None and _alive(child):
            return child, stage
    return None


# Runs --------------------------------------------------------------------------------------


@dataclass
class Options:
    pages: int = 300
    site_seed: int = 2024
    deadline: float = 180.0


def pipeline_command(data_dir: Path, options: Options) -> list[str]:
    return [
        sys.executable, "-m", "tools.orchestrator", "--env", "development", "--stage", "all",
        "--data-dir", str(data_dir), "--pages", str(options.pages),
        "--seed", str(options.site_seed), "--no-live",
    ]  # fmt: skip


def start_pipeline(data_dir: Path, options: Options, log: Path) -> subprocess.Popen[bytes]:
    """Start the orchestrator; its output is appended to ``log``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    with log.open("ab") as handle:
        return subprocess.Popen(
            pipeline_command(data_dir, options),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@dataclass
class Timeline:
    """When each stage child ran in one run (seconds from the orchestrator's start)."""

    stages: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    exit_code: int | None = None


def run_reference(data_dir: Path, options: Options, log: Path) -> Timeline:
    """One uninterrupted run, timing each stage child by watching ``/proc``."""
    timeline = Timeline()
    start = time.monotonic()
    process = start_pipeline(data_dir, options, log)
    current: tuple[int, str] | None = None
    since = start
    while process.poll() is None:
        now = time.monotonic()
        if now - start > options.deadline:
            _kill_tree(process)
            raise RuntimeError(f"the reference run did not finish in {options.deadline:g} s")
        seen = running_stage(process.pid)
        if seen != current:
            if current is not None:
                timeline.stages[current[1]] = now - since
            current, since = seen, now
        time.sleep(_POLL)
    now = time.monotonic()
    if current is not None:
        timeline.stages[current[1]] = now - since
    timeline.total = now - start
    timeline.exit_code = process.returncode
    if process.returncode != 0:
        raise RuntimeError(f"the reference run failed (exit {process.returncode}); see {log}")
    return timeline


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


@dataclass
class KillPlan:
    moment: str
    """``stage``, ``between`` or ``startup``."""
    fraction: float
    way: str
    """``orchestrator`` or ``tree``."""
    stage: str = STAGES[0]
    """For ``stage``: the stage aimed at (or the first one still working after it)."""


@dataclass
class Kill:
    """One kill as made: when it was meant to come, what was running when it came."""

    plan: KillPlan
    hit: str
    """The stage that was running, ``between`` stages, or ``startup``."""
    after_seconds: float


@dataclass
class RunOutcome:
    kill: Kill | None
    exit_code: int | None
    hang: bool = False


def run_once(
    data_dir: Path, options: Options, reference: Timeline, plan: KillPlan | None, log: Path
) -> RunOutcome:
    """One run of the pipeline, SIGKILLed as ``plan`` says (None: let it finish)."""
    start = time.monotonic()
    process = start_pipeline(data_dir, options, log)
    current: tuple[int, str] | None = None
    since = start
    stage_seen = False
    startup_at = start + (plan.fraction * 0.5 if plan else 0.0)
    while process.poll() is None:
        now = time.monotonic()
        if now - start > options.deadline:
            _kill_tree(process)
            return RunOutcome(None, None, hang=True)
        seen = running_stage(process.pid)
        if seen != current:
            current, since = seen, now
            stage_seen = stage_seen or seen is not None
        fire = False
        if plan is not None:
            if plan.moment == "startup":
                fire = now >= startup_at
            elif plan.moment == "between":
                fire = stage_seen and current is None
            elif current is not None and STAGES.index(current[1]) >= STAGES.index(plan.stage):
                fire = now - since >= plan.fraction * reference.stages.get(current[1], 1.0)
        if fire and plan is not None:
            hit = current[1] if current else ("between" if stage_seen else "startup")
            if plan.way == "tree":
                _kill_tree(process)
            else:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            if process.returncode == -signal.SIGKILL:
                return RunOutcome(Kill(plan, hit, round(now - start, 2)), -signal.SIGKILL)
            break  # it finished on its own just before the kill
        time.sleep(_POLL)
    return RunOutcome(None, process.returncode)


# Comparison --------------------------------------------------------------------------------


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


@dataclass
class OutputDiff:
    """One output file of a finished round against the reference's."""

    name: str
    records: int
    lost: int
    doubled: int
    extra: int
    torn: bool
    bad_lines: int

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.extra or self.torn or self.bad_lines)


def compare_outputs(reference_dir: Path, data_dir: Path) -> list[OutputDiff]:
    """Each output of ``data_dir`` against ``reference_dir``'s, by URL path."""
    diffs = []
    for name in OUTPUTS:
        want: FileAudit = audit_jsonl(reference_dir / name, key=_path_of)
        got: FileAudit = audit_jsonl(data_dir / name, key=_path_of)
        diffs.append(
            OutputDiff(
                name=name,
                records=got.lines,
                lost=len(set(want.urls) - set(got.urls)),
                doubled=got.doubled,
                extra=len(set(got.urls) - set(want.urls)),
                torn=got.torn,
                bad_lines=got.bad_lines,
            )
        )
    return diffs


# The whole thing ---------------------------------------------------------------------------


@dataclass
class ChaosReport:
    """What a chaos run did and found."""

    kills: list[Kill] = field(default_factory=list)
    rounds: list[list[OutputDiff]] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    hangs: int = 0
    runs: int = 0
    reference_seconds: float = 0.0
    reference_records: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def total(self, attribute: str) -> int:
        return sum(int(getattr(diff, attribute)) for diffs in self.rounds for diff in diffs)

    @property
    def ok(self) -> bool:
        return (
            not self.failed_runs
            and not self.hangs
            and all(diff.clean for diffs in self.rounds for diff in diffs)
        )

    def summary(self) -> str:
        hits = Counter(kill.hit for kill in self.kills)
        ways = Counter(kill.plan.way for kill in self.kills)
        lines = [
            f"kills: {len(self.kills)} ({', '.join(f'{k} {v}' for k, v in sorted(hits.items()))};"
            f" {', '.join(f'{k} {v}' for k, v in sorted(ways.items()))})",
            f"runs: {self.runs} in {len(self.rounds)} rounds, {self.seconds:.0f} s "
            f"(reference run {self.reference_seconds:.1f} s: "
            + ", ".join(f"{Path(k).name} {v:,}" for k, v in self.reference_records.items())
            + " records)",
            f"records lost: {self.total('lost')}, doubled: {self.total('doubled')}, "
            f"unexpected: {self.total('extra')}, torn lines: {self.total('torn')}, "
            f"bad lines: {self.total('bad_lines')}",
            f"hangs: {self.hangs}, failed runs: {len(self.failed_runs)}",
        ]
        lines += [f"  failed run: {reason}" for reason in self.failed_runs]
        for number, diffs in enumerate(self.rounds, 1):
            for diff in diffs:
                if not diff.clean:
                    lines.append(f"  round {number} {diff.name}: {diff}")
        return "\n".join(lines)


def _draw(rng: random.Random) -> KillPlan:
    roll = rng.random()
    moment = "startup" if roll < 0.08 else "between" if roll < 0.2 else "stage"
    # Up to 85% of a stage's reference time: a resumed stage has less left to do, and a kill
    # planned past its end would let the whole run finish unkilled.
    fraction = round(rng.uniform(0, 0.85), 3)
    return KillPlan(moment, fraction, rng.choice(("orchestrator", "tree")), rng.choice(STAGES))


def _failure_reason(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "error" in line]
    return lines[-1].strip() if lines else f"see {log}"


def run_chaos(
    work_dir: Path, *, kills: int, seed: int, options: Options, progress: bool = False
) -> ChaosReport:
    """Run the reference, then rounds of killed and resumed pipelines; see the module doc."""
    rng = random.Random(seed)
    report = ChaosReport()
    began = time.monotonic()
    reference_dir = work_dir / "reference"
    reference = run_reference(reference_dir, options, work_dir / "reference.log")
    report.reference_seconds = reference.total
    report.reference_records = {name: audit_jsonl(reference_dir / name).lines for name in OUTPUTS}
    number = 0
    while (len(report.kills) < kills or number == 0) and len(
        report.failed_runs
    ) + report.hangs < 10:
        number += 1
        data_dir = work_dir / f"round{number}"
        log = work_dir / f"round{number}.log"
        finished = False
        failures_in_a_row = 0
        while not finished:
            plan = _draw(rng) if len(report.kills) < kills else None
            outcome = run_once(data_dir, options, reference, plan, log)
            report.runs += 1
            if outcome.hang:
                report.hangs += 1
            elif outcome.kill is not None:
                report.kills.append(outcome.kill)
                if progress:
                    kill = outcome.kill
                    print(
                        f"  kill {len(report.kills):>3}: {kill.plan.way:<12} during "
                        f"{kill.hit:<10} after {kill.after_seconds:5.2f} s",
                        flush=True,
                    )
            elif outcome.exit_code == 0:
                finished = True
            else:
                report.failed_runs.append(
                    f"round {number}, run exit {outcome.exit_code}: {_failure_reason(log)}"
                )
            failures_in_a_row = 0 if outcome.kill or finished else failures_in_a_row + 1
            if failures_in_a_row >= 3:
                break  # the round is stuck: report it rather than loop
        diffs = compare_outputs(reference_dir, data_dir)
        report.rounds.append(diffs)
        if progress:
            state = "identical" if all(d.clean for d in diffs) else "DIFFERENT"
            print(f"  round {number}: outputs {state} to the reference's", flush=True)
        if all(d.clean for d in diffs) and finished:
            shutil.rmtree(data_dir, ignore_errors=True)
    report.seconds = time.monotonic() - began
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--pages", type=int, default=300, help="demo site size")
    parser.add_argument("--site-seed", type=int, default=2024, help="demo site seed")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill moments")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds per run")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.pages < 1 or args.deadline <= 0:
        parser.error("--kills >= 0, --pages >= 1 and --deadline > 0")
    options = Options(pages=args.pages, site_seed=args.site_seed, deadline=args.deadline)
    print(
        f"chaos: {args.kills} SIGKILLs of the whole pipeline on a {args.pages}-page demo site "
        f"(seed {args.seed}); python {sys.version.split()[0]} on {os.cpu_count()} cores",
        flush=True,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run_chaos(
            args.keep, kills=args.kills, seed=args.seed, options=options, progress=True
        )
    else:
        with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
            report = run_chaos(
                Path(tmp), kills=args.kills, seed=args.seed, options=options, progress=True
            )
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
