"""Run the crawl -> validate -> enrich pipeline end to end, resuming wherever it stopped.

    python -m tools.orchestrator --env development --stage all
    python -m tools.orchestrator --env production --config tools/production.example.toml
    python -m tools.orchestrator --stage all --start-url https://www.example.edu/ --data-dir DIR
    python -m tools.orchestrator --stage all --workers 4 --dsn postgresql://user@db-host/crawl

``--workers N --dsn DSN`` shares the enrichment stage with N worker processes through
PostgreSQL (see ``docs/postgres.md``); without it every stage runs in one process.

``--env development`` with no ``--start-url`` starts the local demo site (``tools.demo_site``)
and crawls it, so the whole job runs offline. The site's port, size and seed are remembered in
``DATA_DIR/demo_site.json`` so that a resumed run talks to the same URLs.

Each stage runs in a child process (a Twisted reactor cannot be restarted in one process) with
its own checkpoint; a stage already completed on the same input is skipped by its child without
fetching anything. Progress is read from the checkpoints: a live view with a bar per stage on
a terminal, the seed's log lines otherwise, and a summary table at the end.

``--store sqlite`` keeps every stage's checkpoint in ``DATA_DIR/checkpoints/checkpoints.sqlite3``
(done keys in a table, a per-item ledger); without ``--store`` a directory that already holds
that database keeps using it, and JSON files are the default otherwise.

SIGINT/SIGTERM: the running stage saves and pauses, and the orchestrator exits 130/143; a
second Ctrl-C stops at once (the checkpoints on disk stay valid). Exit codes: 0 done, 1 a stage
failed or was refused (the reason is printed), 2 usage, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from common.errors import CheckpointError
from common.io.atomic import atomic_write_bytes, ensure_private_dir, open_private_append
from common.io.process import child_popen_options
from common.manager import StageInfo, UnifiedCheckpointManager
from common.progress import format_duration, format_progress_line
from common.status import CheckpointStatus
from common.stores import detect_store, open_store
from common.stores.factory import store_argument
from common.work_queue.dsn import DSN_ENV, resolve_dsn

__all__ = ["STAGES", "PipelineConfig", "main"]

logger = logging.getLogger("tools.orchestrator")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = PROJECT_ROOT / "tools" / "production.example.toml"


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One pipeline stage: its checkpoint name, aliases, input and output files."""

    name: str
    alias: str
    output: str
    input: str | None


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


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """What a run crawls and how hard."""

    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    depth_limit: int = 10
    concurrency: int = 32
    concurrency_per_domain: int = 32
    download_delay: float = 0.0
    obey_robots: bool = True
    enrichment_concurrency: int = 64
    enrichment_per_host: int = 16
    user_agent: str | None = None
    block_private_addresses: bool = False

    def __post_init__(self) -> None:
        # "http://host" and "http://host/" are one page: keep one spelling, so the resume guard
        # (a hash of this config) does not see a change where there is none.
        normalized = tuple(
            url + "/" if urlsplit(url).path == "" and "?" not in url else url
            for url in self.start_urls
        )
        object.__setattr__(self, "start_urls", normalized)
        if not self.start_urls:
            raise ValueError("no start URL: give --start-url or start_urls in the config")
        for url in self.start_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"invalid start URL {url!r}: expected an absolute http(s) URL")
        if self.depth_limit < 1:
            raise ValueError(f"depth_limit must be >= 1, got {self.depth_limit}")
        for name in ("concurrency", "concurrency_per_domain", "enrichment_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class ConfigError(ValueError):
    """A configuration file or option that cannot be used."""


class UsageError(ConfigError):
    """A command-line option with a value it cannot take (exit code 2)."""


def load_config_file(path: Path, overrides: Sequence[str]) -> PipelineConfig:
    """Read a production TOML config (see ``tools/production.example.toml``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    crawl = data.get("crawl", {})
    enrichment = data.get("enrichment", {})
    known_crawl = {
        "start_urls",
        "allowed_domains",
        "depth_limit",
        "concurrency",
        "concurrency_per_domain",
        "download_delay",
        "obey_robots",
        "user_agent",
    }
    unknown = (set(crawl) - known_crawl) | {f"enrichment.{k}" for k in enrichment} - {
        "enrichment.concurrency",
        "enrichment.per_host",
    }
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(sorted(unknown))}")
    start_urls = tuple(overrides) or tuple(crawl.get("start_urls", ()))
    try:
        return PipelineConfig(
            start_urls=start_urls,
            allowed_domains=tuple(crawl.get("allowed_domains", ()))
            or tuple(sorted({urlsplit(u).hostname or "" for u in start_urls} - {""})),
            depth_limit=int(crawl.get("depth_limit", 3)),
            concurrency=int(crawl.get("concurrency", 16)),
            concurrency_per_domain=int(crawl.get("concurrency_per_domain", 8)),
            download_delay=float(crawl.get("download_delay", 0.25)),
            obey_robots=bool(crawl.get("obey_robots", True)),
            user_agent=crawl.get("user_agent"),
            enrichment_concurrency=int(enrichment.get("concurrency", 32)),
            enrichment_per_host=int(enrichment.get("per_host", 8)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


# Demo site -------------------------------------------------------------------------------------


@dataclass
class DemoSiteHandle:
    process: subprocess.Popen[str]
    base_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_demo_site(data_dir: Path, pages: int, seed: int, log: TextIO) -> DemoSiteHandle:
    """Start the demo site on the port remembered for ``data_dir`` (a free one the first time)."""
    from tools.demo_site import DemoSiteStartError, start_demo_site_process

    record_path = data_dir / "demo_site.json"
    port = 0
    if record_path.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(record_path.read_text())
            if record["pages"] == pages and record["seed"] == seed:
                port = int(record["port"])
    port = port or _free_port()
    try:
        process, base_url = start_demo_site_process(
            pages, seed, port=port, stderr=log, popen_options=child_popen_options()
        )
    except DemoSiteStartError as exc:
        raise ConfigError(
            f"the demo site could not start on port {port} (remembered in {record_path} so a "
            f"resumed crawl sees the same URLs); free the port, or delete {record_path} to "
            f"crawl again from scratch on a new port ({exc})"
        ) from None
    ensure_private_dir(data_dir)
    atomic_write_bytes(
        record_path,
        json.dumps({"port": port, "pages": pages, "seed": seed}).encode() + b"\n",
        temp_path=record_path.with_name(f".{record_path.name}.tmp"),
    )
    return DemoSiteHandle(process, base_url)


# Running stages --------------------------------------------------------------------------------


@dataclass
class RunState:
    """What the signal handlers share with the main loop."""

    child: subprocess.Popen[bytes] | None = None
    stop_signal: int | None = None
    signals_seen: int = 0
    results: dict[str, str] = field(default_factory=dict)


def stage_command(
    stage: StageSpec,
    config: PipelineConfig,
    data_dir: Path,
    *,
    force: bool,
    fresh: bool,
    store: str = "json",
    workers: int | None = None,
) -> list[str]:
    """The child command line that runs ``stage`` (checkpoints in the ``store`` named).

    With ``workers``, the enrichment stage is shared by that many worker processes through
    PostgreSQL (the connection string reaches the child as ``$RESUMABLE_CRAWL_DSN``).
    """
    checkpoint_dir = data_dir / "checkpoints"
    if stage.alias == "enrichment":
        command = [
            sys.executable,
            "-m",
            "enrich",
            "--data-dir",
            str(data_dir),
            "--checkpoint-dir",
            str(checkpoint_dir),
            "--store",
            store,
            "--concurrency",
            str(config.enrichment_concurrency),
            "--per-host",
            str(config.enrichment_per_host),
        ]
        for domain in config.allowed_domains:
            command += ["--allowed-domain", domain]
        if config.block_private_addresses:
            command.append("--block-private-addresses")
        if workers is not None:
            command += ["--workers", str(workers)]
        if force:
            command.append("--force")
        if fresh:
            command.append("--fresh")
        return command
    settings = {
        "DATA_DIR": str(data_dir),
        "CHECKPOINT_DIR": str(checkpoint_dir),
        "CHECKPOINT_STORE": store,
        "DEPTH_LIMIT": str(config.depth_limit),
        "CONCURRENT_REQUESTS": str(config.concurrency),
        "CONCURRENT_REQUESTS_PER_DOMAIN": str(config.concurrency_per_domain),
        "DOWNLOAD_DELAY": str(config.download_delay),
        "ROBOTSTXT_OBEY": str(config.obey_robots),
        "CHECKPOINT_FORCE": str(force),
        "CHECKPOINT_FRESH": str(fresh),
        "LOG_LEVEL": "INFO",
    }
    if config.user_agent:
        settings["USER_AGENT"] = config.user_agent
    command = [sys.executable, "-m", "scrapy", "crawl", stage.alias]
    if stage.alias == "discovery":
        command += [
            "-a",
            "start_url=" + ",".join(config.start_urls),
            "-a",
            "allowed_domains=" + ",".join(config.allowed_domains),
        ]
    for key, value in settings.items():
        command += ["-s", f"{key}={value}"]
    return command


def _child_env(dsn: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if dsn is not None:
        env[DSN_ENV] = dsn  # by environment, so a password never shows in a process list
    env["SCRAPY_SETTINGS_MODULE"] = "crawler.settings"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _workers_detail(info: StageInfo) -> str:
    """`` | 4 workers`` for a stage shared through PostgreSQL (its record lists them)."""
    shared = info.state.metadata.get("work_queue") if info.state is not None else None
    if not isinstance(shared, dict):
        return ""
    workers = shared.get("workers") or []
    alive = sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "alive")
    return f" | {alive} workers"


class ProgressView:
    """A bar per stage on a terminal; the seed's log lines otherwise."""

    def __init__(self, console: Console, stages: Sequence[StageSpec], live: bool) -> None:
        self.console = console
        self.live_enabled = live
        self.progress = Progress(
            TextColumn("{task.fields[stage]:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]:<10}"),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {
            s.name: self.progress.add_task(
                s.name, total=None, stage=s.name, status="waiting", detail=""
            )
            for s in stages
        }
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> ProgressView:
        if self.live_enabled:
            # No refresh thread: children are forked from this process, and forking while
            # another thread holds a lock can deadlock the child.
            self._live = Live(self.progress, console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)

    def show(self, info: StageInfo, *, force_line: bool = False) -> None:
        task = self.tasks[info.stage]
        snapshot = info.progress()
        status = info.status
        if snapshot is None or info.state is None:
            self.progress.update(task, status=status, detail=info.error or "")
        else:
            total = snapshot.total or None
            if info.state.status is CheckpointStatus.COMPLETED:
                total = snapshot.processed
            detail = (
                f"ok {snapshot.success_rate:.1f}% | {snapshot.throughput:.1f}/s | "
                f"ETA {format_duration(snapshot.eta_seconds)}"
            )
            detail += _workers_detail(info)
            self.progress.update(
                task, total=total, completed=snapshot.processed, status=status, detail=detail
            )
            now = time.monotonic()
            if not self.live_enabled and (force_line or now - self._last_line >= 5.0):
                self._last_line = now
                logger.info("%s: %s", info.stage, format_progress_line(snapshot))
        if self._live is not None:
            self._live.refresh()

    def note(self, stage: str, status: str, detail: str = "") -> None:
        self.progress.update(self.tasks[stage], status=status, detail=detail)
        if self._live is not None:
            self._live.refresh()


def run_stage(
    stage: StageSpec,
    command: list[str],
    manager: UnifiedCheckpointManager,
    view: ProgressView,
    state: RunState,
    log_path: Path,
    *,
    echo: bool,
    dsn: str | None = None,
) -> int:
    """Run one stage's child to the end, showing its progress; return its exit code.

    The child's output always goes to ``log_path``; with ``echo`` it is copied to stderr too.
    """
    with open(open_private_append(log_path), "ab") as log_handle, log_path.open("rb") as reader:
        reader.seek(0, os.SEEK_END)

        def pump() -> None:
            if echo:
                data = reader.read()
                if data:
                    sys.stderr.buffer.write(data)
                    sys.stderr.buffer.flush()

        # Block SIGINT/SIGTERM while the child starts so a signal cannot fall between the
        # fork and our noting the child; the child unblocks them before exec.
        blocked = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            child = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                command,
                cwd=PROJECT_ROOT,
                env=_child_env(dsn),
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                **child_popen_options(),
            )
            state.child = child
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        try:
            view.note(stage.name, "running")
            while True:
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pump()
                    if stage.name in manager.stages():
                        view.show(manager.inspect(stage.name))
            pump()
            if stage.name in manager.stages():
                view.show(manager.inspect(stage.name), force_line=True)
            return code
        finally:
            state.child = None


_ERROR_LINE = re.compile(
    r"(?:InputChangedError|ConfigChangedError|CheckpointLockedError|CheckpointCorruptError|"
    r"CheckpointSchemaError|CheckpointSaveError|CheckpointError|FileNotFoundError|ValueError): (.+)"
)


def _failure_reason(log_path: Path, info: StageInfo | None) -> str:
    """The one line that says why a stage stopped: its recorded error, or its log's."""
    if info is not None and info.state is not None and info.state.error_message:
        return info.state.error_message
    if log_path.is_file():
        lines = log_path.read_text(errors="replace").splitlines()[-400:]
        for line in reversed(lines):
            match = _ERROR_LINE.search(line)
            if match:
                return match.group(1).strip()
        for line in reversed(lines):
            if "error" in line.lower():
                return line.strip()
    return "see the stage log"


def summary_table(infos: Sequence[StageInfo]) -> Table:
    table = Table(title="Pipeline summary")
    for column in (
        "Stage",
        "Status",
        "Processed",
        "Success",
        "Failed",
        "Skipped",
        "Rate",
        "Time",
    ):
        left = column in ("Stage", "Status")
        # Names and statuses never wrap: the numbers give way on a narrow terminal.
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for info in infos:
        snapshot = info.progress()
        if snapshot is None:
            table.add_row(info.stage, info.status, "-", "-", "-", "-", "-", "-")
            continue
        table.add_row(
            info.stage,
            info.status,
            f"{snapshot.processed}/{snapshot.total}",
            f"{snapshot.success_rate:.1f}%",
            str(snapshot.failed),
            str(snapshot.skipped),
            f"{snapshot.throughput:.1f}/s",
            format_duration(snapshot.active_seconds),
        )
    return table


def select_stages(choice: str) -> list[StageSpec]:
    if choice == "all":
        return list(STAGES)
    for stage in STAGES:
        if choice in (stage.name, stage.alias):
            return [stage]
    names = ", ".join(["all", *(s.alias for s in STAGES), *(s.name for s in STAGES)])
    raise UsageError(f"unknown stage {choice!r}: choose one of {names}")


def check_inputs(
    stages: Sequence[StageSpec], manager: UnifiedCheckpointManager, data_dir: Path, force: bool
) -> None:
    """Refuse to resume an unfinished stage over a changed input (unless forced)."""
    for stage in stages:
        if stage.input is None or force:
            continue
        info = manager.inspect(stage.name) if stage.name in manager.stages() else None
        if info is None or info.state is None:
            continue
        if info.state.status in (CheckpointStatus.COMPLETED, CheckpointStatus.INITIALIZED):
            continue
        checkpoint = manager.get_checkpoint(stage.name)
        input_path = data_dir / stage.input
        if input_path.is_file():
            ok, reason = checkpoint.validate_input_file(input_path)
            if not ok:
                raise ConfigError(
                    f"cannot resume {stage.name}: {reason}. Rerun with --force to resume over "
                    f"it, or --fresh to start the stage over"
                )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.orchestrator",
        description="Run the crawl -> validate -> enrich pipeline; resumes where it stopped.",
        epilog="Exit codes: 0 done, 1 a stage failed or was refused, 2 usage, 130/143 interrupted.",
    )
    parser.add_argument("--env", choices=("development", "production"), default="development")
    parser.add_argument(
        "--stage", default="all", help="all, discovery, validation, enrichment or a stage name"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--start-url", action="append", default=[], help="repeatable")
    parser.add_argument("--allowed-domain", action="append", default=[], help="repeatable")
    parser.add_argument("--config", type=Path, help="production TOML config")
    parser.add_argument(
        "--store",
        type=store_argument,
        metavar="STORE",
        help="checkpoint store (default: sqlite if DATA_DIR/checkpoints holds "
        "checkpoints.sqlite3, else json)",
    )
    parser.add_argument("--fresh", action="store_true", help="forget progress of the stages run")
    parser.add_argument("--force", action="store_true", help="resume over changed input/config")
    parser.add_argument("--pages", type=int, default=500, help="demo site size (development)")
    parser.add_argument("--seed", type=int, default=2024, help="demo site seed (development)")
    parser.add_argument("--depth-limit", type=int, help="override the crawl depth limit")
    parser.add_argument(
        "--workers",
        type=int,
        help="share the enrichment stage with N worker processes through PostgreSQL",
    )
    parser.add_argument(
        "--dsn", help=f"PostgreSQL connection string for --workers (default ${DSN_ENV})"
    )
    parser.add_argument("--no-live", action="store_true", help="log lines instead of live bars")
    parser.add_argument(
        "--block-private-addresses",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="enrichment refuses private, loopback and link-local addresses, also after "
        "redirects and DNS answers (default: on with --env production, off in development)",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def resolve_config(args: argparse.Namespace, demo_url: str | None) -> PipelineConfig:
    if args.env == "production" and not args.start_url:
        config = load_config_file(args.config or EXAMPLE_CONFIG, ())
    elif args.config is not None:
        config = load_config_file(args.config, args.start_url)
    else:
        start_urls = tuple(args.start_url) or ((demo_url,) if demo_url else ())
        domains = tuple(args.allowed_domain) or tuple(
            sorted({urlsplit(u).hostname or "" for u in start_urls} - {""})
        )
        config = PipelineConfig(start_urls=start_urls, allowed_domains=domains)
    if args.allowed_domain:
        config = _replace(config, allowed_domains=tuple(args.allowed_domain))
    if args.depth_limit is not None:
        config = _replace(config, depth_limit=args.depth_limit)
    block = args.block_private_addresses
    if block is None:
        block = args.env == "production"
    return _replace(config, block_private_addresses=block)


def _replace(config: PipelineConfig, **changes: Any) -> PipelineConfig:
    from dataclasses import replace

    return replace(config, **changes)


@contextlib.contextmanager
def signal_handling(state: RunState) -> Iterator[None]:
    """First SIGINT/SIGTERM: forward it to the running stage; second: stop at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        state.signals_seen += 1
        state.stop_signal = state.stop_signal or signum
        child = state.child
        if state.signals_seen == 1:
            if child is not None and child.poll() is None:
                child.send_signal(signum)
            return
        if child is not None and child.poll() is None:
            child.kill()
        os._exit(128 + (state.stop_signal or signum))

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(args: argparse.Namespace, console: Console) -> int:
    data_dir: Path = args.data_dir.resolve()
    stages = select_stages(args.stage)
    dsn = resolve_dsn(args.dsn)
    if args.workers is not None:
        if args.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {args.workers}")
        if dsn is None:
            raise UsageError(f"--workers needs a database: give --dsn or set {DSN_ENV}")
    ensure_private_dir(data_dir)  # outputs, checkpoints and logs are not for other users
    ensure_private_dir(data_dir / "logs")
    checkpoint_dir = data_dir / "checkpoints"
    store_name: str = args.store or detect_store(checkpoint_dir)
    store = open_store(store_name, checkpoint_dir)
    manager = UnifiedCheckpointManager(checkpoint_dir, store=store)
    try:
        return _run(args, console, data_dir, stages, manager, store_name, dsn)
    finally:
        manager.close()
        store.close()


def _run(
    args: argparse.Namespace,
    console: Console,
    data_dir: Path,
    stages: list[StageSpec],
    manager: UnifiedCheckpointManager,
    store_name: str,
    dsn: str | None,
) -> int:
    log_dir = data_dir / "logs"
    check_inputs(stages, manager, data_dir, args.force or args.fresh)
    state = RunState()
    demo: DemoSiteHandle | None = None
    live = console.is_terminal and not args.no_live
    if live and not args.verbose:
        logger.setLevel(logging.WARNING)  # the bars say it; log lines would tear the view
    try:
        with signal_handling(state):
            if args.env == "development" and not args.start_url and args.config is None:
                with open(open_private_append(log_dir / "demo_site.log"), "a") as site_log:
                    demo = start_demo_site(data_dir, args.pages, args.seed, site_log)
                logger.info(
                    "demo site (%d pages, seed %d) at %s", args.pages, args.seed, demo.base_url
                )
            config = resolve_config(args, demo.base_url if demo else None)
            with ProgressView(console, stages, live) as view:
                for stage in stages:
                    if state.stop_signal is not None:
                        break
                    command = stage_command(
                        stage,
                        config,
                        data_dir,
                        force=args.force,
                        fresh=args.fresh,
                        store=store_name,
                        workers=args.workers,
                    )
                    logger.info("running %s", stage.name)
                    if stage.input is not None and not (data_dir / stage.input).is_file():
                        raise ConfigError(
                            f"cannot run {stage.name}: its input {data_dir / stage.input} does "
                            f"not exist (run the earlier stages first, e.g. --stage all)"
                        )
                    log_path = log_dir / f"{stage.name}.log"
                    code = run_stage(
                        stage, command, manager, view, state, log_path, echo=not live, dsn=dsn
                    )
                    info = manager.inspect(stage.name)
                    state.results[stage.name] = info.status
                    if state.stop_signal is not None:
                        view.note(stage.name, info.status, "stopped by signal")
                        break
                    if code != 0 or info.status != CheckpointStatus.COMPLETED.value:
                        reason = _failure_reason(log_path, info)
                        if "changed since checkpoint" in reason:
                            reason += (
                                " (rerun with --force to resume anyway, or --fresh to start over)"
                            )
                        view.note(stage.name, info.status, reason)
                        print(
                            f"error: stage {stage.name} did not complete (exit {code}, status "
                            f"{info.status}): {reason} (log: {log_path})",
                            file=sys.stderr,
                        )
                        return 1
            infos = [manager.inspect(s.name) for s in stages if s.name in manager.stages()]
            console.print(summary_table(infos))
            for stage in stages:
                console.print(f"{stage.name}: {data_dir / stage.output}")
    finally:
        if demo is not None:
            from tools.demo_site import stop_demo_site_process

            stop_demo_site_process(demo.process)
    if state.stop_signal is not None:
        console.print(f"stopped by signal {signal.Signals(state.stop_signal).name}: progress saved")
        return 128 + state.stop_signal
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(message)s",
        stream=sys.stderr,
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    try:
        return run(args, console)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
