"""``results`` and ``export-data``: the stage outputs a person looks at, read from a data dir."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common import EnhancedCheckpoint
from tests.test_cli import (
    SETPRIV,
    assert_one_error_line,
    give_to_nobody,
    run_as_nobody,
    run_cli,
)

STAGE = "stage2_validation"


def _record(i: int) -> tuple[dict[str, object], dict[str, object] | None]:
    """Item ``i``: a page record (status, error) and, for every tenth, a failed-item record."""
    host = "a.test" if i % 2 else "b.test"
    url = f"https://{host}/page-{i}"
    if i % 10 == 9:
        return {}, {"url": url, "status": None, "error": "connection refused", "elapsed_ms": 900}
    status = 404 if i % 7 == 3 else 200
    return {
        "url": url,
        "status": status,
        "ok": status == 200,
        "error": None,
        "h2": ["Overview", f"Part {i}"],
        "word_count": i * 3,
        "elapsed_ms": 400 if host == "a.test" else 100,
    }, None


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose validation stage wrote 40 items (36 pages, 4 failed), then an
    uncommitted torn tail, as a killed run leaves it."""
    data = tmp_path / "data"
    output = data / "processed" / "stage02" / "validation_output.jsonl"
    checkpoint = EnhancedCheckpoint(data / "checkpoints" / f"{STAGE}.json")
    checkpoint.start(STAGE, total_items=50, output_file=output)
    checkpoint.attach_output(output)
    for i in range(40):
        record, failed = _record(i)
        checkpoint.update(
            processed=1,
            successful=0 if failed else 1,
            failed=1 if failed else 0,
            index=i,
            record=record or None,
            failed_record=failed,
        )
    checkpoint.pause()
    checkpoint.close()
    with output.open("ab") as handle:  # written after the last save: not a result
        handle.write(b'{"url":"https://a.test/uncommitted","status":200}\n{"url":"https://a.te')
    return data


def test_results_counts_statuses_failures_hosts_and_samples(data_dir: Path) -> None:
    result = run_cli("--checkpoint-dir", data_dir / "checkpoints", "results", "--json")
    assert result.returncode == 0, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]
    pages = [_record(i) for i in range(40)]
    ok = [r for r, f in pages if not f]
    assert stage["records"] == 36 and stage["failed_records"] == 4
    assert stage["pages_by_status"] == {
        "200": sum(r["status"] == 200 for r in ok),
        "404": sum(r["status"] == 404 for r in ok),
        "no response": 4,
    }
    reasons = {f["reason"]: f["count"] for f in stage["top_failures"]}
    assert reasons == {"HTTP 404": sum(r["status"] == 404 for r in ok), "connection refused": 4}
    assert [h["host"] for h in stage["hosts"]] == ["a.test", "b.test"]  # slowest first
    assert stage["hosts"][0]["mean_seconds"] > stage["hosts"][1]["mean_seconds"]
    assert stage["hosts_timed"] is True
    assert [s["url"] for s in stage["samples"]] == [r["url"] for r in ok[:3]]

    text = run_cli("--checkpoint-dir", data_dir / "checkpoints", "results", "--top", "1")
    assert text.returncode == 0, text.stderr
    assert "36 records" in text.stdout and "Slowest hosts:" in text.stdout
    assert "uncommitted" not in text.stdout


def test_export_data_writes_csv_and_parquet_with_a_row_per_record(data_dir: Path) -> None:
    result = run_cli(
        "--checkpoint-dir", data_dir / "checkpoints", "export-data", "--data-dir", data_dir
    )
    assert result.returncode == 0, result.stderr
    exports = data_dir / "exports"
    pages = [r for r, f in map(_record, range(40)) if not f]
    failed = [f for _, f in map(_record, range(40)) if f]
    for name, expected in ((STAGE, pages), (f"{STAGE}.failed", failed)):
        with (exports / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["url"] for row in rows] == [r["url"] for r in expected]
        table = pq.read_table(exports / f"{name}.parquet")
        assert table.num_rows == len(expected)
        assert table.column("url").to_pylist() == [r["url"] for r in expected]
        assert (exports / f"{name}.csv").stat().st_mode & 0o077 == 0
    rows_by_url = {row["url"]: row for row in csv.DictReader((exports / f"{STAGE}.csv").open())}
    assert json.loads(rows_by_url[pages[0]["url"]]["h2"]) == pages[0]["h2"]
    table = pq.read_table(exports / f"{STAGE}.parquet")
    assert table.column("h2").to_pylist()[0] == pages[0]["h2"]  # lists stay lists
    assert table.column("status").to_pylist() == [r["status"] for r in pages]
    assert str(table.schema.field("status").type) == "int64"
    assert not list(exports.glob(".*"))  # no temporary file left


def test_export_data_one_format_and_an_unknown_stage(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = run_cli(
        "--checkpoint-dir",
        data_dir / "checkpoints",
        "export-data",
        "--format",
        "csv",
        "--output-dir",
        target,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == [f"{STAGE}.csv", f"{STAGE}.failed.csv"]
    missing = run_cli(
        "--checkpoint-dir", data_dir / "checkpoints", "export-data", "--stage", "stage9_nope"
    )
    assert missing.returncode == 2, missing  # a usage error, as for every command's STAGE
    assert missing.stderr.splitlines() == [
        f"error: no checkpoint for stage 'stage9_nope' in {data_dir / 'checkpoints'} "
        f"(known stages: {STAGE} (validation))"
    ]


def test_a_damaged_output_line_is_one_error_naming_the_file(data_dir: Path) -> None:
    output = data_dir / "processed" / "stage02" / "validation_output.jsonl"
    data = output.read_bytes()
    output.write_bytes(data.replace(b'{"url"', b'{"url"x', 1))
    result = run_cli("--checkpoint-dir", data_dir / "checkpoints", "results")
    assert_one_error_line(result, f"{output}:1")


def test_results_and_export_data_take_the_short_stage_name(data_dir: Path) -> None:
    cps = data_dir / "checkpoints"
    by_name = run_cli("--checkpoint-dir", cps, "results", "--json", "--stage", STAGE)
    by_alias = run_cli("--checkpoint-dir", cps, "results", "--json", "--stage", "validation")
    assert by_alias.returncode == 0, by_alias.stderr
    assert json.loads(by_alias.stdout) == json.loads(by_name.stdout)
    exported = run_cli(
        "--checkpoint-dir", cps, "export-data", "--stage", "validation", "--format", "csv"
    )
    assert exported.returncode == 0, exported.stderr
    assert (data_dir / "exports" / f"{STAGE}.csv").is_file()


def _discovery_beside(data: Path) -> Path:
    """A completed discovery stage with one record, beside the fixture's validation stage."""
    output = data / "processed" / "stage01" / "discovery_output.jsonl"
    checkpoint = EnhancedCheckpoint(data / "checkpoints" / "stage1_discovery.json")
    checkpoint.start("stage1_discovery", total_items=1, output_file=output)
    checkpoint.attach_output(output)
    checkpoint.update(processed=1, successful=1, index=0, record={"url": "https://a.test/"})
    checkpoint.complete()
    checkpoint.close()
    return data / "checkpoints" / "stage1_discovery.json"


def test_a_corrupt_checkpoint_is_one_line_and_the_other_stages_are_shown(data_dir: Path) -> None:
    main = _discovery_beside(data_dir)
    for copy in (main, main.with_name("stage1_discovery.backup.json")):
        copy.write_bytes(b"{not json")
    for extra in ([], ["--json"]):
        result = run_cli("--checkpoint-dir", data_dir / "checkpoints", "results", *extra)
        line = assert_one_error_line(result, "stage1_discovery", str(main), "invalid JSON")
        assert "Traceback" not in line
        assert STAGE in result.stdout and "page-0" in result.stdout  # validation still shown
        assert "stage1_discovery" not in result.stdout
    exported = run_cli("--checkpoint-dir", data_dir / "checkpoints", "export-data")
    assert_one_error_line(exported, str(main))
    assert (data_dir / "exports" / f"{STAGE}.csv").is_file()
    assert not (data_dir / "exports" / "stage1_discovery.csv").exists()


@pytest.mark.skipif(
    SETPRIV is None or os.geteuid() != 0, reason="needs root and setpriv to drop privileges"
)
def test_an_unreadable_checkpoint_is_one_line_and_the_other_stages_are_shown(
    data_dir: Path,
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="results-eacces-"))
    try:
        data = directory / "data"
        shutil.copytree(data_dir, data)
        main = _discovery_beside(data)
        give_to_nobody(directory)
        main.chmod(0)
        result = run_as_nobody("--checkpoint-dir", data / "checkpoints", "results")
        line = assert_one_error_line(result)
        assert line.startswith(f"error: cannot read {main}: permission denied"), line
        assert f"Stage: {STAGE}" in result.stdout and "36 records" in result.stdout
    finally:
        shutil.rmtree(directory)


def test_export_data_into_a_file_names_the_option_and_writes_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    for target in (afile, afile / "sub"):
        result = run_cli(
            "--checkpoint-dir", data_dir / "checkpoints", "export-data", "--output-dir", target
        )
        assert result.returncode == 1, result
        assert result.stderr.splitlines() == [
            f"error: --output-dir: {afile} is not a directory (nothing was written)"
        ]
        assert afile.read_text() == "mine\n"
        assert not (data_dir / "exports").exists()


def test_a_committed_line_that_is_not_an_object_fails_both_commands(data_dir: Path) -> None:
    # A record written by an engine that still took update(record="just a string"): the
    # commands name the line and exit 1, never a report with the line left out and exit 0.
    output = data_dir / "processed" / "stage02" / "validation_output.jsonl"
    data = output.read_bytes()
    first = data.index(b"\n") + 1
    output.write_bytes(json.dumps("x" * (first - 3)).encode() + b"\n" + data[first:])
    assert output.read_bytes()[:first].endswith(b'"\n')
    for command in ("results", "export-data"):
        result = run_cli("--checkpoint-dir", data_dir / "checkpoints", command)
        assert result.returncode == 1, command
        assert_one_error_line(result, f"{output}:1: not a JSON object")


def test_export_data_over_a_stage_output_writes_nothing(data_dir: Path) -> None:
    """A stage whose output is named as an export file of another stage would be (here
    ``exports/stage4_table.csv``): ``export-data`` used to replace it with its own CSV (the
    stage's records gone). Refused in one line naming the file and the stage, before any file
    is written, every file byte-identical."""
    exports = data_dir / "exports"
    theirs = exports / "stage4_table.csv"
    checkpoint = EnhancedCheckpoint(data_dir / "checkpoints" / "stage4_table.json")
    checkpoint.start("stage4_table", total_items=1, output_file=theirs)
    checkpoint.attach_output(theirs)
    checkpoint.update(processed=1, successful=1, index=0, record={"url": "https://a.test/"})
    checkpoint.complete()
    checkpoint.close()
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    result = run_cli(
        "--checkpoint-dir", data_dir / "checkpoints", "export-data", "--data-dir", data_dir
    )
    assert_one_error_line(result, f"cannot write {theirs}:", "'stage4_table'", "output")
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before
