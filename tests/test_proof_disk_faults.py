"""Proof under disk faults: a full or read-only disk never costs a checkpoint or a record.

``CHECKPOINT_FAIL_AT`` makes a named step of a save (the temporary record, its fsync, the backup
link, the replace, an output journal's append) or of a start (an output journal's open, the stage
lock) raise ENOSPC or EROFS in a real child process, as a full or read-only disk would there;
where this machine lets a test mount a small tmpfs, a really full and a really read-only file
system are used too. Each time:
one clear ``error:`` line and exit 1 (no traceback), the previous checkpoint intact and
readable, no half-written or temporary file, the stage marked failed on disk when the disk
still takes that one small write, and the same command, once the disk is fine again, finishing
with exactly the records of an uninterrupted run. ``python -m enrich`` and the checkpoint CLI
are held to the same.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from tests import _crash_child as child
from tests._demo_site import serving_demo_site
from tests._proof_checks import check_exact_result
from tools.demo_site import build_site

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 300


def run(
    *command: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, command)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_child(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "tests._crash_child", workdir, str(ITEMS), *args, env=env)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``error:`` lines; a traceback anywhere fails the test."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def fault(point: str, code: int, *, skip: int = 0, times: int = 0) -> dict[str, str]:
    return {
        "CHECKPOINT_FAIL_AT": point,
        "CHECKPOINT_FAIL_ERRNO": errno.errorcode[code],
        "CHECKPOINT_FAIL_SKIP": str(skip),
        "CHECKPOINT_FAIL_TIMES": str(times),
    }


def no_partial_files(workdir: Path) -> None:
    """No temporary file, no torn record: every file is whole or absent."""
    for path in child.paths(workdir)[0].rglob("*"):
        assert ".tmp" not in path.name and not path.name.endswith(".link"), path
        if path.suffix == ".json":
            json.loads(path.read_bytes())


def on_disk(workdir: Path) -> dict[str, object]:
    return json.loads((child.paths(workdir)[0] / f"{child.STAGE}.json").read_bytes())


# The steps of a save, each failing -------------------------------------------------------------

SAVE_FAULTS = [
    ("temp_open", errno.ENOSPC, 4),
    ("after_temp_write", errno.ENOSPC, 4),
    ("after_temp_fsync", errno.EIO, 4),
    ("after_backup_link", errno.EROFS, 4),
    ("after_backup", errno.ENOSPC, 4),
    ("after_replace", errno.EROFS, 4),
    ("after_journal_write", errno.ENOSPC, 4),
]


@pytest.mark.parametrize(("point", "code", "skip"), SAVE_FAULTS, ids=[p for p, _, _ in SAVE_FAULTS])
def test_a_failed_save_keeps_the_last_checkpoint_marks_the_stage_failed_and_resumes(
    tmp_path: Path, point: str, code: int, skip: int
) -> None:
    (tmp_path / "input.txt").write_text("input\n")
    # The fault passes after one failure: the disk takes the small "failed" record after it.
    result = run_child(tmp_path, **fault(point, code, skip=skip, times=1))
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result)
    assert os.strerror(code) in line
    no_partial_files(tmp_path)
    record = on_disk(tmp_path)
    assert record["status"] == "failed"
    assert os.strerror(code) in str(record["error_message"])
    assert run_child(tmp_path).returncode == 0
    check_exact_result(tmp_path, ITEMS)


@pytest.mark.parametrize("tracker", [False, True], ids=["engine", "tracker"])
def test_a_disk_that_stays_full_leaves_the_last_save_and_the_next_run_recovers(
    tmp_path: Path, tracker: bool
) -> None:
    (tmp_path / "input.txt").write_text("input\n")
    args = ("--tracker",) if tracker else ()
    result = run_child(tmp_path, *args, **fault("after_temp_write", errno.ENOSPC, skip=6))
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "No space left on device" in line and "previous checkpoint is intact" in line
    no_partial_files(tmp_path)
    assert on_disk(tmp_path)["status"] == "running"  # what the last save said
    checkpoint = EnhancedCheckpoint(child.paths(tmp_path)[0] / f"{child.STAGE}.json")
    assert checkpoint.recovered_from_crash
    checkpoint.close()
    assert run_child(tmp_path, *args).returncode == 0
    check_exact_result(tmp_path, ITEMS)


def test_the_stage_lock_on_a_read_only_directory_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("input\n")
    result = run_child(tmp_path, "--tracker", **fault("lock_open", errno.EROFS))
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "cannot lock stage 'crashy'" in line and "Read-only file system" in line
    checkpoint_dir = child.paths(tmp_path)[0]
    assert not list(checkpoint_dir.glob("*.json")) and not child.paths(tmp_path)[1].exists()


def test_an_output_journal_that_cannot_be_opened_refuses_the_start(tmp_path: Path) -> None:
    # A journal is opened (and locked) when the start cuts it back, before any save: a
    # read-only output refuses the start itself, changing nothing (skip=1: the sidecar).
    (tmp_path / "input.txt").write_text("input\n")
    result = run_child(tmp_path, **fault("journal_open", errno.EROFS, skip=1, times=1))
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result)
    assert "cannot prepare journal" in line and "Read-only file system" in line, line
    no_partial_files(tmp_path)
    assert run_child(tmp_path).returncode == 0
    check_exact_result(tmp_path, ITEMS)


# python -m enrich and the CLI ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_site() -> Iterator[str]:
    with serving_demo_site(40, 5) as base_url:
        yield base_url


@pytest.mark.parametrize(
    ("point", "code", "skip"),
    [("lock_open", errno.EROFS, 0), ("after_journal_write", errno.ENOSPC, 0)],
    ids=["lock", "output"],
)
def test_enrich_exits_non_zero_with_one_message(
    tmp_path: Path, demo_site: str, point: str, code: int, skip: int
) -> None:
    validation = tmp_path / "processed/stage02/validation_output.jsonl"
    validation.parent.mkdir(parents=True)
    with validation.open("w") as handle:
        for url in build_site(40, 5).expected_ok_urls(demo_site):
            handle.write(json.dumps({"url": url, "ok": True, "content_type": "text/html"}) + "\n")
    output = tmp_path / "processed/stage03/enrichment_output.jsonl"
    result = run("-m", "enrich", "--data-dir", tmp_path, env=fault(point, code, skip=skip))
    assert result.returncode == 1
    [line] = error_lines(result)
    assert os.strerror(code) in line
    if point == "after_journal_write":  # records appended, never committed: cut on the rerun
        record = json.loads((tmp_path / "checkpoints/stage3_async_enrichment.json").read_bytes())
        assert record["status"] == "failed" and record["journals"]["output"] == 0
    assert run("-m", "enrich", "--data-dir", tmp_path).returncode == 0
    urls = [json.loads(line)["url"] for line in output.read_bytes().splitlines()]
    assert sorted(urls) == sorted(set(urls)) and len(urls) == len(
        build_site(40, 5).expected_ok_urls(demo_site)
    )


def test_cli_commands_that_write_fail_cleanly_and_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("input\n")
    run_child(tmp_path, CHECKPOINT_CRASH_AT="after_replace", CHECKPOINT_CRASH_SKIP="10")
    checkpoint_dir = child.paths(tmp_path)[0]
    # The crash child's stage resumes by key, where `set` is refused before it writes anything;
    # an index-based stage beside it gives `set` something to write.
    plain = EnhancedCheckpoint(checkpoint_dir / "plain.json")
    plain.start(total_items=10)
    for index in range(3):
        plain.update(processed=1, successful=1, index=index)
    plain.pause()
    plain.close()

    def files() -> dict[Path, bytes]:  # the lock file's content only names its last holder
        return {
            p: p.read_bytes()
            for p in checkpoint_dir.rglob("*")
            if p.is_file() and p.suffix != ".lock"
        }

    before = files()
    cli = ("tools/checkpoint_manager_cli.py", "--checkpoint-dir", checkpoint_dir)
    for args, point in [
        (("set", "plain", "5"), "temp_open"),
        (("reset", child.STAGE, "--force"), "after_temp_write"),
        (("export", "--output", tmp_path / "export.json"), "temp_open"),
        (("set", "plain", "5"), "lock_open"),
    ]:
        result = run(*cli, *args, env=fault(point, errno.EROFS))
        assert result.returncode == 1, (args, result.stderr)
        [line] = error_lines(result)
        assert "Read-only file system" in line, line
        assert files() == before, args
    assert not (tmp_path / "export.json").exists()


# A real tmpfs: really full, really read-only ---------------------------------------------------


TMPFS_OPT_IN = "PIPELINE_TEST_TMPFS"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs: opt-in (it needs root and ``mount``), and then it must work."""
    if os.environ.get(TMPFS_OPT_IN) != "1":
        pytest.skip(
            f"not run: a real tmpfs needs root; set {TMPFS_OPT_IN}=1 to run it (the errno "
            f"switch above covers the same steps)"
        )
    path.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.fail(f"{TMPFS_OPT_IN}=1 but there is no mount command here")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(f"{TMPFS_OPT_IN}=1 but mounting a tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.tmpfs
def test_a_really_full_then_really_read_only_file_system(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        (disk / "input.txt").write_text("input\n")
        run_child(disk, CHECKPOINT_CRASH_AT="after_replace", CHECKPOINT_CRASH_SKIP="10")
        main = child.paths(disk)[0] / f"{child.STAGE}.json"
        before = main.read_bytes()
        filler = disk / "filler"
        with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
            while handle.write(b"\0" * 4096):  # until the file system is really full
                pass
        result = run_child(disk)
        assert result.returncode == 1, result.stderr
        [line] = error_lines(result)
        assert "No space left on device" in line
        no_partial_files(disk)
        assert main.read_bytes() == before
        filler.unlink()

        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run_child(disk)
        assert result.returncode == 1
        [line] = error_lines(result)
        assert "Read-only file system" in line
        assert main.read_bytes() == before
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)

        assert run_child(disk).returncode == 0
        check_exact_result(disk, ITEMS)
