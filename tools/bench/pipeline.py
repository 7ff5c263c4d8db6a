"""Whole-pipeline benchmarks: what checkpointing costs, and what SIGKILLs cost.

    python -m tools.bench pipeline [--pages 2000] [--profile university|dense|simple]
                                   [--repeats 3] [--kills 5] [--seed 3] [--robots-ms 250]

(a) **Checkpointing on vs off** (``--repeats`` runs of each, 0 skips it). The three stages run
    as the orchestrator runs them (its :func:`~tools.orchestrator.stages.stage_command`, the
    fast profile, one child process per stage), against the same pipeline with checkpointing
    off: stages 1-2 with ``CHECKPOINT_ENABLED=False``, Scrapy's stock scheduler, no checkpoint
    pipeline and a plain JSON Lines feed export (``-O``) at the same path; stage 3 through
    :mod:`tools.bench.pipeline_off` (the processor's code path minus the tracker). Same pages,
    same concurrency, same settings otherwise; the site's counters and transient failures are
    reset before each run; runs alternate (on, off, off, on, ...). Each stage's time is its
    child's wall time, start-up included (a checkpoint's load, lock and last save are part of
    its cost); the figures are medians, on/off as ratios, then the median of each round's own
    ratio and in how many rounds on took more; every run's record sets must be equal by
    ``url``, stage by stage, to the first run's. The load average is printed with them.

    The site answers ``/robots.txt`` after ``--robots-ms`` (250), as a real site answers after
    a round trip. At 0 the comparison is a coin toss: Scrapy's engine takes ``start()``'s
    requests one reactor turn each while its downloader has room, and puts the rest in the
    scheduler at once when it is full. Validation's first 32 requests wait for robots.txt, so
    the downloader fills unless a site answering in well under a millisecond beats them; then
    every one of its 2,222 requests costs a turn of its own, and the stage 30-40% more CPU,
    on or off alike. Which way a run goes was decided in its first 20-80 ms.

(b) **SIGKILLs** (``--kills`` of them, 0 skips it): the orchestrator killed at random moments
    and run again until it finishes, against an uninterrupted run: wall time, fetches, and
    whether the outputs are the same URL sets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.argtypes import non_negative_float
from tools.demo_site import client, start_demo_site_process, stop_demo_site_process
from tools.orchestrator.config import PipelineConfig
from tools.orchestrator.stages import STAGES, StageSpec, child_env, stage_command

__all__ = [
    "OnOff",
    "StageRun",
    "add_arguments",
    "off_command",
    "run_pipeline",
    "run_stage",
    "run_stages",
]

_OUTPUTS = tuple(stage.output for stage in STAGES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pipeline`` benchmark's options."""
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument(
        "--profile", choices=("university", "dense", "simple"), default="university"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="on/off runs of each (0 skips the comparison)"
    )
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs (0 skips that part)")
    parser.add_argument("--seed", type=int, default=3, help="when the SIGKILLs land")
    parser.add_argument(
        "--robots-ms",
        type=non_negative_float,
        default=250.0,
        help="the site's /robots.txt delay, a real site's round trip (see above)",
    )


def _row(name: str, value: str, baseline: str, ratio: float | None) -> None:
    ratio_text = f"{ratio:8.3f}x" if ratio is not None else "        -"
    print(f"  {name:<40} {value:>12}   baseline {baseline:>12}   {ratio_text}")


def _load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def _urls(path: Path) -> set[str]:
    """The ``url``s of a JSON Lines output; a torn last line or a doubled record is an error."""
    lines = path.read_bytes().split(b"\n")
    if lines[-1]:
        raise AssertionError(f"torn last line in {path}")
    urls = [json.loads(line)["url"] for line in lines[:-1]]
    if len(urls) != len(set(urls)):
        raise AssertionError(f"duplicate records in {path}")
    return set(urls)


# (a) Checkpointing on vs off ---------------------------------------------------------------


def off_command(on: list[str], output: Path) -> list[str]:
    """``on`` (a stage's command) with checkpointing off, writing the same records to ``output``."""
    if on[1:3] == ["-m", "enrich"]:
        return [on[0], "-m", "tools.bench.pipeline_off", *on[3:]]
    settings = {
        "CHECKPOINT_ENABLED": "False",
        "SCHEDULER": "scrapy.core.scheduler.Scheduler",
        "ITEM_PIPELINES": "{}",
    }
    if "validation" in on:
        # Its input is already unique; Scrapy's dupefilter would only drop a redirect whose
        # target is also an input URL, losing the record of the URL that redirected (our
        # scheduler lets a redirect through as the replacement of its request).
        settings["DUPEFILTER_CLASS"] = "scrapy.dupefilters.BaseDupeFilter"
    command = list(on)
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    return [*command, "-O", str(output)]


@dataclass(frozen=True, slots=True)
class StageRun:
    """One stage child: its wall time and the CPU time it used (user + system), in seconds."""

    wall: float
    cpu: float


def run_stage(variant: str, stage: StageSpec, base_url: str, data_dir: Path) -> StageRun:
    """One stage in ``data_dir`` with checkpointing ``on`` or ``off`` (``variant``)."""
    config = PipelineConfig(start_urls=(base_url,), allowed_domains=("127.0.0.1",))
    command = stage_command(stage, config, data_dir, force=False, fresh=False)
    if variant == "off":
        command = off_command(command, data_dir / stage.output)
    log = data_dir / "logs" / f"{stage.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[2],
            env=child_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        # The kernel's account of the child: CPU time hardly moves with the machine's load.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{variant}: {stage.name} exited {code}; see {log}")
    return StageRun(wall, usage.ru_utime + usage.ru_stime)


def run_stages(
    variant: str, base_url: str, data_dir: Path
) -> tuple[dict[str, StageRun], list[set[str]]]:
    """The three stages in ``data_dir``, ``on`` or ``off``: each one's times, each output's URLs."""
    runs = {stage.name: run_stage(variant, stage, base_url, data_dir) for stage in STAGES}
    return runs, [_urls(data_dir / name) for name in _OUTPUTS]


def _pick(run: StageRun, what: str) -> float:
    return run.wall if what == "wall" else run.cpu


@dataclass
class OnOff:
    """Every stage run of the comparison, by variant and stage, and the load after each round."""

    runs: dict[str, dict[str, list[StageRun]]] = field(
        default_factory=lambda: {"on": {}, "off": {}}
    )
    loads: list[str] = field(default_factory=list)
    records: list[int] = field(default_factory=list)

    def median(self, variant: str, stage: str, what: str) -> float:
        return statistics.median(_pick(r, what) for r in self.runs[variant][stage])

    def paired(self, stage: str, what: str) -> tuple[float, int]:
        """The median of the rounds' own on/off ratios for ``stage``, and in how many rounds
        on took more. A round's two runs are back to back, so they share the machine's load:
        steadier than a ratio of medians when neighbouring runs differ by tens of percent."""
        ratios = [
            _pick(on, what) / _pick(off, what)
            for on, off in zip(self.runs["on"][stage], self.runs["off"][stage], strict=True)
        ]
        return statistics.median(ratios), sum(ratio > 1 for ratio in ratios)

    def total(self, variant: str, what: str) -> float:
        rounds = len(self.loads)
        by_stage = self.runs[variant]
        return statistics.median(
            sum(_pick(by_stage[s.name][i], what) for s in STAGES) for i in range(rounds)
        )


def bench_on_off(base_url: str, work: Path, repeats: int) -> OnOff:
    """Each stage on and off back to back (order alternating), ``repeats`` rounds.

    Every run's record sets must equal the first run's, stage by stage, by ``url``. The site's
    counters and transient failures are reset before every stage run, so both see the same.
    """
    result = OnOff()
    reference: list[set[str]] | None = None
    for round_ in range(repeats):
        for position, stage in enumerate(STAGES):
            order = ("on", "off") if (round_ + position) % 2 == 0 else ("off", "on")
            for name in order:
                client.reset(base_url)
                run = run_stage(name, stage, base_url, work / f"{name}-{round_}")
                result.runs[name].setdefault(stage.name, []).append(run)
        for name in ("on", "off"):
            urls = [_urls(work / f"{name}-{round_}" / output) for output in _OUTPUTS]
            if reference is None:
                reference = urls
                result.records = [len(u) for u in urls]
            for stage, got, want in zip(STAGES, urls, reference, strict=True):
                if got != want:
                    raise AssertionError(
                        f"{name} run {round_}: {stage.name} wrote {len(got)} URLs, "
                        f"{len(got - want)} not in the first run's {len(want)}, "
                        f"{len(want - got)} missing"
                    )
            shutil.rmtree(work / f"{name}-{round_}")
        result.loads.append(_load())
        print(
            f"  round {round_ + 1}: "
            + "; ".join(
                f"{s.alias} "
                + " / ".join(
                    f"{result.runs[n][s.name][-1].wall:.2f} s ({result.runs[n][s.name][-1].cpu:.2f}"
                    " CPU)"
                    for n in ("on", "off")
                )
                for s in STAGES
            )
            + f"  on / off; load {result.loads[-1]}",
            flush=True,
        )
    return result


def print_on_off(result: OnOff) -> None:
    """Medians per stage and in total, wall and CPU time, on against off."""
    print(
        f"  checkpointing on vs off, median of {len(result.loads)} rounds (each stage's child; "
        "records equal by url in every run: "
        + ", ".join(f"{s.alias} {n:,}" for s, n in zip(STAGES, result.records, strict=True))
        + ")"
    )
    for what, unit in (("wall", "wall time"), ("cpu", "CPU time")):
        for stage in STAGES:
            on = result.median("on", stage.name, what)
            off = result.median("off", stage.name, what)
            _row(f"{stage.name}, {unit}", f"{on:.2f} s", f"{off:.2f} s", on / off)
        on, off = result.total("on", what), result.total("off", what)
        _row(f"all three stages, {unit}", f"{on:.2f} s", f"{off:.2f} s", on / off)
    rounds = len(result.loads)
    for what, unit in (("wall", "wall"), ("cpu", "CPU")):
        print(
            f"  per round, {unit} on/off: "
            + "; ".join(
                "{} {:.3f}x (on above off in {} of {})".format(
                    stage.alias, *result.paired(stage.name, what), rounds
                )
                for stage in STAGES
            )
        )
    print(f"  (target: within 1.05x; load after each round {', '.join(result.loads)})")


# (b) SIGKILLs ------------------------------------------------------------------------------


def _orchestrate(base_url: str, data_dir: Path, kill_after: float | None) -> tuple[float, bool]:
    """Run the pipeline once; SIGKILL it after ``kill_after`` seconds. (seconds, finished)."""
    command = [
        sys.executable, "-m", "tools.orchestrator", "--stage", "all", "--no-live",
        "--start-url", base_url, "--data-dir", str(data_dir),
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        code = process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return time.perf_counter() - start, False
    if code != 0:
        raise RuntimeError(f"pipeline run failed with exit code {code}: {' '.join(command)}")
    return time.perf_counter() - start, True


def bench_kills(base_url: str, work: Path, kills_wanted: int, seed: int) -> None:
    rng = random.Random(seed)
    reference = work / "reference"
    client.reset(base_url)
    ref_time, _ = _orchestrate(base_url, reference, None)
    ref_fetches = client.stats(base_url)["requests"]
    killed = work / "killed"
    client.reset(base_url)
    total_time = 0.0
    kills = 0
    while kills < kills_wanted:
        elapsed, finished = _orchestrate(base_url, killed, rng.uniform(0.08, 0.35) * ref_time)
        total_time += elapsed
        if finished:
            break
        kills += 1
    if kills == kills_wanted:
        elapsed, _ = _orchestrate(base_url, killed, None)
        total_time += elapsed
    fetches = client.stats(base_url)["requests"]
    same = [_urls(reference / n) for n in _OUTPUTS] == [_urls(killed / n) for n in _OUTPUTS]
    _row("wall time, uninterrupted", f"{ref_time:.1f} s", "", None)
    _row(f"wall time, {kills} SIGKILLs + final run", f"{total_time:.1f} s", f"{ref_time:.1f} s",
         total_time / ref_time)  # fmt: skip
    _row(f"fetches, {kills} SIGKILLs + final run", f"{fetches:,}", f"{ref_fetches:,}",
         fetches / ref_fetches)  # fmt: skip
    print(f"  outputs identical to the uninterrupted run's (as URL sets): {same}")


def run_pipeline(args: argparse.Namespace) -> None:
    """Both parts on one demo site (``--pages``, ``--profile``)."""
    process, base_url = start_demo_site_process(
        args.pages, 9, profile=args.profile, robots_ms=args.robots_ms, stderr=subprocess.DEVNULL
    )
    base_url = base_url.rstrip("/") + "/"
    print(
        f"pipeline on a {args.pages:,}-page {args.profile} demo site (all three stages; "
        f"robots.txt answered after {args.robots_ms:g} ms)"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            if args.repeats > 0:
                print_on_off(bench_on_off(base_url, Path(tmp), args.repeats))
            if args.kills > 0:
                bench_kills(base_url, Path(tmp), args.kills, args.seed)
    finally:
        stop_demo_site_process(process)
