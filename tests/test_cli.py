"""The checkpoint CLI, run as a subprocess over real checkpoint directories built with the engine."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from tests._live_writer import CHECKPOINT_WRITER, live_writer, release

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "tools/checkpoint_manager_cli.py"
CHROMIUM = Path("/usr/bin/chromium")

D1, D2, D3 = "stage1_discovery", "stage2_validation", "stage3_async_enrichment"


def run_cli(
    *args: str | Path, input: str | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the repository root, as a script (or with ``-m``), no terminal."""
    command = (
        [sys.executable, "-m", "tools.checkpoint_cli.app"]
        if module
        else [
            sys.executable,
            SCRIPT,
        ]
    )
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=ROOT,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


class FakeClock:
    """Epoch seconds that move only when told: snapshots spread over minutes without waiting."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_stage(
    cps: Path,
    stage: str,
    *,
    total: int,
    runs: list[int],
    end: str = "pause",
    clock: FakeClock | None = None,
    input_file: Path | None = None,
    fail_every: int = 0,
) -> None:
    """Run a stage ``len(runs)`` times, ``runs[k]`` items each; the last run ends with ``end``."""
    clock = clock or FakeClock()
    index = 0
    for k, count in enumerate(runs):
        checkpoint = EnhancedCheckpoint(cps / f"{stage}.json", clock=clock)
        checkpoint.start(stage, total_items=total, input_file=input_file)
        for _ in range(count):
            clock.now += 2.0
            bad = bool(fail_every) and index % fail_every == 0
            checkpoint.update(
                processed=1,
                successful=0 if bad else 1,
                failed=1 if bad else 0,
                last_item=f"item-{index}",
                index=index,
            )
            if bad:
                checkpoint.record_error(f"timeout on item {index}")
            index += 1
        last = k == len(runs) - 1
        if last and end == "complete":
            checkpoint.complete()
        elif last and end == "fail":
            checkpoint.fail("the site went away")
        elif last and end == "running":
            checkpoint.save(force=True)  # a crash: left "running", then the lock goes away
        else:
            checkpoint.pause()
        checkpoint.close()
        clock.now += 300


@pytest.fixture
def cps(tmp_path: Path) -> Path:
    """Three stages: discovery completed, validation paused (with an input file), enrichment
    crashed while running."""
    directory = tmp_path / "cps"
    clock = FakeClock()
    input_file = tmp_path / "input.jsonl"
    input_file.write_text("".join(f'{{"n": {i}}}\n' for i in range(50)))
    make_stage(directory, D1, total=40, runs=[20, 20], end="complete", clock=clock)
    make_stage(
        directory, D2, total=50, runs=[10, 10], clock=clock, input_file=input_file, fail_every=7
    )
    make_stage(directory, D3, total=100, runs=[25], end="running", clock=clock)
    return directory


def snapshot_files(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (lock files excluded: they are not data)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The plain ``list`` table as {stage: cells}."""
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["Stage", "Status"], stdout
    assert set(lines[1]) == {"="}
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


# --------------------------------------------------------------------------------------------
# Reading


def test_list_shows_the_seed_table(cps: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "list")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert result.stdout.splitlines()[0].split() == [
        "Stage",
        "Status",
        "Progress",
        "Success",
        "Rate",
        "Updated",
    ]
    assert rows[D1][1:3] == ["completed", "40/40 (100.0%)"]
    assert rows[D2][1:4] == ["paused", "20/50 (40.0%)", "85.0%"]
    # Saved as running with no live process holding it: the next run will recover it.
    assert rows[D3][1:3] == ["recovering", "25/100 (25.0%)"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[D1][4])  # UTC, said so
    assert result.stderr == ""


def test_checkpoint_dir_is_accepted_after_the_command_and_with_dash_m(cps: Path) -> None:
    after = run_cli("list", "--checkpoint-dir", cps)
    module = run_cli("--checkpoint-dir", cps, "list", module=True)
    assert after.returncode == module.returncode == 0
    assert table_rows(after.stdout) == table_rows(module.stdout)


def test_list_json(cps: Path) -> None:
    result = run_cli("list", "--json", "--checkpoint-dir", cps)
    assert result.returncode == 0
    data = json.loads(result.stdout)
    stages = {s["stage"]: s for s in data["stages"]}
    assert list(stages) == [D1, D2, D3]
    assert stages[D2]["status"] == "paused"
    assert stages[D2]["progress"]["processed_items"] == 20
    assert stages[D2]["progress"]["failed_items"] == 3
    assert stages[D3]["status"] == "recovering" and stages[D3]["live"] is False


def test_show_details_and_input_validation(cps: Path, tmp_path: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "show", D2)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in (
        "Status: paused",
        "Processed: 20/50 (40.0%)",
        "Successful: 17 | Failed: 3 | Skipped: 0",
        "Success rate: 85.0%",
        "Throughput:",
        "ETA:",
        "Active time",
        "Watermark (first unfinished index): 20",
        "Last processed index: 19",
        "Last processed item: item-19",
        "Error count: 3",
        "Last error: timeout on item 14",
        "Result: unchanged",
    ):
        assert needle in out, (needle, out)
    assert result.stderr == ""

    (tmp_path / "input.jsonl").write_text("changed\n")
    changed = run_cli("--checkpoint-dir", cps, "show", D2, "--json")
    assert changed.returncode == 0
    data = json.loads(changed.stdout)
    assert data["input_validation"]["unchanged"] is False
    assert "changed since checkpoint" in data["input_validation"]["reason"]
    assert data["resume_point"]["watermark"] == 20
    assert data["errors"]["error_count"] == 3
    assert len(data["errors"]["recent_errors"]) == 3
    assert data["performance"]["eta_seconds"] is None  # paused: no estimate


def test_show_of_a_crashed_stage_says_recovering_and_changes_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "show", D3)
    assert result.returncode == 0
    assert "Status: recovering" in result.stdout
    assert result.stderr == ""  # no "Detected incomplete checkpoint" resume chatter
    assert snapshot_files(cps) == before


def test_report_text_and_json(cps: Path) -> None:
    text = run_cli("--checkpoint-dir", cps, "report")
    assert text.returncode == 0
    assert "Pipeline Progress Report" in text.stdout
    assert f"Stage: {D2}" in text.stdout
    assert "Progress: 40.0% (20/50)" in text.stdout
    assert "Overall Pipeline Progress:" in text.stdout
    data = json.loads(run_cli("--checkpoint-dir", cps, "report", "--json").stdout)
    assert data["completed"] == 1 and data["active"] == 1
    assert 0 < data["overall_progress"] < 100
    assert [s["stage"] for s in data["stages"]] == [D1, D2, D3]


def test_export_writes_every_stage(cps: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = run_cli("--checkpoint-dir", cps, "export", "--output", target)
    assert result.returncode == 0
    assert str(target) in result.stdout
    document = json.loads(target.read_text())
    assert set(document["stages"]) == {D1, D2, D3}
    assert document["stages"][D2]["checkpoint"]["progress"]["processed_items"] == 20


def test_output_paths_are_checked_naming_what_the_user_gave(cps: Path, tmp_path: Path) -> None:
    """A bad --output or --html: the path as given and what is wrong with it, exit 1, nothing
    written and no directory made (never the name of a temporary file)."""
    work = tmp_path / "work"
    (work / "adir").mkdir(parents=True)
    (work / "afile").write_text("mine\n")
    before = sorted(p.name for p in work.rglob("*"))
    for command, line in (
        (["export", "--output", work / "adir"], f"--output {work / 'adir'} is a directory"),
        (
            ["export", "--output", work / "no" / "such" / "out.json"],
            f"--output: directory {work / 'no' / 'such'} does not exist",
        ),
        (
            ["export", "--output", work / "afile" / "out.json"],
            f"--output: {work / 'afile'} is not a directory",
        ),
        (["report", "--html", work / "adir"], f"--html {work / 'adir'} is a directory"),
        (
            ["report", "--html", work / "missing" / "r.html"],
            f"--html: directory {work / 'missing'} does not exist",
        ),
    ):
        result = run_cli("--checkpoint-dir", cps, *command)
        assert result.stderr.splitlines() == [f"error: {line} (nothing was written)"], command
        assert result.returncode == 1 and result.stdout == "", command
        assert sorted(p.name for p in work.rglob("*")) == before, command


def test_empty_and_missing_directories(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("--checkpoint-dir", empty, "list")
    assert result.returncode == 0
    assert result.stdout.strip() == f"no checkpoints in {empty}"
    missing = tmp_path / "missing"
    result = run_cli("--checkpoint-dir", missing, "list")
    assert result.returncode == 0
    assert f"no checkpoints in {missing}" in result.stdout and "does not exist" in result.stdout
    assert not missing.exists()
    assert json.loads(run_cli("--checkpoint-dir", missing, "list", "--json").stdout)["stages"] == []
    assert run_cli("--checkpoint-dir", missing, "report").returncode == 0
    assert not missing.exists()
    # An export of nothing (a mistyped directory, most often) is refused and writes nothing.
    target = tmp_path / "out.json"
    for directory, why in ((missing, " (the directory does not exist)"), (empty, "")):
        result = run_cli("--checkpoint-dir", directory, "export", "--output", target)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"error: no checkpoints in {directory}{why}; nothing was exported"
        ]
        assert not target.exists() and not missing.exists()


def test_unknown_and_invalid_stage_names(cps: Path) -> None:
    before = snapshot_files(cps)
    known = f"{D1} (discovery), {D2} (validation), {D3} (enrichment)"
    for command in (
        ["show", "stage9"],
        ["history", "stage9"],
        ["set", "stage9", "1"],
        ["reset", "stage9", "--force"],
        ["restore", "stage9", "20200101T000000_000000-x"],
        ["ledger", "stage9"],
        ["results", "--stage", "stage9"],
        ["export-data", "--stage", "stage9"],
    ):
        result = run_cli("--checkpoint-dir", cps, *command)
        assert result.returncode == 2, (command, result)  # a usage error
        assert result.stderr.splitlines() == [
            f"error: no checkpoint for stage 'stage9' in {cps} (known stages: {known})"
        ], command
        assert snapshot_files(cps) == before, command
    # A STAGE that cannot be a stage name is a usage error too, as --help says (exit 2).
    for command in (
        ["show", "../etc"],
        ["show", "../../etc/passwd"],
        ["reset", "../etc", "--force"],
        ["set", "../x", "1"],
        ["history", "a/b"],
        ["restore", "../x", "20200101T000000_000000-x"],
        ["ledger", "../x"],
    ):
        result = run_cli("--checkpoint-dir", cps, *command)
        assert result.returncode == 2, (command, result)
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: invalid stage name"), (command, line)
        assert snapshot_files(cps) == before, command


def test_short_stage_names_are_accepted_by_every_command_taking_a_stage(cps: Path) -> None:
    """The orchestrator's short names (``--stage validation``) mean the same stages here."""
    by_name = run_cli("--checkpoint-dir", cps, "show", D2, "--json")
    by_alias = run_cli("--checkpoint-dir", cps, "show", "validation", "--json")
    assert by_alias.returncode == 0, by_alias.stderr
    assert json.loads(by_alias.stdout)["stage"] == D2
    assert json.loads(by_alias.stdout)["progress"] == json.loads(by_name.stdout)["progress"]
    history = run_cli("--checkpoint-dir", cps, "history", "validation", "--json")
    assert history.returncode == 0, history.stderr
    first = json.loads(history.stdout)["snapshots"][1]["id"]
    dry = run_cli("--checkpoint-dir", cps, "reset", "enrichment", "--dry-run")
    assert dry.returncode == 0 and f"would reset {D3}" in dry.stdout, dry
    moved = run_cli("--checkpoint-dir", cps, "set", "validation", "12")
    assert moved.returncode == 0, moved.stderr
    assert f"{D2}: resume point moved from 20 to 12" in moved.stdout
    restored = run_cli("--checkpoint-dir", cps, "restore", "validation", first)
    assert restored.returncode == 0, restored.stderr
    assert (
        json.loads(run_cli("--checkpoint-dir", cps, "show", D2, "--json").stdout)["progress"][
            "processed_items"
        ]
        == 10
    )
    reset = run_cli("--checkpoint-dir", cps, "reset", "discovery", "--force")
    assert reset.returncode == 0 and f"reset {D1}" in reset.stdout, reset
    assert not (cps / f"{D1}.json").exists()


def test_usage_errors_exit_2(cps: Path) -> None:
    assert run_cli("--checkpoint-dir", cps).returncode == 2
    assert run_cli("--checkpoint-dir", cps, "set", D2, "-1").returncode == 2
    assert run_cli("--checkpoint-dir", cps, "cleanup").returncode == 2
    help_text = run_cli("--help").stdout
    assert "exit codes" in help_text and "usage error" in help_text


# --------------------------------------------------------------------------------------------
# Corrupt files


def test_corrupt_checkpoint_is_listed_and_left_untouched(cps: Path) -> None:
    bad = cps / "stage0_broken.json"
    garbage = b"\x00\xffnot json{{{"
    bad.write_bytes(garbage)
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "list")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["stage0_broken"][1] == "corrupt"
    assert rows[D2][1] == "paused"
    assert "stage0_broken: no readable checkpoint" in result.stdout
    assert str(bad) in result.stdout
    assert "Traceback" not in result.stderr
    data = json.loads(run_cli("--checkpoint-dir", cps, "list", "--json").stdout)
    broken = next(s for s in data["stages"] if s["stage"] == "stage0_broken")
    assert broken["status"] == "corrupt" and "invalid JSON" in broken["error"]
    assert run_cli("--checkpoint-dir", cps, "report").returncode == 0
    assert snapshot_files(cps) == before
    assert bad.read_bytes() == garbage


def test_show_on_a_corrupt_stage_is_one_error_line(cps: Path) -> None:
    bad = cps / "stage0_broken.json"
    bad.write_bytes(b"{truncated")
    result = run_cli("--checkpoint-dir", cps, "show", "stage0_broken")
    assert_one_error_line(result, "stage0_broken", str(bad))
    assert bad.read_bytes() == b"{truncated"


def test_damaged_main_file_is_read_from_its_backup_loudly_once(cps: Path) -> None:
    main = cps / f"{D2}.json"
    main.write_bytes(b'{"stage": "stage2_val')  # torn
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "list")
    assert result.returncode == 0
    rows = table_rows(result.stdout)
    assert rows[D2][1] != "corrupt"
    assert f"{D2}: main file unreadable, read from its backup" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "restored from backup" in warnings[0]
    assert snapshot_files(cps) == before  # reading never repairs behind the user's back


def test_reset_force_clears_a_corrupt_stage(cps: Path) -> None:
    (cps / "stage0_broken.json").write_bytes(b"garbage")
    result = run_cli("--checkpoint-dir", cps, "reset", "stage0_broken", "--force")
    assert result.returncode == 0, result.stderr
    assert not (cps / "stage0_broken.json").exists()
    assert "stage0_broken" not in run_cli("--checkpoint-dir", cps, "list").stdout


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(
    SETPRIV is None or os.geteuid() != 0, reason="needs root and setpriv to drop privileges"
)
def test_an_unreadable_checkpoint_is_not_corruption() -> None:
    """EACCES for real: the CLI runs as nobody over files nobody owns, one of them mode 0000."""
    directory = Path(tempfile.mkdtemp(prefix="cli-eacces-"))
    try:
        cps = directory / "cps"
        make_stage(cps, D1, total=40, runs=[20, 20], end="complete")
        make_stage(cps, D2, total=50, runs=[10, 10])
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, 65534, 65534)
        target = cps / f"{D2}.json"
        target.chmod(0)
        before = snapshot_files(cps)
        drop = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
        for command in (
            ["list"],
            ["show", D2],
            ["set", D2, "5"],
            ["reset", D2, "--force"],
            ["restore", D2, sorted((cps / "history" / D2).glob("*.json"))[0].stem],
        ):
            result = subprocess.run(
                [*drop, sys.executable, SCRIPT, "--checkpoint-dir", str(cps), *command],
                cwd=ROOT,
                input="",
                capture_output=True,
                text=True,
                timeout=60,
            )
            line = assert_one_error_line(result)
            assert line.startswith(f"error: cannot read {target}: permission denied"), command
            assert snapshot_files(cps) == before, command  # nothing restored or moved aside
        assert not list(cps.glob("*corrupt*"))
    finally:
        shutil.rmtree(directory)


def run_as_nobody(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI run as ``nobody`` (setpriv), where a mode-0000 file cannot be read, even by root."""
    assert SETPRIV is not None
    drop = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*drop, sys.executable, SCRIPT, *map(str, args)],
        cwd=ROOT,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )


def give_to_nobody(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, 65534, 65534)


@pytest.mark.skipif(
    SETPRIV is None or os.geteuid() != 0, reason="needs root and setpriv to drop privileges"
)
def test_one_unreadable_checkpoint_does_not_hide_the_others() -> None:
    """list, report and watch show every stage they can read, and one error line per file they
    cannot (exit 1)."""
    directory = Path(tempfile.mkdtemp(prefix="cli-eacces-"))
    try:
        cps = directory / "cps"
        make_stage(cps, D1, total=40, runs=[20, 20], end="complete")
        make_stage(cps, D2, total=50, runs=[10, 10])
        make_stage(cps, D3, total=30, runs=[5])
        give_to_nobody(directory)
        target = cps / f"{D2}.json"
        target.chmod(0)
        before = snapshot_files(cps)
        reason = f"error: cannot read {target}: permission denied"
        for command in (["list"], ["report"], ["list", "--json"], ["report", "--json"]):
            result = run_as_nobody("--checkpoint-dir", cps, *command)
            line = assert_one_error_line(result)
            assert line.startswith(reason), command
            for shown in (D1, D3):
                assert shown in result.stdout, (command, result.stdout)
            assert f"Stage: {D2}" not in result.stdout and f'"{D2}"' not in result.stdout
        rows = table_rows(run_as_nobody("--checkpoint-dir", cps, "list").stdout)
        assert rows[D1][1] == "completed" and rows[D3][1] == "paused"
        watched = run_as_nobody("--checkpoint-dir", cps, "watch", "--once")
        assert watched.returncode == 1, watched
        assert D1 in watched.stdout and D3 in watched.stdout
        errors = [line for line in watched.stdout.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(reason), watched.stdout
        assert snapshot_files(cps) == before
    finally:
        shutil.rmtree(directory)


# --------------------------------------------------------------------------------------------
# Reset


def test_reset_without_a_terminal_refuses_and_changes_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    for target in (D2, "all"):
        result = run_cli("--checkpoint-dir", cps, "reset", target, input="y\n")
        assert_one_error_line(result, "not a terminal", "--force")
    assert D2 in run_cli("--checkpoint-dir", cps, "reset", D2).stderr
    assert snapshot_files(cps) == before


def test_reset_force_and_reset_all(cps: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "reset", D2, "--force")
    assert result.returncode == 0, result.stderr
    assert f"reset {D2}" in result.stdout
    assert not (cps / f"{D2}.json").exists()
    assert set(table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)) == {D1, D3}
    # The old state stays restorable from the history.
    history = run_cli("--checkpoint-dir", cps, "history", D2)
    assert history.returncode == 0 and "before-reset" in history.stdout

    result = run_cli("--checkpoint-dir", cps, "reset", "all", "--force")
    assert result.returncode == 0, result.stderr
    assert "no checkpoints in" in run_cli("--checkpoint-dir", cps, "list").stdout


def _read_until(fd: int, needle: str, deadline: float) -> str:
    seen = ""
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {needle!r}; saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
    return seen


def _run_on_terminal(
    args: list[str], answer_after: str | None, answer: str = "", columns: int = 160
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout; type ``answer`` after a prompt."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, *args],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    deadline = time.monotonic() + 30
    try:
        seen = ""
        if answer_after is not None:
            seen = _read_until(master, answer_after, deadline)
            os.write(master, answer.encode())
        seen += _read_until(master, "\x00never\x00", deadline)  # everything, up to EOF
        return proc.wait(timeout=30), seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_reset_asks_on_a_terminal(cps: Path) -> None:
    before = snapshot_files(cps)
    code, seen = _run_on_terminal(
        ["--checkpoint-dir", str(cps), "reset", D2], "[y/N]", answer="n\n"
    )
    assert code == 1, seen
    assert f"Reset stage {D2}? [y/N]" in seen and "not confirmed" in seen
    assert snapshot_files(cps) == before

    code, seen = _run_on_terminal(
        ["--checkpoint-dir", str(cps), "reset", D2], "[y/N]", answer="y\n"
    )
    assert code == 0, seen
    assert not (cps / f"{D2}.json").exists()
    assert (cps / f"{D1}.json").exists()


def test_cleanup_asks_on_a_terminal_listing_what_goes(cps: Path) -> None:
    before = snapshot_files(cps)
    args = ["--checkpoint-dir", str(cps), "cleanup", "--days", "0", "--keep", "0"]
    code, seen = _run_on_terminal(args, "[y/N]", answer="n\n")
    assert code == 1, seen
    assert f"will remove {D1}" in seen and "Clean up" in seen and "not confirmed" in seen
    assert snapshot_files(cps) == before
    code, seen = _run_on_terminal(args, "[y/N]", answer="y\n")
    assert code == 0, seen
    assert f"removed {D1}" in seen and not (cps / f"{D1}.json").exists()


# --------------------------------------------------------------------------------------------
# A stage held by another live process


@pytest.fixture
def live_holder(cps: Path) -> Iterator[Callable[[], int]]:
    """A child process that holds stage ``stage4_live`` (started, running); calling the fixture
    lets it go (it pauses the stage) and returns its exit code."""
    with live_writer(CHECKPOINT_WRITER, cps / "stage4_live.json") as proc:
        yield lambda: release(proc)


def test_stage_held_by_a_live_process(cps: Path, live_holder: Callable[[], int]) -> None:
    rows = table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)
    assert rows["stage4_live"][1] == "running (live)"
    shown = json.loads(run_cli("--checkpoint-dir", cps, "show", "stage4_live", "--json").stdout)
    assert shown["status"] == "running" and shown["live"] is True

    before = snapshot_files(cps)
    assert_one_error_line(
        run_cli("--checkpoint-dir", cps, "reset", "stage4_live"), "stage4_live is running"
    )
    assert_one_error_line(run_cli("--checkpoint-dir", cps, "reset", "all"), "stage4_live")
    assert_one_error_line(
        run_cli("--checkpoint-dir", cps, "set", "stage4_live", "0"), "stage4_live"
    )
    assert snapshot_files(cps) == before

    # The holder is unaffected and finishes normally.
    assert live_holder() == 0
    rows = table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)
    assert rows["stage4_live"][1] == "paused"


def test_reset_force_does_not_override_a_live_holder(
    cps: Path, live_holder: Callable[[], int]
) -> None:
    """--force skips the question, not the lock: the holder would save the stage again."""
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "reset", "stage4_live", "--force")
    assert_one_error_line(result, "stage stage4_live is running (pid ")
    assert snapshot_files(cps) == before
    assert live_holder() == 0


LOCK_HOLDER = """
import sys
from common.stores import detect_store, open_store
directory, stage = sys.argv[1], sys.argv[2]
store = open_store(detect_store(directory), directory)
store.lock(stage).acquire()
print("ready", flush=True)
sys.stdin.read()
"""


def test_every_writing_command_refuses_a_stage_a_live_process_writes(cps: Path) -> None:
    """One writer: while another process holds stage1_discovery's writer lock (as a crawl of
    it does), reset (with --force, and of all), set, restore and cleanup of its current
    checkpoint are refused in the orchestrator's words, exit 1, and no file changes."""
    history = run_cli("--checkpoint-dir", cps, "history", D1, "--json")
    snapshot = json.loads(history.stdout)["snapshots"][0]["id"]
    with live_writer(LOCK_HOLDER, cps, D1) as proc:
        refusal = (
            f"error: stage {D1} is running (pid {proc.pid}); stop it first (nothing was changed)"
        )
        before = snapshot_files(cps)
        for command in (
            ["reset", "discovery", "--force"],
            ["reset", D1],
            ["reset", "all", "--force"],
            ["set", "discovery", "0"],
            ["restore", D1, snapshot],
            ["cleanup", "--days", "0", "--keep", "0", "--force"],
        ):
            result = run_cli("--checkpoint-dir", cps, *command)
            assert result.returncode == 1, (command, result)
            assert result.stderr.splitlines() == [refusal], command
            assert result.stdout == "", command
            assert snapshot_files(cps) == before, command
        # Once the holder is gone, the same reset goes through.
        assert release(proc) == 0
        result = run_cli("--checkpoint-dir", cps, "reset", "discovery", "--force")
        assert result.returncode == 0 and f"reset {D1}" in result.stdout, result


def test_reset_dry_run_says_a_stage_a_live_process_writes_would_be_refused(
    cps: Path, live_holder: Callable[[], int]
) -> None:
    """reset --dry-run ends as cleanup's does: the real reset would be refused now, naming the
    stage and the live writer's pid (for one stage and for all); nothing changes, and the
    holder finishes normally."""
    pid = int((cps / "stage4_live.lock").read_text())
    refusal = f"stage stage4_live is running (pid {pid}); stop it first (nothing was changed)"
    before = snapshot_files(cps)
    for target in ("stage4_live", "all"):
        result = run_cli("--checkpoint-dir", cps, "reset", target, "--dry-run")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert any(line.startswith("would reset stage4_live (running") for line in lines), lines
        assert lines[-1] == f"dry run: the reset would be refused now: {refusal}", target
        assert snapshot_files(cps) == before
    # A stage nobody writes: the dry run ends as before.
    result = run_cli("--checkpoint-dir", cps, "reset", D1, "--dry-run")
    assert result.stdout.splitlines()[-1] == "dry run: nothing was changed"
    assert live_holder() == 0


def test_cleanup_refuses_a_live_stage_whose_snapshots_it_would_remove(cps: Path) -> None:
    """cleanup of old snapshots only (--keep 1) holds their stage's writer lock too, as reset
    does: while another process writes validation it is refused, nothing removed; its dry
    run lists the same items and says the real run would be refused."""
    with live_writer(LOCK_HOLDER, cps, D2) as proc:
        refusal = f"stage {D2} is running (pid {proc.pid}); stop it first (nothing was changed)"
        before = snapshot_files(cps)
        args = ["--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "1"]
        result = run_cli(*args, "--force")
        assert result.returncode == 1, result
        assert result.stderr.splitlines() == [f"error: {refusal}"]
        assert result.stdout == ""
        dry = run_cli(*args, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert any(line.startswith(f"would remove {D2}/history/") for line in lines), lines
        assert lines[-1] == f"dry run: the cleanup would be refused now: {refusal}"
        assert snapshot_files(cps) == before
        assert release(proc) == 0
        # Once the holder is gone, the same cleanup goes through.
        result = run_cli(*args, "--force")
        assert result.returncode == 0 and f"removed {D2}/history/" in result.stdout, result


def test_ctrl_c_at_the_confirmation_prompt_exits_130_changing_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--checkpoint-dir", str(cps), "reset", D2],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 30
        seen = _read_until(master, "[y/N]", deadline)
        proc.send_signal(signal.SIGINT)
        seen += _read_until(master, "\x00never\x00", deadline)
        assert proc.wait(timeout=30) == 130, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "error: interrupted" in seen and "Traceback" not in seen
    assert snapshot_files(cps) == before


# --------------------------------------------------------------------------------------------
# Position, history, restore, cleanup


def test_set_moves_the_resume_point_and_is_recorded(cps: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "set", D2, "12")
    assert result.returncode == 0, result.stderr
    assert "from 20 to 12" in result.stdout
    shown = run_cli("--checkpoint-dir", cps, "show", D2).stdout
    assert "Watermark (first unfinished index): 12" in shown
    assert "Processed: 12/50" in shown
    history = run_cli("--checkpoint-dir", cps, "history", D2)
    assert history.returncode == 0
    last = history.stdout.strip().splitlines()[-3]
    assert "set-12" in last and "12/50" in last
    # The lock was released: the stage can be opened for writing again.
    checkpoint = EnhancedCheckpoint(cps / f"{D2}.json")
    checkpoint.acquire()
    assert checkpoint.should_skip(11) and not checkpoint.should_skip(12)
    checkpoint.close()


def test_history_and_restore(cps: Path) -> None:
    data = json.loads(run_cli("--checkpoint-dir", cps, "history", D2, "--json").stdout)
    reasons = [s["reason"] for s in data["snapshots"]]
    assert reasons == ["start", "pause", "start", "pause"]
    first_pause = data["snapshots"][1]
    assert first_pause["processed"] == 10 and first_pause["status"] == "paused"

    result = run_cli("--checkpoint-dir", cps, "restore", D2, first_pause["id"])
    assert result.returncode == 0, result.stderr
    assert "10/50" in result.stdout and "before-restore" in result.stdout
    shown = json.loads(run_cli("--checkpoint-dir", cps, "show", D2, "--json").stdout)
    assert shown["progress"]["processed_items"] == 10
    assert shown["resume_point"]["watermark"] == 10
    after = json.loads(run_cli("--checkpoint-dir", cps, "history", D2, "--json").stdout)
    assert after["snapshots"][-1]["reason"] == "before-restore"
    assert after["snapshots"][-1]["processed"] == 20

    missing = run_cli("--checkpoint-dir", cps, "restore", D2, "20200101T000000_000000-nope")
    assert_one_error_line(missing, D2, "20200101T000000_000000-nope")


def _stage_with_output(cps: Path, out: Path, stage: str, items: range, *, total: int) -> None:
    """Run (or resume) ``stage`` over ``items``: one keyed record per item into ``out``."""
    checkpoint = EnhancedCheckpoint(cps / f"{stage}.json")
    checkpoint.start(stage, total_items=total, output_file=out)
    checkpoint.attach_output(out)
    for i in items:
        if checkpoint.should_skip(i):
            continue
        url = f"https://example.test/{i}"
        checkpoint.update(processed=1, successful=1, index=i, key=url, record={"url": url, "n": i})
    if checkpoint.state.completion.watermark >= total:
        checkpoint.complete()
    else:
        checkpoint.pause()
    checkpoint.close()


def test_restore_after_reset_resumes_with_its_outputs_intact(tmp_path: Path) -> None:
    cps, out = tmp_path / "cps", tmp_path / "out" / "records.jsonl"
    stage = "stage9_keyed"
    _stage_with_output(cps, out, stage, range(30), total=50)
    assert len(out.read_bytes().splitlines()) == 30
    assert (cps / f"{stage}.keys.jsonl").exists()

    assert run_cli("--checkpoint-dir", cps, "reset", stage, "--force").returncode == 0
    data = json.loads(run_cli("--checkpoint-dir", cps, "history", stage, "--json").stdout)
    snapshot = data["snapshots"][-1]
    assert snapshot["reason"] == "before-reset" and snapshot["processed"] == 30
    restored = run_cli("--checkpoint-dir", cps, "restore", stage, snapshot["id"])
    assert restored.returncode == 0, restored.stderr
    assert "30/50" in restored.stdout

    # The stage resumes where the snapshot stopped: the 30 records stay, 20 more are written,
    # none twice, and the done keys came back with it.
    checkpoint = EnhancedCheckpoint(cps / f"{stage}.json")
    assert checkpoint.is_key_done("https://example.test/29")
    checkpoint.close()
    _stage_with_output(cps, out, stage, range(50), total=50)
    urls = [json.loads(line)["url"] for line in out.read_bytes().splitlines()]
    assert urls == [f"https://example.test/{i}" for i in range(50)]
    rows = table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)
    assert rows[stage][1:3] == ["completed", "50/50 (100.0%)"]


def test_restore_is_refused_when_the_outputs_it_counts_are_gone(tmp_path: Path) -> None:
    cps, out = tmp_path / "cps", tmp_path / "records.jsonl"
    stage = "stage9_keyed"
    _stage_with_output(cps, out, stage, range(30), total=50)
    assert run_cli("--checkpoint-dir", cps, "reset", stage, "--force").returncode == 0
    snapshot = json.loads(run_cli("--checkpoint-dir", cps, "history", stage, "--json").stdout)[
        "snapshots"
    ][-1]
    with out.open("r+b") as handle:  # someone cut the output after the reset
        handle.truncate(10)
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "restore", stage, snapshot["id"])
    assert_one_error_line(result, str(out), "holds 10 bytes", "Nothing was changed")
    assert snapshot_files(cps) == before


def test_restore_is_refused_after_the_stage_started_over(tmp_path: Path) -> None:
    cps, out = tmp_path / "cps", tmp_path / "records.jsonl"
    stage = "stage9_keyed"
    _stage_with_output(cps, out, stage, range(30), total=50)
    assert run_cli("--checkpoint-dir", cps, "reset", stage, "--force").returncode == 0
    snapshot = json.loads(run_cli("--checkpoint-dir", cps, "history", stage, "--json").stdout)[
        "snapshots"
    ][-1]
    _stage_with_output(cps, out, stage, range(40), total=50)  # a new run rewrote the output
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "restore", stage, snapshot["id"])
    assert_one_error_line(result, "started over", "Nothing was changed")
    assert snapshot_files(cps) == before


def test_cleanup_without_a_terminal_refuses_and_changes_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", input="y\n")
    assert_one_error_line(result, "not a terminal", "--force", "--dry-run")
    assert snapshot_files(cps) == before


def test_cleanup_dry_run_lists_what_would_go_and_changes_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    dry = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {D1}\n" in dry.stdout
    assert f"would remove {D2}/history/" in dry.stdout
    assert "nothing was changed" in dry.stdout
    assert snapshot_files(cps) == before
    real = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "0", "--force")
    assert real.returncode == 0, real.stderr
    planned = {line.removeprefix("would remove ") for line in dry.stdout.splitlines()[:-1]}
    done = {line.removeprefix("removed ") for line in real.stdout.splitlines()[:-1]}
    assert done == planned


def test_cleanup_keeps_what_keep_says(cps: Path) -> None:
    # --keep 1: every stage keeps its current checkpoint, the finished one included.
    result = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "1", "--force")
    assert result.returncode == 0, result.stderr
    assert f"removed {D1}\n" not in result.stdout
    assert f"{D2}/history/" in result.stdout
    assert set(table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)) == {D1, D2, D3}
    for stage in (D1, D2, D3):
        history = json.loads(run_cli("--checkpoint-dir", cps, "history", stage, "--json").stdout)
        assert history["snapshots"] == []

    # --keep 0: an old completed checkpoint goes (a snapshot stays); unfinished ones never.
    result = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "0", "--force")
    assert result.returncode == 0, result.stderr
    assert f"removed {D1}\n" in result.stdout
    assert set(table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)) == {D2, D3}
    again = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "30", "--force")
    assert again.returncode == 0 and "nothing older than 30 days" in again.stdout


def test_cleanup_keep_2_keeps_the_newest_snapshot(cps: Path) -> None:
    newest = json.loads(run_cli("--checkpoint-dir", cps, "history", D2, "--json").stdout)[
        "snapshots"
    ][-1]["id"]
    result = run_cli("--checkpoint-dir", cps, "cleanup", "--days", "0", "--keep", "2", "--force")
    assert result.returncode == 0, result.stderr
    history = json.loads(run_cli("--checkpoint-dir", cps, "history", D2, "--json").stdout)
    assert [s["id"] for s in history["snapshots"]] == [newest]


def test_reset_dry_run_changes_nothing(cps: Path) -> None:
    before = snapshot_files(cps)
    result = run_cli("--checkpoint-dir", cps, "reset", "all", "--dry-run")
    assert result.returncode == 0, result.stderr
    for stage in (D1, D2, D3):
        assert f"would reset {stage} (" in result.stdout
    assert "20/50 processed" in result.stdout and "nothing was changed" in result.stdout
    assert snapshot_files(cps) == before


def test_set_refuses_an_index_beyond_the_total_or_too_large(cps: Path) -> None:
    before = snapshot_files(cps)
    beyond = run_cli("--checkpoint-dir", cps, "set", D2, "51")
    assert_one_error_line(beyond, D2, "51", "beyond the 50 items", "nothing was changed")
    huge = run_cli("--checkpoint-dir", cps, "set", D2, "99999999999999999999999")
    assert huge.returncode == 2 and "too large to store" in huge.stderr
    assert snapshot_files(cps) == before
    # The stage still loads cleanly (no backup restore, nothing set aside).
    listed = run_cli("--checkpoint-dir", cps, "list")
    assert listed.returncode == 0 and listed.stderr == ""
    assert table_rows(listed.stdout)[D2][1:3] == ["paused", "20/50 (40.0%)"]


def test_set_on_a_completed_stage_says_it_reopens_it(cps: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "set", D1, "40")
    assert result.returncode == 0, result.stderr
    assert f"{D1} was completed and is now paused" in result.stdout
    assert "redoes the items from 40 on" in result.stdout
    assert table_rows(run_cli("--checkpoint-dir", cps, "list").stdout)[D1][1] == "paused"


# --------------------------------------------------------------------------------------------
# Watch


def test_watch_once_renders_every_stage(cps: Path) -> None:
    result = run_cli("--checkpoint-dir", cps, "watch", "--once")
    assert result.returncode == 0, result.stderr
    for stage in (D1, D2, D3):
        assert stage in result.stdout
    assert "Overall pipeline progress" in result.stdout


def test_only_a_running_stage_shows_an_eta(cps: Path) -> None:
    """Completed says done, paused says paused, failed says -, a stage that runs its estimate."""
    make_stage(cps, "stage4_failing", total=30, runs=[6], end="fail")
    rows = table_rows(run_cli("--checkpoint-dir", cps, "watch", "--once").stdout)
    eta = {stage: cells[5] for stage, cells in rows.items() if len(cells) == 7}
    assert eta[D1] == "done"
    assert eta[D2] == "paused"
    assert eta["stage4_failing"] == "-"
    assert re.fullmatch(r"[\d.]+ (sec|min|hours)", eta[D3]), eta  # saved as running
    shown = run_cli("--checkpoint-dir", cps, "show", D2)
    assert "  ETA: paused" in shown.stdout, shown.stdout
    for stage in (D1, D2, "stage4_failing"):
        data = json.loads(run_cli("--checkpoint-dir", cps, "show", stage, "--json").stdout)
        assert data["performance"]["eta_seconds"] is None, stage
    listed = json.loads(run_cli("--checkpoint-dir", cps, "list", "--json").stdout)
    etas = {s["stage"]: s["progress"]["eta_seconds"] for s in listed["stages"]}
    assert etas[D2] is None and etas["stage4_failing"] is None and etas[D3] > 0
    report = run_cli("--checkpoint-dir", cps, "report").stdout
    paused = report.split(f"Stage: {D2}", 1)[1].split("Stage:", 1)[0]
    assert "ETA: paused" in paused, paused


def test_watch_on_a_terminal_refreshes_until_ctrl_c(cps: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--checkpoint-dir", str(cps), "watch", "--interval", "0.2"],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "160", "LINES": "40", "TERM": "xterm"},
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 30
        seen = _read_until(master, D3, deadline)
        assert "Checkpoints in" in seen
        # A second frame comes from the refresh loop (Live redraws the table, title included,
        # in place): count frame titles over everything read, not a second stage name, which
        # could be the rest of the first frame.
        while seen.count("Checkpoints in") < 2:
            more = _read_until(master, "Checkpoints in", deadline)
            assert more, f"the terminal closed after one frame: {seen!r}"
            seen += more
        proc.send_signal(signal.SIGINT)
        assert _wait_draining(proc, master, timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def _wait_draining(proc: subprocess.Popen[bytes], fd: int, timeout: float) -> int:
    """Wait for ``proc`` while reading its terminal: a child whose last frame does not fit in
    the pseudo-terminal's buffer blocks on the write until someone reads it."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the process did not exit"
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
    return proc.wait(timeout=max(0.1, deadline - time.monotonic()))


def test_list_on_a_terminal_uses_rich(cps: Path) -> None:
    code, seen = _run_on_terminal(["--checkpoint-dir", str(cps), "list"], None)
    assert code == 0
    assert "┃" in seen or "│" in seen
    assert D3 in seen and "recovering" in seen


# --------------------------------------------------------------------------------------------
# HTML report


@pytest.fixture
def html_report(cps: Path, tmp_path: Path) -> Path:
    (cps / "stage0_broken.json").write_bytes(b"not json")
    target = tmp_path / "report.html"
    result = run_cli("--checkpoint-dir", cps, "report", "--html", target)
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    return target


def test_report_html_is_self_contained(html_report: Path) -> None:
    page = html_report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3  # one chart per readable stage
    assert "<polyline" in page
    for stage in (D1, D2, D3, "stage0_broken"):
        assert stage in page
    assert "http" not in page  # no external resource of any kind
    for external in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert external not in page
    assert 'style="width:40.00%"' in page  # stage 2's progress bar


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_html_renders_in_headless_chromium(html_report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--screenshot={png}",
            "--window-size=1200,900",
            html_report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 900)
    assert len(data) > 20_000  # a rendered page, not a blank canvas
    if os.environ.get("CLI_SCREENSHOT_DIR"):  # keep it to look at
        shutil.copy(png, Path(os.environ["CLI_SCREENSHOT_DIR"]) / "report.png")


# --------------------------------------------------------------------------------------------
# Output files that are a stage's


def _finished_stage(
    cps: Path, stage: str, output: Path, count: int, *, store: str | None = None
) -> None:
    """``stage`` of ``cps`` wrote ``count`` keyed records to ``output`` (the first one failed,
    into its sidecar) and completed, starting fresh: as the orchestrator's stages leave it."""
    checkpoint = EnhancedCheckpoint(cps / f"{stage}.json", store=store)
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=count, fresh=True)
    for i in range(count):
        url = f"https://example.test/{i}"
        if i == 0:
            checkpoint.update(processed=1, failed=1, index=i, key=url, failed_record={"url": url})
        else:
            checkpoint.update(processed=1, successful=1, index=i, key=url, record={"url": url})
    checkpoint.complete()
    checkpoint.close()


def all_files(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("store", ["json", "sqlite"])
def test_an_export_or_report_over_a_stage_file_is_refused_naming_the_stage(
    tmp_path: Path, store: str
) -> None:
    """``export --output`` and ``report --html`` named a stage's output, its failed sidecar, a
    file its history names, or a checkpoint file: they used to replace it (exit 0, a finished
    stage's records or its checkpoint gone). Now one error line names the file and the stage,
    exit 1, every file byte-identical; an ordinary file (a previous export) is still replaced."""
    data = tmp_path / "data"
    cps = data / "checkpoints"
    validated = data / "processed" / "stage02" / "validation_output.jsonl"
    _finished_stage(cps, D2, validated, 5, store=store)
    moved = data / "processed" / "stage01" / "first.jsonl"  # D1 wrote it, then moved on
    _finished_stage(cps, D1, moved, 3, store=store)
    _finished_stage(cps, D1, moved.with_name("second.jsonl"), 4, store=store)
    (keys,) = cps.glob(f"{D2}.keys.jsonl") if store == "json" else [cps / "checkpoints.sqlite3"]
    targets = [
        (validated, D2, "the output of stage"),
        (validated.with_name("validation_output.failed.jsonl"), D2, "the failed sidecar of"),
        (moved, D1, "history names it"),
        (keys, D2 if store == "json" else D1, "a checkpoint file of"),
    ]
    if store == "json":
        targets += [
            (cps / f"{D2}.json", D2, "a checkpoint file of stage"),
            (cps / f"{D1}.backup.json", D1, "a checkpoint file of stage"),
            (next((cps / "history" / D1).glob("*.json")), D1, "a checkpoint file of stage"),
        ]
    before = all_files(tmp_path)
    assert all(str(target) in before for target, _stage, _what in targets)
    for target, stage, what in targets:
        for command in (["export", "--output", target], ["report", "--html", target]):
            result = run_cli("--checkpoint-dir", cps, *command)
            line = assert_one_error_line(result, f"cannot write {target}:", repr(stage), what)
            assert "nothing was written" in line and result.stdout == "", line
            assert all_files(tmp_path) == before, (command, line)

    previous = tmp_path / "export.json"  # an ordinary file: replaced as before
    previous.write_text("yesterday's export\n")
    assert run_cli("--checkpoint-dir", cps, "export", "--output", previous).returncode == 0
    assert set(json.loads(previous.read_text())["stages"]) == {D1, D2}
    assert run_cli("--checkpoint-dir", cps, "report", "--html", previous).returncode == 0
    assert previous.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("command", [["list"], ["show", "discovery"], ["reset", "all", "--force"]])
def test_a_data_directory_given_as_the_checkpoint_directory_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    """--checkpoint-dir data (the orchestrator's --data-dir): its orchestrator.json was listed as
    a corrupt stage, and ``reset all --force`` removed it."""
    data = tmp_path / "data"
    make_stage(data / "checkpoints", D1, total=4, runs=[4], end="complete")
    (data / "orchestrator.json").write_text('{"completed": {}}\n')
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    result = run_cli("--checkpoint-dir", data, *command)
    assert_one_error_line(
        result,
        f"{data} is a data directory, not a checkpoint directory",
        f"pass --checkpoint-dir {data / 'checkpoints'} (nothing was changed)",
    )
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
