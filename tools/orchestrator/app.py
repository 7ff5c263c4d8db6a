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
``DATA_DIR/checkpoints/checkpoints.sqlite3``. A ``--store`` other than the one holding the data
directory's checkpoints is refused before anything changes (``--fresh --stage all`` switches,
removing the old store's checkpoints only when the first stage's child is about to start, or
leaving that to the child when they are its stage's alone):
:func:`common.stores.factory.select_store`.

The options are :mod:`.options`, the stages and their children :mod:`.stages`, the signal
handling :mod:`.signals`; this module takes the data directory and runs the stages in order.

SIGINT/SIGTERM: the running stage saves and pauses, and the orchestrator exits 130/143; a
second Ctrl-C stops at once (the checkpoints on disk stay valid). Exit codes: 0 done, 1 a stage
failed or was refused (the reason is printed), 2 usage, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from common.errors import CheckpointError, CheckpointLockedError
from common.io.atomic import ensure_private_dir, open_private_append
from common.io.locking import StageLock
from common.lifecycle import RESUME_ADVICE
from common.manager import UnifiedCheckpointManager
from common.status import CheckpointStatus
from common.stores import open_store
from common.stores.factory import StoreChoice, StoreMismatchError, select_store
from common.work_queue import WorkQueueUnavailableError
from common.work_queue.dsn import DSN_ENV, resolve_dsn
from tools.logfilter import SayOnce
from tools.orchestrator.config import (
    DEFAULT_USER_AGENT,
    ConfigError,
    PipelineConfig,
    UsageError,
    resolve_config,
)
from tools.orchestrator.demo import DemoSiteHandle, demo_url, remembered_port, start_demo_site
from tools.orchestrator.options import build_parser
from tools.orchestrator.politeness import check_addresses, robots_crawl_delay
from tools.orchestrator.signals import (
    STOPPED_AT_ONCE,
    StoppedAtOnce,
    showing_stop_at_once,
    signal_handling,
)
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


# The run ---------------------------------------------------------------------------------------


def _demo_mode(args: argparse.Namespace) -> bool:
    return args.env == "development" and not args.start_url and args.config is None


def run(args: argparse.Namespace, console: Console) -> int:
    """Check the options, take the data directory, run the stages; the exit code."""
    stages = select_stages(args.stage)
    dsn = resolve_dsn(args.dsn)
    if args.workers is not None and dsn is None:
        raise UsageError(f"--workers needs a database: give --dsn or set {DSN_ENV}")
    shared = [s for s in stages if s.alias == "enrichment"] if args.workers is not None else []
    if dsn is not None and shared:
        # Here, not at the top: it loads psycopg (~0.1 s), which a run without --workers
        # never needs.
        from common.work_queue import check_reachable

        # Before hours of crawling, not when the stage that needs it starts.
        try:
            check_reachable(dsn, shared[0].name)
        except WorkQueueUnavailableError as exc:
            raise ConfigError(f"{exc} (nothing was started)") from None
    # Every option and the config file are checked before the data directory is touched.
    resolve_config(args, demo_url(1) + "/" if _demo_mode(args) else None)
    data_dir: Path = args.data_dir.resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not a directory (nothing was changed)")
    first = stages[0]
    if first.input is not None and not (data_dir / first.input).is_file():
        # Here, not only when the stage is reached: a mistyped --data-dir was created, with
        # logs, a lock and a demo site started, before this was said.
        raise ConfigError(
            f"cannot run {first.name}: its input {data_dir / first.input} does not exist (run "
            f"the earlier stages first, e.g. --stage all) (nothing was changed)"
        )
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
        try:
            choice = select_store(
                args.store,
                checkpoint_dir,
                fresh=args.fresh,
                restarting=[s.name for s in stages],
                everything=len(stages) == len(STAGES),
                start_over_all="pass --fresh with --stage all",
                outputs=[data_dir / s.output for s in stages],
            )
        except StoreMismatchError as exc:
            raise ConfigError(str(exc)) from None
        store = open_store(choice.kind, checkpoint_dir)
        manager = UnifiedCheckpointManager(checkpoint_dir, store=store)
        try:
            return _run(args, console, data_dir, stages, manager, choice, dsn)
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
    choice: StoreChoice,
    dsn: str | None,
) -> int:
    log_dir = data_dir / "logs"
    store_name = choice.kind
    switch = choice.switch
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
                    if switch is not None:
                        # The run goes ahead. A child restarting the only stage the old store
                        # holds makes the switch itself, once its own start goes ahead (its
                        # input read): made here, a child refusing its input would find the
                        # old checkpoints gone.
                        if set(switch.stages) - {stage.name}:
                            switch.make()
                        switch = None
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
                        demo_origin=demo.base_url if demo is not None else None,
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
                        reason = reason.replace(f". {RESUME_ADVICE}", "").rstrip(". ")
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
        again = "the same command without --fresh" if args.fresh else "the same command"
        console.print(
            f"stopped by signal {name}: progress saved; run {again} to resume", highlight=False
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
    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(SayOnce())  # the stages are read again and again: a restore said once
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(message)s",
        handlers=[terminal],
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
