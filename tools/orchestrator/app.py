"""Run the crawl -> validate -> enrich pipeline end to end, resuming wherever it stopped.

    python -m tools.orchestrator --env development --stage all
    python -m tools.orchestrator --start-url https://docs.example.org/ --user-agent "..."
    python -m tools.orchestrator --env production --config tools/production.example.toml
    python -m tools.orchestrator --stage all --workers 4 --dsn postgresql://user@db-host/crawl

``--env development`` with no ``--start-url`` starts the local demo site (``tools.demo_site``)
and crawls it fast, so the whole job runs offline. The site's port, size and seed are
remembered in ``DATA_DIR/demo_site.json`` so that a resumed run talks to the same URLs. Any
other site is crawled politely (see :mod:`tools.orchestrator.config`).

One run per data directory: ``DATA_DIR/orchestrator.lock`` is taken before anything else is
touched, and a second run is refused with the holder's pid. A stage completed with the same
command on the same input is skipped without starting its child; when every stage is, the run
says "nothing to do, all stages completed".

``--workers N --dsn DSN`` shares the enrichment stage with N worker processes through
PostgreSQL (see ``docs/postgres.md``). ``--store sqlite`` keeps every stage's checkpoint in
``DATA_DIR/checkpoints/checkpoints.sqlite3``.

SIGINT/SIGTERM: the running stage saves and pauses, and the orchestrator exits 130/143; a
second Ctrl-C stops at once (the checkpoints on disk stay valid). Exit codes: 0 done, 1 a stage
failed or was refused (the reason is printed), 2 usage, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from rich.console import Console

from common.argtypes import non_negative_float, non_negative_int, positive_float, positive_int
from common.errors import CheckpointError, CheckpointLockedError
from common.io.atomic import ensure_private_dir, open_private_append
from common.io.locking import StageLock
from common.manager import UnifiedCheckpointManager
from common.status import CheckpointStatus
from common.stores import detect_store, open_store
from common.stores.factory import store_argument
from common.work_queue.dsn import DSN_ENV, resolve_dsn
from tools.orchestrator.config import (
    DEFAULT_USER_AGENT,
    ConfigError,
    PipelineConfig,
    UsageError,
    resolve_config,
)
from tools.orchestrator.demo import DemoSiteHandle, demo_url, remembered_port, start_demo_site
from tools.orchestrator.politeness import check_addresses, robots_crawl_delay
from tools.orchestrator.stages import (
    STAGES,
    RunState,
    StageRecord,
    StageSpec,
    check_inputs,
    failure_reason,
    fetched_nothing,
    run_stage,
    select_stages,
    stage_command,
    stopped_at_cap,
)
from tools.orchestrator.view import ProgressView, StageOutcome, summary_lines, summary_table

__all__ = ["STAGES", "PipelineConfig", "build_parser", "main", "resolve_config", "stage_command"]

logger = logging.getLogger("tools.orchestrator")

STOPPED_AT_ONCE = "stopped at once; checkpoints are valid: run the same command to resume"


# One run per data directory --------------------------------------------------------------------


def lock_data_dir(data_dir: Path) -> StageLock:
    """Take ``DATA_DIR/orchestrator.lock`` or raise :class:`ConfigError` naming the holder."""
    lock = StageLock(data_dir / "orchestrator.lock", "orchestrator")
    try:
        lock.acquire()
    except CheckpointLockedError as exc:
        who = f"pid {exc.holder_pid}" if exc.holder_pid else "another process"
        raise ConfigError(
            f"another orchestrator ({who}) is running on {data_dir}; wait for it to finish "
            f"or stop it first (nothing was changed)"
        ) from None
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    return lock


# The command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # Installed as the console script ``resumable-pipeline``; both names are the same command.
    installed = Path(sys.argv[0]).name == "resumable-pipeline"
    parser = argparse.ArgumentParser(
        prog="resumable-pipeline" if installed else "python -m tools.orchestrator",
        description="Run the crawl -> validate -> enrich pipeline; resumes where it stopped.",
        epilog="Exit codes: 0 done, 1 a stage failed or was refused, 2 usage, 130/143 "
        "interrupted. Crawling a site that is not yours: see the README, 'Crawling a real site'.",
    )
    parser.add_argument("--env", choices=("development", "production"), default="development")
    parser.add_argument(
        "--stage", default="all", help="all, discovery, validation, enrichment or a stage name"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--start-url",
        action="append",
        default=[],
        help="repeatable; crawled politely unless on this machine",
    )
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
    parser.add_argument(
        "--pages", type=positive_int, default=500, help="demo site size (development)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=2024, help="demo site seed (development)"
    )
    polite = parser.add_argument_group("politeness (see the README, 'Crawling a real site')")
    polite.add_argument(
        "--polite",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AutoThrottle, 2 requests per domain, 1 s delay, robots.txt crawl-delay (default: "
        "on unless every start URL is on this machine)",
    )
    polite.add_argument(
        "--user-agent", help=f"who is crawling, with a contact (default {DEFAULT_USER_AGENT!r})"
    )
    polite.add_argument("--depth-limit", type=positive_int, help="links followed from a start URL")
    polite.add_argument(
        "--concurrency-per-domain", type=positive_int, help="requests in flight per domain"
    )
    polite.add_argument(
        "--download-delay", type=non_negative_float, help="seconds between requests to a domain"
    )
    polite.add_argument(
        "--max-pages", type=positive_int, help="stop discovery after N pages in this run"
    )
    polite.add_argument(
        "--max-time", type=positive_float, metavar="SECONDS", help="stop discovery after SECONDS"
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
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
        help="refuse private, loopback and link-local addresses (SSRF guard; default: on with "
        "--env production, off in development)",
    )
    parser.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="an address or network exempt from --block-private-addresses (repeatable)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="copy the stages' whole logs to the terminal (log lines instead of live bars)",
    )
    return parser


# Signals ---------------------------------------------------------------------------------------


class StoppedAtOnce(BaseException):
    """A second SIGINT/SIGTERM: the stage child is killed and the run unwinds from here.

    Raised by the handler in the main thread, wherever it is, like :class:`KeyboardInterrupt`
    (and, like it, no ``except Exception`` holds it up): the ``with`` blocks on the way close
    the live view the way rich does on a normal exit and stop the demo site.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signal_handling(state: RunState, console: Console) -> Iterator[None]:
    """First SIGINT/SIGTERM: forward it to the running stage; second: stop at once
    (:class:`StoppedAtOnce`); a third, while that unwinds: exit on the spot."""

    def handle(signum: int, frame: FrameType | None) -> None:
        state.signals_seen += 1
        state.stop_signal = state.stop_signal or signum
        child = state.child
        if child is not None and child.poll() is None:
            if state.signals_seen == 1:
                child.send_signal(signum)
            else:
                child.kill()
        if state.signals_seen == 1:
            return
        if state.signals_seen == 2:
            raise StoppedAtOnce(state.stop_signal)
        # The unwinding is stuck (a demo site slow to stop, say): leave without it. The live
        # view hid the cursor mid-line: show it and end the line before going.
        restore = b"\x1b[?25h\n" if console.is_terminal else b""
        with contextlib.suppress(OSError):
            os.write(sys.stdout.fileno(), restore + STOPPED_AT_ONCE.encode() + b"\n")
        os._exit(128 + state.stop_signal)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def showing_stop_at_once(view: ProgressView) -> Iterator[None]:
    """On :class:`StoppedAtOnce`, the bar of the stage that was running says so before the
    view closes (not the rate and ETA it had when the child was killed)."""
    try:
        yield
    except StoppedAtOnce:
        view.stop_running("at once: rerun to resume")
        raise


# The run ---------------------------------------------------------------------------------------


def _demo_mode(args: argparse.Namespace) -> bool:
    return args.env == "development" and not args.start_url and args.config is None


def run(args: argparse.Namespace, console: Console) -> int:
    """Check the options, take the data directory, run the stages; the exit code."""
    stages = select_stages(args.stage)
    dsn = resolve_dsn(args.dsn)
    if args.workers is not None and dsn is None:
        raise UsageError(f"--workers needs a database: give --dsn or set {DSN_ENV}")
    # Every option and the config file are checked before the data directory is touched.
    resolve_config(args, demo_url(1) + "/" if _demo_mode(args) else None)
    data_dir: Path = args.data_dir.resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not a directory (nothing was changed)")
    try:
        ensure_private_dir(data_dir)  # outputs, checkpoints and logs are not for other users
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data directory {data_dir}: {exc.strerror or exc}"
        ) from None
    lock = lock_data_dir(data_dir)
    try:
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
    finally:
        lock.release()


def _commands(
    args: argparse.Namespace,
    config: PipelineConfig,
    data_dir: Path,
    stages: Sequence[StageSpec],
    store_name: str,
) -> dict[str, list[str]]:
    return {
        s.name: stage_command(
            s,
            config,
            data_dir,
            force=args.force,
            fresh=args.fresh,
            store=store_name,
            workers=args.workers,
        )
        for s in stages
    }


def _pending(
    args: argparse.Namespace,
    stages: Sequence[StageSpec],
    commands: dict[str, list[str]],
    record: StageRecord,
    manager: UnifiedCheckpointManager,
) -> list[StageSpec]:
    """The stages that need their child: not completed with this command on this input."""
    if args.fresh:
        return list(stages)
    return [
        s
        for s in stages
        if (args.workers is not None and s.alias == "enrichment")
        or not record.is_done(s, commands[s.name], manager)
    ]


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
    record = StageRecord(data_dir)
    demo_mode = _demo_mode(args)
    port = remembered_port(data_dir, args.pages, args.seed) if demo_mode else None
    config = (
        resolve_config(args, demo_url(port) if port else None) if port or not demo_mode else None
    )
    pending = list(stages)
    if config is not None:
        pending = _pending(
            args, stages, _commands(args, config, data_dir, stages, store_name), record, manager
        )
    if not pending:
        outcomes = [StageOutcome(s, manager.inspect(s.name), ran=False) for s in stages]
        console.print("nothing to do, all stages completed")
        for line in summary_lines(outcomes, data_dir, demo=demo_mode):
            console.print(line, highlight=False, soft_wrap=True)
        return 0
    if config is not None and config.block_private_addresses:
        check_addresses(config)
    if config is not None and config.autothrottle and not config.user_agent:
        # Polite means saying who you are: a site owner who can reach you need not block you.
        print(
            f"warning: crawling as {DEFAULT_USER_AGENT!r}; set --user-agent "
            '"NAME (+https://your.site/ or mailto:you@example.org)" so the site can reach you',
            file=sys.stderr,
        )
    state = RunState()
    demo: DemoSiteHandle | None = None
    live = console.is_terminal and not args.no_live and not args.verbose  # logs tear bars
    if live:
        logger.setLevel(logging.WARNING)  # the bars say it; log lines would tear the view
    capped: str | None = None
    with signal_handling(state, console):
        try:
            if demo_mode:
                with open(open_private_append(log_dir / "demo_site.log"), "a") as site_log:
                    demo = start_demo_site(data_dir, args.pages, args.seed, site_log)
                logger.info(
                    "demo site (%d pages, seed %d) at %s", args.pages, args.seed, demo.base_url
                )
                config = resolve_config(args, demo.base_url)
            assert config is not None
            base_commands = _commands(args, config, data_dir, stages, store_name)
            pending = _pending(args, stages, base_commands, record, manager)
            run_config = _with_crawl_delay(config, pending)
            commands = _commands(args, run_config, data_dir, stages, store_name)
            with ProgressView(console, stages, live) as view, showing_stop_at_once(view):
                for stage in stages:
                    if state.stop_signal is not None:
                        break
                    # Decided now, not before the run: an earlier stage may just have changed
                    # this one's input.
                    if stage not in _pending(args, [stage], base_commands, record, manager):
                        view.show(manager.inspect(stage.name))
                        view.note(stage.name, "completed", "skipped: already completed")
                        logger.info("%s: already completed, skipped", stage.name)
                        continue
                    if stage.input is not None and not (data_dir / stage.input).is_file():
                        raise ConfigError(
                            f"cannot run {stage.name}: its input {data_dir / stage.input} does "
                            f"not exist (run the earlier stages first, e.g. --stage all)"
                        )
                    logger.info("running %s", stage.name)
                    log_path = log_dir / f"{stage.name}.log"
                    state.ran.append(stage.name)
                    code, start = run_stage(
                        stage,
                        commands[stage.name],
                        manager,
                        view,
                        state,
                        log_path,
                        echo=not live,
                        verbose=args.verbose,
                        demo=demo_mode,
                        dsn=dsn,
                    )
                    info = manager.inspect(stage.name)
                    if state.stop_signal is not None:
                        view.note(stage.name, info.status, "stopped by signal")
                        break
                    empty = fetched_nothing(stage, data_dir, info)
                    if code == 0 and info.status == CheckpointStatus.COMPLETED.value and not empty:
                        record.record(stage, base_commands[stage.name], manager)
                        continue
                    cap = stopped_at_cap(log_path, start) if stage.alias == "discovery" else None
                    if code == 0 and info.status == CheckpointStatus.PAUSED.value and cap:
                        capped = cap
                        view.note(stage.name, info.status, "stopped at its cap")
                        continue
                    reason = empty or failure_reason(log_path, start, info)
                    if "changed since checkpoint" in reason and "--force" not in reason:
                        reason += " (rerun with --force to resume anyway, or --fresh to start over)"
                    view.note(stage.name, info.status, reason)
                    view.close()
                    # A refused start leaves the status it found (missing, paused, even
                    # completed): naming that status next to the error would contradict it.
                    if info.status == CheckpointStatus.FAILED.value:
                        status = "failed"
                    elif info.status in (
                        CheckpointStatus.RUNNING.value,
                        CheckpointStatus.RECOVERING.value,
                    ):
                        status = "stopped"
                    else:
                        status = "did not start"
                    verdict = f"{stage.name} {empty or f'{status}: {reason}'}"
                    print(f"error: {verdict} (log: {log_path})", file=sys.stderr)
                    return 1
            if state.stop_signal is None:
                outcomes = [
                    StageOutcome(s, manager.inspect(s.name), ran=s.name in state.ran)
                    for s in stages
                    if s.name in manager.stages()
                ]
                console.print(summary_table(outcomes))
                if capped:
                    console.print(
                        f"discovery stopped at its cap ({capped.removeprefix('closespider_')}); "
                        "run the same command to crawl further",
                        highlight=False,
                    )
                for line in summary_lines(outcomes, data_dir, demo=demo_mode):
                    console.print(line, highlight=False, soft_wrap=True)
        finally:
            if demo is not None:
                from tools.demo_site import stop_demo_site_process

                stop_demo_site_process(demo.process)
    if state.stop_signal is not None:
        name = signal.Signals(state.stop_signal).name
        console.print(
            f"stopped by signal {name}: progress saved; run the same command to resume",
            highlight=False,
        )
        return 128 + state.stop_signal
    return 0


def _with_crawl_delay(config: PipelineConfig, pending: Sequence[StageSpec]) -> PipelineConfig:
    """A polite crawl waits at least what the sites' robots.txt ``Crawl-delay`` asks."""
    if not config.autothrottle or not config.obey_robots:
        return config
    if not any(s.alias in ("discovery", "validation") for s in pending):
        return config
    delay = robots_crawl_delay(config.start_urls, config.user_agent or DEFAULT_USER_AGENT)
    if delay is not None and delay > config.download_delay:
        logger.info("robots.txt asks for a crawl-delay of %g s: using it", delay)
        return replace(config, download_delay=delay)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.orchestrator``: the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(message)s",
        stream=sys.stderr,
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=100)
    try:
        return run(args, console)
    except StoppedAtOnce as stop:
        console.print(STOPPED_AT_ONCE, highlight=False)
        return 128 + stop.signum
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {_one_prefix(str(exc))}", file=sys.stderr)
        return 1


def _one_prefix(message: str) -> str:
    while message.lower().startswith("error:"):
        message = message[6:].lstrip()
    return message


if __name__ == "__main__":
    raise SystemExit(main())
