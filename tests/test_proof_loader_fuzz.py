"""Proof by fuzzing: whatever bytes sit in a checkpoint file, loading it is safe.

Each case writes a damaged ``<stage>.json`` (random bytes, every truncation of a real one, JSON
of the wrong shape, a real one with fields replaced by huge numbers, wrong types, unknown
statuses, future schema versions, contradicting counts, paths outside the data directory) and
checks the three allowed outcomes: a clear error naming the file, a restore from the backup,
or a loaded (possibly migrated) state that round-trips. Never another exception, never a
traceback from the CLI (run in process for every case, and as a subprocess on a sample), and
never a byte of the damaged file changed: loading, listing and showing leave it as it was, and
a run that resumes from the backup moves it aside intact.

Hypothesis runs derandomized (same cases every run) with the example counts in
``docs/proofs.md``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from common import CheckpointCorruptError, EnhancedCheckpoint, UnifiedCheckpointManager
from common.state import SCHEMA_VERSION, parse_checkpoint
from common.stores.json_file import JsonFileStore
from tools.checkpoint_cli import app as cli

ROOT = Path(__file__).resolve().parents[1]
STAGE = "fuzzed"

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _valid_checkpoint(directory: Path) -> bytes:
    """A real checkpoint: out-of-order progress, a done key, an error, an output, paused."""
    input_file = directory / "input.jsonl"
    input_file.write_text('{"url": "https://a.test/"}\n')
    checkpoint = EnhancedCheckpoint(directory / "checkpoints" / f"{STAGE}.json")
    with checkpoint:
        checkpoint.attach_output(directory / "out.jsonl")
        checkpoint.start(STAGE, total_items=50, input_file=input_file, config={"k": 1})
        for index in (0, 1, 2, 5, 9):
            checkpoint.update(
                processed=1,
                successful=1,
                index=index,
                key=f"https://a.test/{index}",
                last_item=f"https://a.test/{index}",
                record={"url": f"https://a.test/{index}"},
            )
        checkpoint.record_error("HTTP 503 on https://a.test/3")
        checkpoint.state.metadata = {"spider_name": "discovery", "nested": {"a": [1, 2]}}
        checkpoint.start_part("shard-1", total=10)
        checkpoint.pause()
    return (directory / "checkpoints" / f"{STAGE}.json").read_bytes()


@pytest.fixture(scope="module")
def valid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("valid")
    _valid_checkpoint(directory)
    return directory / "checkpoints"


@pytest.fixture(scope="module")
def valid(valid_dir: Path) -> bytes:
    return (valid_dir / f"{STAGE}.json").read_bytes()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def _kept_logging() -> Iterator[None]:
    """The CLI's main() installs its own root handler; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def cli_in_process(*argv: str) -> tuple[int, str, str]:
    """Run the CLI's main() here: an exception escaping it is the traceback a user would see."""
    out, err = io.StringIO(), io.StringIO()
    with _kept_logging(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _parser_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the CLI's parser costs more than a case; every call builds the same one."""
    monkeypatch.setattr(cli, "build_parser", functools.cache(cli.build_parser))


class Case:
    """One checkpoint directory holding a main file (and maybe a backup) to load.

    The directory is emptied and reused: thousands of directories would cost more than the
    cases themselves.
    """

    def __init__(self, base: Path, main: bytes, backup: bytes | None = None) -> None:
        self.directory = base / "case"
        self.directory.mkdir(exist_ok=True)
        for leftover in self.directory.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        self.main = self.directory / f"{STAGE}.json"
        self.backup = self.directory / f"{STAGE}.backup.json"
        self.main_bytes, self.backup_bytes = main, backup
        self.main.write_bytes(main)
        if backup is not None:
            self.backup.write_bytes(backup)

    def untouched(self) -> None:
        assert self.main.read_bytes() == self.main_bytes, "the damaged file was changed"
        if self.backup_bytes is not None:
            assert self.backup.read_bytes() == self.backup_bytes

    def load(self) -> tuple[str, Any]:
        """("error", message), ("backup", state) or ("ok", state); nothing else may happen."""
        store = JsonFileStore(self.directory)
        try:
            loaded = store.load(STAGE, lambda d, p: parse_checkpoint(d, path=p, stage=STAGE))
        except CheckpointCorruptError as exc:
            assert str(self.main) in str(exc), str(exc)
            return "error", str(exc)
        assert loaded is not None
        state, _migrated = loaded.value
        return ("backup" if loaded.restored_from_backup else "ok"), state

    def check(self) -> str:
        """Load through the store, the engine and the CLI; all agree, nothing is written."""
        kind, value = self.load()
        try:
            checkpoint = EnhancedCheckpoint(self.main)
        except CheckpointCorruptError as exc:
            assert kind == "error" and str(exc) == value
        else:
            assert kind != "error"
            assert checkpoint.restored_from_backup == (kind == "backup")
            round_trip, _ = parse_checkpoint(checkpoint.state.to_dict(), stage=STAGE)
            assert round_trip.to_dict() == checkpoint.state.to_dict()
            checkpoint.progress_snapshot().eta_seconds  # noqa: B018 - derived figures compute
            checkpoint.progress_line()
            checkpoint.close()
        manager = UnifiedCheckpointManager(self.directory)
        manager.report()
        manager.export()
        code, out, err = cli_in_process("--checkpoint-dir", str(self.directory), "show", STAGE)
        if kind == "error":
            assert code == 1 and err.startswith("error: ") and str(self.main) in err, err
        else:
            assert code == 0, err
        code, out, err = cli_in_process("--checkpoint-dir", str(self.directory), "list", "--json")
        assert code == 0, err
        assert json.loads(out)["stages"][0]["status"] == (
            "corrupt" if kind == "error" else None
        ) or (kind != "error")
        self.untouched()
        if currently_in_test_context():
            event(f"outcome: {kind}")  # counted in --hypothesis-show-statistics
        return kind


# Random bytes, truncations, wrong shapes -------------------------------------------------------


@settings(FUZZ, max_examples=120)
@given(data=st.binary(max_size=400))
def test_random_bytes_are_a_clear_error(workdir: Path, data: bytes) -> None:
    assert Case(workdir, data).check() == "error"


@settings(FUZZ, max_examples=80)
@given(data=st.binary(min_size=1, max_size=200))
def test_random_bytes_with_a_good_backup_restore_it(
    workdir: Path, valid: bytes, data: bytes
) -> None:
    assert Case(workdir, data, valid).check() == "backup"


def test_every_truncation_is_an_error_or_restores_the_backup(workdir: Path, valid: bytes) -> None:
    for length in range(len(valid)):
        assert Case(workdir, valid[:length]).load()[0] == "error", length
        case = Case(workdir, valid[:length], valid)
        kind, state = case.load()
        assert kind == "backup" and state.progress.processed_items == 5
        case.untouched()


def test_a_resume_from_the_backup_moves_the_damaged_file_aside_intact(
    workdir: Path, valid: bytes, valid_dir: Path
) -> None:
    keys = (valid_dir / f"{STAGE}.keys.jsonl").read_bytes()
    for length in range(0, len(valid), max(1, len(valid) // 25)):
        case = Case(workdir, valid[:length], valid)
        (case.directory / f"{STAGE}.keys.jsonl").write_bytes(keys)
        checkpoint = EnhancedCheckpoint(case.main)
        with checkpoint:
            assert checkpoint.restored_from_backup
            checkpoint.start(force=True)
            checkpoint.pause()
        asides = list(case.directory.glob(f"{STAGE}.corrupt-*.json"))
        assert [p.read_bytes() for p in asides] == [valid[:length]]
        assert EnhancedCheckpoint(case.main).state.progress.processed_items == 5


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(FUZZ, max_examples=100)
@given(value=JSON_VALUES)
def test_json_of_the_wrong_shape_is_a_clear_error(workdir: Path, value: Any) -> None:
    assert Case(workdir, json.dumps(value).encode()).check() == "error"


# A real checkpoint with fields replaced --------------------------------------------------------

HUGE_DIGITS = 5000  # more than int() may parse from text (4300 digits): crashed the CLI once
FIELDS: list[tuple[str, ...]] = [
    ("stage",),
    ("status",),
    ("schema_version",),
    ("progress",),
    ("progress", "total_items"),
    ("progress", "processed_items"),
    ("progress", "successful_items"),
    ("progress", "failed_items"),
    ("progress", "skipped_items"),
    ("progress", "start_time"),
    ("progress", "last_update_time"),
    ("progress", "estimated_completion_time"),
    ("progress", "active_seconds"),
    ("completion",),
    ("completion", "watermark"),
    ("completion", "done_above"),
    ("completion", "labels"),
    ("completion", "prefix_item"),
    ("journals",),
    ("journals", "output"),
    ("journals", "../../escape"),
    ("parts",),
    ("parts", "shard-1"),
    ("parts", "shard-1", "watermark"),
    ("last_processed_index",),
    ("last_processed_item",),
    ("batch_id",),
    ("input_file",),
    ("input_file_hash",),
    ("input_file_size",),
    ("output_file",),
    ("config_hash",),
    ("created_at",),
    ("updated_at",),
    ("error_message",),
    ("error_count",),
    ("last_error_time",),
    ("recent_errors",),
    ("metadata",),
    ("keys_done",),
    ("run_count",),
    ("recoveries",),
]

SPECIAL = st.sampled_from(
    [
        "__HUGE__",
        "__NEG_HUGE__",
        2**63,
        2**63 + 1,
        2**64,
        -1,
        -(2**63),
        float("inf"),
        float("-inf"),
        float("nan"),
        1e308,
        "running",
        "RUNNING",
        "exploded",
        "",
        "/etc/passwd",
        "../../../../outside.jsonl",
        "/dev/zero",
        "..",
        3,
        99,
        {"0": "x"},
        {"²": "superscript two"},
        {"1" * 30: "a long index"},
        [1, 1, 1],
        [-5],
        [2**64],
        [True],
    ]
)
VALUES = st.one_of(SPECIAL, JSON_VALUES, st.integers(min_value=-(2**70), max_value=2**70))
MISSING = object()


def _mutate(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = record
    for key in path[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    if value is MISSING:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def _encode(record: dict[str, Any]) -> bytes:
    text = json.dumps(record)  # NaN and Infinity are written as JSON's loaders accept them
    text = text.replace('"__HUGE__"', "9" * HUGE_DIGITS)
    return text.replace('"__NEG_HUGE__"', "-" + "7" * HUGE_DIGITS).encode()


@settings(FUZZ, max_examples=300)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(FIELDS), VALUES | st.just(MISSING)), min_size=1, max_size=3
    )
)
def test_fields_replaced_load_cleanly_or_fail_clearly(
    workdir: Path, valid: bytes, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    record = json.loads(valid)
    for path, value in changes:
        _mutate(record, path, value)
    Case(workdir, _encode(record)).check()


@settings(FUZZ, max_examples=100)
@given(
    counts=st.tuples(*(st.integers(min_value=0, max_value=2**64) for _ in range(5))),
    version=st.integers(min_value=-3, max_value=2**64) | st.none(),
)
def test_contradicting_counts_and_schema_versions(
    workdir: Path, valid: bytes, counts: tuple[int, ...], version: int | None
) -> None:
    record = json.loads(valid)
    names = ("total_items", "processed_items", "successful_items", "failed_items", "skipped_items")
    record["progress"].update(zip(names, counts, strict=True))
    if version is None:
        record.pop("schema_version")  # seed 003's format: migrated
    else:
        record["schema_version"] = version
    kind = Case(workdir, _encode(record)).check()
    processed, successful, failed, skipped = counts[1:]
    consistent = successful + failed <= processed + skipped and max(counts) <= 2**63
    assert (kind == "ok") == (consistent and version in (None, 1, 2))


def test_named_cases(workdir: Path, valid: bytes) -> None:
    """The cases the issue names, each with the outcome it must have."""
    record = json.loads(valid)

    def variant(**changes: Any) -> bytes:
        copy = json.loads(valid)
        copy.update(changes)
        return _encode(copy)

    deep: Any = "leaf"
    for _ in range(900):
        deep = [deep]
    seed_format = {k: v for k, v in record.items() if k not in ("schema_version", "completion")}
    seed_format["last_processed_index"] = 41
    cases = {
        "huge number": (variant(batch_id="__HUGE__"), "error", "digits"),
        "huge negative number": (variant(error_count="__NEG_HUGE__"), "error", "digits"),
        "unknown status": (variant(status="exploded"), "error", "'status'"),
        "future schema": (variant(schema_version=SCHEMA_VERSION + 1), "error", "newer version"),
        "stage escaping the directory": (variant(stage="../../etc/passwd"), "error", "'stage'"),
        "journal name escaping": (variant(journals={"../x": 1}), "error", "journals"),
        "deep nesting": (variant(metadata={"deep": deep}), "error", "nested too deeply"),
        "label that is not an index": (
            variant(completion={"watermark": 1, "labels": {"²": "x"}}),
            "error",
            "labels",
        ),
        "seed 003 format": (json.dumps(seed_format).encode(), "ok", None),
        "input outside the data dir": (variant(input_file="/etc/passwd"), "ok", None),
        "output outside the data dir": (variant(output_file="../../../x.jsonl"), "ok", None),
    }
    for name, (data, expected, needle) in cases.items():
        case = Case(workdir, data)
        assert case.check() == expected, name
        if needle is not None:
            assert needle in case.load()[1], (name, case.load()[1])
    migrated = EnhancedCheckpoint(Case(workdir, json.dumps(seed_format).encode()).main)
    assert migrated.migrated and migrated.state.completion.watermark == 42
    migrated.close()


# The CLI as a user runs it ---------------------------------------------------------------------


def test_cli_subprocess_on_a_sample_of_damaged_stages(tmp_path: Path, valid: bytes) -> None:
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    record = json.loads(valid)
    samples: dict[str, bytes] = {
        "random-bytes": b"\x00\xff\x13garbage\x80",
        "truncated": valid[: len(valid) // 2],
        "wrong-shape": b'[{"stage": "wrong-shape"}]',
        "huge-number": _encode({**record, "stage": "huge-number", "error_count": "__HUGE__"}),
        "wrong-type": _encode({**record, "stage": "wrong-type", "progress": "many"}),
        "unknown-status": _encode({**record, "stage": "unknown-status", "status": "zombie"}),
        "future-schema": _encode({**record, "stage": "future-schema", "schema_version": 99}),
        "restored": b"{torn",
    }
    for stage, data in samples.items():
        (directory / f"{stage}.json").write_bytes(data)
    (directory / "restored.backup.json").write_bytes(_encode({**record, "stage": "restored"}))
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                sys.executable,
                "tools/checkpoint_manager_cli.py",
                "--checkpoint-dir",
                directory,
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    listing = run("list", "--json")
    assert listing.returncode == 0
    statuses = {s["stage"]: s["status"] for s in json.loads(listing.stdout)["stages"]}
    assert statuses == {**dict.fromkeys(samples, "corrupt"), "restored": "paused"}
    assert run("report").returncode == 0
    assert run("export", "--output", str(tmp_path / "export.json")).returncode == 0
    for stage in ("huge-number", "truncated", "future-schema"):
        result = run("show", stage)
        assert result.returncode == 1
        assert result.stderr.startswith("error: ") and f"{stage}.json" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    refused = run("set", "huge-number", "3")
    assert refused.returncode == 1 and "huge-number.json" in refused.stderr
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.suffix == ".json"} == before
