"""The whole pipeline on a real site nobody here built: CPython's documentation, as Debian ships it.

    python -m tools.bench realdocs [--package python3.11-doc] [--workdir DIR]
                                   [--concurrency 8] [--kills 0.25 0.5 0.75] [--backlog 128]
                                   [--skip-kills]

The site: ``apt-get download PACKAGE`` and ``dpkg-deb -x`` into ``--workdir`` (default
``$TMPDIR/resumable-crawl-realdocs``, reused by the next run; never the repository), a real
Sphinx build of ~530 pages (sidebars, genindex pages of 17,000 links, ``#fragments``,
``index.html`` next to ``/``, a real 404, non-HTML downloads), served on 127.0.0.1 by the
standard library's ``http.server`` handler (:mod:`tools.bench.static_server`: the stock server
with a listen backlog of ``--backlog``; 5 is the stock one).

1. **Uninterrupted**: ``python -m tools.orchestrator --start-url BASE --data-dir D
   --concurrency-per-domain N --stage S`` for each stage in turn, timed: pages per second of
   each stage, against baselines measured in the same run: discovery's URL set against
   :func:`~tools.bench.realdocs_check.walk_site` (and its time), validation against a bare
   aiohttp loop GETting the same URLs at the same concurrency, enrichment against
   ``extract_page`` alone over the same files in one thread (stage 3 is CPU-bound here).
2. **Extraction**: stage 3's records against an independent reading of the same files
   (:func:`~tools.bench.realdocs_check.compare_extraction`).
3. **Interrupted**: one data directory, the same ``--stage all`` command run again and again;
   each run is stopped when a stage's output holds a fraction (``--kills``) of the
   uninterrupted run's records: SIGKILL to the orchestrator alone (its children must die with
   it) and to the whole process tree, in turn; and once per stage a Ctrl-C (SIGINT to the
   process group, as a terminal sends it) and a SIGTERM to the orchestrator. Then the command
   runs to its end. Every output and failed sidecar is compared by URL with the uninterrupted
   run's: lost, extra, doubled, torn lines; any process left behind is counted.

Needs ``apt-get`` and ``dpkg-deb`` (Debian/Ubuntu) and BeautifulSoup (the test extra). Exit 0
when nothing was lost, doubled or left running and the URL sets agree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from common.argtypes import fraction, positive_int
from enrich.same_page import page_key
from enrich.url_source import valid_page_url
from tools.bench.chaos import descendants, running_stage
from tools.bench.realdocs_check import compare_extraction, walk_site
from tools.bench.static_server import start_static_server, stop_static_server
from tools.orchestrator.stages import STAGES
from tools.testing.jsonl_audit import FileAudit, audit_jsonl

__all__ = ["main"]

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
_POLL: Final = 0.005
_USER_AGENT: Final = "resumable-crawl realdocs bench (+https://example.invalid/bot)"


# The site ----------------------------------------------------------------------------------


def fetch_site(package: str, workdir: Path) -> Path:
    """The package's HTML root under ``workdir``, downloaded and unpacked unless it is there."""
    found = sorted((workdir / "root").glob("usr/share/doc/*/html/index.html"))
    if not found:
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("*.deb"):
            old.unlink()
        subprocess.run(["apt-get", "download", package], cwd=workdir, check=True)
        (deb,) = workdir.glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "root")], check=True)
        found = sorted((workdir / "root").glob("usr/share/doc/*/html/index.html"))
    if not found:
        raise RuntimeError(f"{package} holds no usr/share/doc/*/html/index.html")
    return found[0].parent


# Runs --------------------------------------------------------------------------------------


def _command(base_url: str, data_dir: Path, concurrency: int, stage: str) -> list[str]:
    return [
        sys.executable, "-m", "tools.orchestrator", "--start-url", base_url,
        "--user-agent", _USER_AGENT, "--data-dir", str(data_dir),
        "--concurrency-per-domain", str(concurrency), "--no-live", "--stage", stage,
    ]  # fmt: skip


def _run(command: list[str], log: Path) -> float:
    """Run ``command`` to its end (exit 0 or an error); its wall time."""
    started = time.perf_counter()
    with log.open("ab") as handle:
        code = subprocess.run(
            command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        raise RuntimeError(f"exit {code}: {' '.join(command)} (see {log})")
    return time.perf_counter() - started


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@dataclass
class Stop:
    """One interrupted run: aimed at ``stage`` once its output holds ``target`` records."""

    stage: str
    target: int
    how: str  # kill (the orchestrator alone), kill-tree, int (Ctrl-C), term
    at_lines: int = -1
    landed_in: str | None = None
    exit_code: int | None = None
    left_running: int = 0


def _signal(process: subprocess.Popen[bytes], how: str) -> list[int]:
    """Send ``how``; the descendants alive at that moment (they must all end)."""
    children = descendants(process.pid)
    if how == "kill":
        process.send_signal(signal.SIGKILL)
    elif how == "kill-tree":
        for pid in [process.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    elif how == "int":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    return children


def _gone(pids: Sequence[int], timeout: float) -> int:
    """How many of ``pids`` still run after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and _running(pid)]
        time.sleep(0.05)
    return len(alive)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def interrupted_run(command: list[str], data_dir: Path, stop: Stop, log: Path) -> None:
    """Run ``command`` until ``stop`` says, stop it that way, and record what happened."""
    output = data_dir / next(s.output for s in STAGES if s.alias == stop.stage)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    children: list[int] = []
    while process.poll() is None:
        lines = _lines(output)
        child = running_stage(process.pid)
        if lines >= stop.target and child is not None:
            stop.at_lines, stop.landed_in = lines, child[1]
            children = _signal(process, stop.how)
            break
        time.sleep(_POLL)
    try:
        stop.exit_code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        stop.exit_code = process.wait()
    stop.left_running = _gone(children, 10.0)


def plan(reference: dict[str, int], fractions: Sequence[float]) -> list[Stop]:
    """The stops, stage by stage in order: SIGKILLs at ``fractions`` of the stage's records
    (the orchestrator alone and the tree in turn), a Ctrl-C at 35% and a SIGTERM at 60%."""
    stops: list[Stop] = []
    turn = 0
    for stage in STAGES:
        total = reference[stage.alias]
        wanted = [(f, "kill") for f in fractions] + [(0.35, "int"), (0.6, "term")]
        for share, how in sorted(wanted):
            if how == "kill":
                how = ("kill", "kill-tree")[turn % 2]
                turn += 1
            stops.append(Stop(stage.alias, max(1, int(total * share)), how))
    return stops


# Baselines ---------------------------------------------------------------------------------


async def _bare_fetch(urls: list[str], concurrency: int) -> float:
    """GET every URL (body read) at ``concurrency``; pages per second."""
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> None:
            async with semaphore, session.get(url) as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(url) for url in urls))
        return len(urls) / (time.perf_counter() - started)


def _records(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _row(name: str, value: str, baseline: str = "", note: str = "") -> None:
    print(f"  {name:<44} {value:>14}   {baseline:<34} {note}")


def _load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


# The report --------------------------------------------------------------------------------


def uninterrupted(
    base_url: str, root: Path, work: Path, concurrency: int
) -> tuple[Path, dict[str, int], bool]:
    """Part 1: the stages one by one, timed, each against its baseline; whether discovery
    found exactly the walk's URLs."""
    data_dir = work / "reference"
    log = work / "reference.log"
    seconds = {
        s.alias: _run(_command(base_url, data_dir, concurrency, s.alias), log) for s in STAGES
    }
    counts = {s.alias: _lines(data_dir / s.output) for s in STAGES}
    print(f"1. uninterrupted, stage by stage (process start included; load {_load()})")

    started = time.perf_counter()
    walked = walk_site(root, base_url)
    walk_seconds = time.perf_counter() - started
    discovered = audit_jsonl(data_dir / STAGES[0].output).url_set
    _row(
        "discovery",
        f"{counts['discovery'] / seconds['discovery']:.1f} pages/s",
        f"walk of the files: {len(walked) / walk_seconds:.1f} pages/s",
        f"{counts['discovery']} URLs; walk {len(walked)}: "
        f"{len(walked.keys() - discovered)} missed, {len(discovered - walked.keys())} extra",
    )
    for url in sorted(walked.keys() ^ discovered):
        print(f"    {'missed' if url in walked else 'extra'}: {url}")

    validated = _records(data_dir / STAGES[1].output)
    urls = [str(r["url"]) for r in validated]
    bare = asyncio.run(_bare_fetch(urls, concurrency))
    _row(
        "validation",
        f"{counts['validation'] / seconds['validation']:.1f} pages/s",
        f"bare aiohttp GETs: {bare:.1f} pages/s",
        f"{counts['validation']} URLs, {sum(1 for r in validated if not r['ok'])} not ok",
    )

    pages = [u for u in (valid_page_url(r) for r in validated) if u is not None]
    same = len(pages) - len({page_key(u) for u in pages})
    enriched = counts["enrichment"]
    agreement = compare_extraction(root, data_dir / STAGES[2].output)
    _row(
        "enrichment",
        f"{enriched / seconds['enrichment']:.1f} pages/s",
        f"extract_page alone: {enriched / agreement.ours_seconds:.1f} pages/s",
        f"{enriched} pages = {len(validated)} validated - "
        f"{len(validated) - len(pages)} not ok or not HTML - {same} same page",
    )
    print(
        f"2. extraction vs BeautifulSoup on {agreement.pages} pages (ours "
        f"{agreement.ours_seconds:.1f} s, BeautifulSoup {agreement.independent_seconds:.1f} s):"
    )
    for name, urls_differing in agreement.disagreements.items():
        print(f"    {name:<6} agree on {agreement.agreed(name)}/{agreement.pages}", end="")
        print(f"; e.g. {', '.join(urls_differing[:3])}" if urls_differing else "")
    if agreement.record_differs:
        print(f"    records unlike extract_page of the file: {len(agreement.record_differs)}")
    return data_dir, counts, walked.keys() == discovered


def interrupted(
    base_url: str, work: Path, concurrency: int, reference: Path, counts: dict[str, int],
    fractions: Sequence[float],
) -> bool:  # fmt: skip
    """Part 2: the stops, then a run to the end; the outputs against the reference's."""
    data_dir = work / "interrupted"
    log = work / "interrupted.log"
    command = _command(base_url, data_dir, concurrency, "all")
    stops = plan(counts, fractions)
    started = time.perf_counter()
    for stop in stops:
        interrupted_run(command, data_dir, stop, log)
    _run(command, log)
    elapsed = time.perf_counter() - started
    print(f"3. interrupted: {len(stops)} stops, then the same command to its end ({elapsed:.1f} s)")
    for stop in stops:
        print(
            f"    {stop.how:<9} aimed at {stop.stage} >= {stop.target:>4}: "
            f"at {stop.at_lines:>4} lines in {stop.landed_in}, exit {stop.exit_code}"
            + (f", {stop.left_running} processes left running" if stop.left_running else "")
        )
    clean = all(stop.left_running == 0 for stop in stops)
    for stage in STAGES:
        for name in (stage.output, stage.sidecar()):
            want, got = audit_jsonl(reference / name), audit_jsonl(data_dir / name)
            clean &= _print_audit(name, want, got)
    return clean


def _print_audit(name: str, want: FileAudit, got: FileAudit) -> bool:
    lost, extra = len(want.url_set - got.url_set), len(got.url_set - want.url_set)
    print(
        f"    {name:<48} {got.lines:>4} records vs {want.lines:>4}: {lost} lost, {extra} extra, "
        f"{got.doubled} doubled, torn {got.torn}, bad lines {got.bad_lines}"
    )
    return not (lost or extra or got.doubled or got.torn or got.bad_lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench realdocs")
    parser.add_argument("--package", default="python3.11-doc")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "resumable-crawl-realdocs"
    )
    parser.add_argument("--concurrency", type=positive_int, default=8)
    parser.add_argument("--kills", type=fraction(1.0), nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--backlog", type=positive_int, default=128)
    parser.add_argument("--skip-kills", action="store_true")
    args = parser.parse_args(argv)

    root = fetch_site(args.package, args.workdir)
    process, base_url = start_static_server(root, args.backlog)
    print(
        f"realdocs: {args.package} ({root}) served at {base_url} (listen backlog "
        f"{args.backlog}), concurrency {args.concurrency}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-realdocs-") as tmp:
            work = Path(tmp)
            reference, counts, clean = uninterrupted(base_url, root, work, args.concurrency)
            if not args.skip_kills:
                clean &= interrupted(
                    base_url, work, args.concurrency, reference, counts, args.kills
                )
            shutil.rmtree(work, ignore_errors=True)
    finally:
        stop_static_server(process)
    print(f"  load {_load()}")
    return 0 if clean else 1
