"""The pipeline's stages: their files, the child command that runs each, and running it.

Each stage runs in a child process (a Twisted reactor cannot be restarted in one process)
with its own checkpoint. The child's whole output goes to ``DATA_DIR/logs/<stage>.log``; a
piped run copies only its warnings and errors to stderr (everything with ``--verbose``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.guards import validate_input_file
from common.io.atomic import atomic_write_bytes, open_private_append
from common.io.process import child_popen_options
from common.manager import StageInfo, UnifiedCheckpointManager
from common.status import CheckpointStatus
from common.work_queue.dsn import DSN_ENV
from tools.orchestrator.config import PROJECT_ROOT, ConfigError, PipelineConfig, UsageError
from tools.orchestrator.stage_table import STAGES, StageSpec, find_stage

if TYPE_CHECKING:
    from tools.orchestrator.view import ProgressView

__all__ = [
    "STAGES",
    "RunState",
    "StageRecord",
    "StageSpec",
    "check_inputs",
    "failure_reason",
    "run_stage",
    "select_stages",
    "stage_command",
]


@dataclass
class RunState:
    """What the signal handlers share with the main loop."""

    child: subprocess.Popen[bytes] | None = None
    stop_signal: int | None = None
    signals_seen: int = 0
    ran: list[str] = field(default_factory=list)


def select_stages(choice: str) -> list[StageSpec]:
    """The stages ``--stage`` names (``all``, an alias or a stage name)."""
    if choice == "all":
        return list(STAGES)
    stage = find_stage(choice)
    if stage is not None:
        return [stage]
    names = ", ".join(["all", *(s.alias for s in STAGES), *(s.name for s in STAGES)])
    raise UsageError(f"unknown stage {choice!r}: choose one of {names}")


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
        # Stage 3 is as polite as stages 1-2: the same user agent, the same pause per host.
        if config.user_agent:
            command += ["--user-agent", config.user_agent]
        if config.download_delay > 0:
            command += ["--delay", str(config.download_delay)]
        for domain in config.allowed_domains:
            command += ["--allowed-domain", domain]
        if config.block_private_addresses:
            command.append("--block-private-addresses")
            for network in config.allow_networks:
                command += ["--allow-network", network]
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
    if config.autothrottle:
        settings["AUTOTHROTTLE_ENABLED"] = "True"
        settings["AUTOTHROTTLE_START_DELAY"] = str(max(config.download_delay, 1.0))
        settings["AUTOTHROTTLE_TARGET_CONCURRENCY"] = "1.0"
    if config.user_agent:
        settings["USER_AGENT"] = config.user_agent
    if stage.alias == "discovery":
        # The caps bound discovery, which decides how much the later stages do.
        if config.max_pages is not None:
            settings["CLOSESPIDER_PAGECOUNT"] = str(config.max_pages)
        if config.max_seconds is not None:
            settings["CLOSESPIDER_TIMEOUT"] = str(config.max_seconds)
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
        input_path = data_dir / stage.input
        if input_path.is_file():
            # On the state just read: opening the stage's engine here would log its resume
            # ("Detected incomplete checkpoint ... Resuming") before the refusal below.
            ok, reason = validate_input_file(info.state, input_path)
            if not ok:
                raise ConfigError(
                    f"cannot resume {stage.name}: {reason}. Rerun with --force to resume over "
                    f"it, or --fresh to start the stage over"
                )


# Skipping a completed stage without starting its child ----------------------------------------


class StageRecord:
    """``DATA_DIR/orchestrator.json``: the command each stage last completed with.

    A stage is skipped without starting Scrapy or enrich when its checkpoint is the one this
    file recorded (same ``updated_at``), completed, its input unchanged (the checkpoint's hash)
    and its command the same (so the same config). Anything else starts the child, which
    decides from its checkpoint as before.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "orchestrator.json"
        self.data_dir = data_dir
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._stages: dict[str, Any] = loaded.get("stages", {}) if isinstance(loaded, dict) else {}

    @staticmethod
    def fingerprint(command: Sequence[str]) -> str:
        """The command without the interpreter and one-off flags, hashed."""
        kept = [
            a
            for a in command[1:]
            if a not in ("--force", "--fresh")
            and not a.startswith(("CHECKPOINT_FORCE=", "CHECKPOINT_FRESH="))
        ]
        return hashlib.sha256("\0".join(kept).encode()).hexdigest()

    def is_done(
        self, stage: StageSpec, command: Sequence[str], manager: UnifiedCheckpointManager
    ) -> bool:
        """True when ``stage`` completed with ``command`` on its current input."""
        recorded = self._stages.get(stage.name)
        if not isinstance(recorded, dict) or stage.name not in manager.stages():
            return False
        info = manager.inspect(stage.name)
        state = info.state
        if state is None or state.status is not CheckpointStatus.COMPLETED or info.live:
            return False
        if recorded.get("command") != self.fingerprint(command):
            return False
        if recorded.get("checkpoint_updated_at") != state.updated_at:
            return False
        if not (self.data_dir / stage.output).is_file():
            return False
        if stage.input is not None:
            if not state.input_file_hash:
                return False
            ok, _ = validate_input_file(state, self.data_dir / stage.input)
            return ok
        return True

    def record(
        self, stage: StageSpec, command: Sequence[str], manager: UnifiedCheckpointManager
    ) -> None:
        """Remember that ``stage`` completed with ``command``."""
        state = manager.inspect(stage.name).state
        if state is None:
            return
        self._stages[stage.name] = {
            "command": self.fingerprint(command),
            "checkpoint_updated_at": state.updated_at,
        }
        atomic_write_bytes(
            self.path,
            json.dumps({"stages": self._stages}, indent=1).encode() + b"\n",
            temp_path=self.path.with_name(f".{self.path.name}.tmp"),
        )


# Running one stage ------------------------------------------------------------------------------


def child_env(dsn: str | None = None) -> dict[str, str]:
    """The environment of a stage child (the project importable, Scrapy's settings module)."""
    env = dict(os.environ)
    if dsn is not None:
        env[DSN_ENV] = dsn  # by environment, so a password never shows in a process list
    env["SCRAPY_SETTINGS_MODULE"] = "crawler.settings"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


# A log record's first line: Scrapy's "[logger] LEVEL: msg" or logging's "[LEVEL] msg".
_LEVEL = re.compile(r"(?:\] (WARNING|ERROR|CRITICAL):|\[(WARNING|ERROR|CRITICAL)\])")
_RECORD_START = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def designed_error_pattern(origin: str) -> re.Pattern[str]:
    """Scrapy's lines about the statuses the demo site at ``origin`` serves on purpose (404 and
    500 pages, 503s that succeed on retry): a give-up or an ignored response with one of them,
    for a URL on that site. Not a DNS or connection error, and not another site's 404."""
    site = re.escape(origin.rstrip("/"))
    return re.compile(
        rf"Gave up retrying <[A-Z]+ {site}/[^>]*> \(failed \d+ times\): (?:404|500|503) "
        rf"|Ignoring response <(?:404|500|503) {site}/"
    )


class LogEcho:
    """Copies a stage log's new lines to stderr: warnings and errors, or all with ``verbose``.

    With ``demo_origin`` (the demo site's base URL), the errors that site serves on purpose
    are labelled as such and counted.
    """

    def __init__(self, reader: Any, *, verbose: bool, demo_origin: str | None) -> None:
        self.reader = reader
        self.verbose = verbose
        self._designed = designed_error_pattern(demo_origin) if demo_origin else None
        self._partial = b""
        self.designed_errors = 0

    def pump(self, *, final: bool = False) -> None:
        data = self._partial + self.reader.read()
        lines = data.split(b"\n")
        self._partial = b"" if final else lines.pop()
        out = sys.stderr
        for raw in lines:
            if not raw:
                continue
            if self.verbose:
                out.buffer.write(raw + b"\n")
                continue
            if not _RECORD_START.match(raw):
                continue  # a traceback's or a stats dump's continuation: in the log
            text = raw.decode("utf-8", "replace")
            if not _LEVEL.search(text):
                continue
            if self._designed is not None and self._designed.search(text):
                self.designed_errors += 1
                text += "  [designed-in error of the demo site]"
            out.write(text + "\n")
        out.flush()


def run_stage(
    stage: StageSpec,
    command: list[str],
    manager: UnifiedCheckpointManager,
    view: ProgressView,
    state: RunState,
    log_path: Path,
    *,
    echo: bool,
    verbose: bool = False,
    demo_origin: str | None = None,
    dsn: str | None = None,
) -> tuple[int, int]:
    """Run one stage's child to the end, showing its progress.

    Returns the child's exit code and where this run's part of ``log_path`` begins. The
    child's output always goes to ``log_path``; with ``echo`` its warnings and errors (or,
    ``verbose``, all of it) are copied to stderr too.
    """
    with open(open_private_append(log_path), "ab") as log_handle, log_path.open("rb") as reader:
        start = reader.seek(0, os.SEEK_END)
        echoer = LogEcho(reader, verbose=verbose, demo_origin=demo_origin)
        # Block SIGINT/SIGTERM while the child starts so a signal cannot fall between the
        # fork and our noting the child; the child unblocks them before exec.
        blocked = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            child = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                command,
                cwd=PROJECT_ROOT,
                env=child_env(dsn),
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
                    if echo:
                        echoer.pump()
                    if stage.name in manager.stages():
                        view.show(manager.inspect(stage.name))
            if echo:
                echoer.pump(final=True)
            if stage.name in manager.stages():
                view.show(manager.inspect(stage.name), force_line=True)
            return code, start
        finally:
            state.child = None


_ERROR_LINE = re.compile(
    r"(?:InputChangedError|ConfigChangedError|CheckpointLockedError|CheckpointCorruptError|"
    r"CheckpointSchemaError|CheckpointSaveError|CheckpointError|FileNotFoundError|ValueError): (.+)"
)
_PREFIX = re.compile(r"^(?:error:\s*)+", re.IGNORECASE)
_STAGE_PREFIX = re.compile(r"^stage '[\w.-]+': ")


def failure_reason(log_path: Path, start: int, info: StageInfo | None) -> str:
    """The one line that says why a stage stopped.

    The stage's recorded error, unless it only names Scrapy's close reason (``spider closed:
    start_error``): then the first error this run logged, which names the file and line.
    """
    recorded = ""
    if info is not None and info.state is not None and info.state.error_message:
        recorded = info.state.error_message
    lines: list[str] = []
    if log_path.is_file():
        with log_path.open("rb") as handle:
            handle.seek(start)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    reason = recorded
    if not recorded or recorded.startswith("spider closed:"):
        logged = _first_logged_error(lines)
        reason = logged or recorded
    if not reason:
        for line in reversed(lines[-400:]):
            match = _ERROR_LINE.search(line)
            if match:
                reason = match.group(1).strip()
                break
        else:
            for line in reversed(lines[-400:]):
                if line.lower().startswith("error:") or _LEVEL.search(line):
                    reason = line.strip()
                    break
    # One "error:" prefix on the verdict line: the child's own is dropped.
    reason = _PREFIX.sub("", reason.splitlines()[0] if reason else "").strip()
    reason = _STAGE_PREFIX.sub("", reason)  # the verdict names the stage already
    return reason or "see the stage log"


_LOGGED_ERROR = re.compile(r"\[([\w.]+)\] (?:ERROR|CRITICAL): (.+)")


def _first_logged_error(lines: Sequence[str]) -> str | None:
    """The first error a component logged (not the checkpoint's own summary of it)."""
    for line in lines:
        match = _LOGGED_ERROR.search(line)
        # Not the checkpoint's summary, nor one page's network or HTTP error (a crawl has many).
        if match and not match.group(1).startswith(
            ("common.checkpoint", "scrapy.downloadermiddlewares")
        ):
            return match.group(2).strip()
    return None


def stopped_at_cap(log_path: Path, start: int) -> str | None:
    """The ``closespider_*`` reason when this run's crawl stopped at a cap."""
    if not log_path.is_file():
        return None
    with log_path.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", "replace")
    match = re.search(r"Spider closed \((closespider_\w+)\)", text)
    return match.group(1) if match else None


def fetched_nothing(stage: StageSpec, data_dir: Path, info: StageInfo) -> str | None:
    """Why a stage that ran got nothing at all (``None`` when something succeeded).

    A discovery whose start URLs all failed, or a stage whose every item failed (stage 3
    refusing every address, say), is not a success: the verdict names the first failed URL and
    its error, from the stage's sidecar or output. An empty input (nothing to do) is fine.
    """
    snapshot = info.progress()
    if snapshot is None or snapshot.successful > 0:
        return None
    if stage.alias != "discovery" and snapshot.processed == 0:
        return None
    for path in (data_dir / stage.sidecar(), data_dir / stage.output):
        try:
            with path.open("rb") as handle:
                first = handle.readline()
            record = json.loads(first) if first.strip() else None
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("url"):
            error = record.get("error") or f"HTTP {record.get('status')}"
            return f"fetched nothing: {record['url']}: {error}"
    if stage.alias == "discovery":
        return "fetched nothing: no start URL could be crawled"
    return f"fetched nothing: all {snapshot.processed} items failed"
