"""``python -m enrich`` on its own: its options, and the summary it ends with."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from yarl import URL

from common.manager import UnifiedCheckpointManager
from common.work_queue.queue import StageRecord
from enrich.__main__ import Job, build_parser, prepare, summary_lines
from enrich.async_enrichment import output_settings
from enrich.config import DEFAULT_USER_AGENT, EnrichmentConfig
from enrich.distributed import DistributedOptions, worker_command
from enrich.worker import build_parser as worker_build_parser
from enrich.worker import fetch_config
from tests._demo_site import serving_demo_site
from tests._enrich_stage import REPO_ROOT, run_enrich, write_stage2
from tests._waiting import wait_for
from tests.test_cli import run_cli
from tests.test_enrich_extract import reference_extract
from tools.bench.load import LoadSite, start_load_site
from tools.demo_site import build_site

STAGE = "stage3_async_enrichment"


@pytest.fixture(scope="module")
def load_site() -> Iterator[LoadSite]:
    site = start_load_site(40, 3, transient_share=0.0, transient_failures=1)
    yield site
    site.stop()


def test_a_run_ends_with_its_summary_and_the_paths_and_a_rerun_says_nothing_to_do(
    load_site: LoadSite, tmp_path: Path
) -> None:
    site, base = load_site.site, load_site.base_url
    good = [base + spec.path for spec in site.html_pages()[:5]]
    broken = [base + path for path in site.broken_paths[:2]]
    assert broken
    pages = len(good) + len(broken)
    write_stage2(tmp_path, [*good, *broken, good[0] + "#again"])  # one page, two addresses
    output = tmp_path / "processed/stage03/enrichment_output.jsonl"
    failed = output.with_name("enrichment_output.failed.jsonl")

    first = run_enrich("--data-dir", str(tmp_path))

    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.splitlines()[-4:] == [
        f"{STAGE} completed, {pages} pages: 5 written, {len(broken)} failed, 0 skipped (not HTML)",
        "  not fetched: 1 alias of a page listed before",  # no "0 input records not HTML pages"
        f"  records: {output}",
        f"  failed:  {failed} (retry: --retry-failed)",
    ]
    # The summary's counts are the files' line counts.
    assert len(output.read_text().splitlines()) == 5
    assert len(failed.read_text().splitlines()) == len(broken)

    load_site.reset()
    again = run_enrich("--data-dir", str(tmp_path))

    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.splitlines()[0] == (
        f"{STAGE}: nothing to do, already completed "
        f"(5 written, {len(broken)} failed, 0 skipped (not HTML))"
    )
    assert load_site.stats() == {}


def test_a_paused_or_failed_stage_says_how_far_it_got() -> None:
    output = Path("data/out.jsonl")
    paused = summary_lines(
        STAGE, "paused", written=90, failed=0, skipped=10, total=500, output_file=output,
        stopped_by_signal="SIGINT",
    )  # fmt: skip
    assert paused == [
        f"{STAGE} paused by SIGINT at 100 of 500 pages (90 written, 0 failed, 10 skipped "
        "(not HTML)); run the same command to resume",
        "  records: data/out.jsonl",
    ]
    started_fresh = summary_lines(
        STAGE, "paused", written=90, failed=0, skipped=10, total=500, output_file=output,
        stopped_by_signal="SIGINT", fresh=True,
    )  # fmt: skip
    assert started_fresh[0].endswith("run the same command without --fresh to resume")
    failed = summary_lines(
        STAGE, "failed", written=1, failed=2, skipped=0, total=9, output_file=output
    )
    assert (
        failed[0] == f"{STAGE} failed at 3 of 9 pages (1 written, 2 failed, 0 skipped (not HTML))"
    )
    assert failed[-1] == "  failed:  data/out.failed.jsonl (retry: --retry-failed)"
    # The input's records that were no page to fetch get a line, so the counts add up.
    completed = summary_lines(
        STAGE, "completed", written=526, failed=0, skipped=0, total=526, output_file=output,
        left_out=2, repeats=1,
    )  # fmt: skip
    assert completed[:2] == [
        f"{STAGE} completed, 526 pages: 526 written, 0 failed, 0 skipped (not HTML)",
        "  not fetched: 2 input records not HTML pages (HTTP errors, other types), 1 alias "
        "of a page listed before",
    ]


def test_the_not_fetched_line_leaves_out_a_zero_count_and_is_left_out_when_both_are() -> None:
    def not_fetched(left_out: int, repeats: int) -> list[str]:
        lines = summary_lines(
            STAGE, "completed", written=3, failed=0, skipped=0, total=3,
            output_file=Path("data/out.jsonl"), left_out=left_out, repeats=repeats,
        )  # fmt: skip
        return [line for line in lines if "not fetched" in line]

    assert not_fetched(0, 0) == []
    assert not_fetched(1, 0) == [
        "  not fetched: 1 input record not an HTML page (HTTP errors, other types)"
    ]
    assert not_fetched(0, 2) == ["  not fetched: 2 aliases of pages listed before"]
    assert not_fetched(1_000, 1) == [
        "  not fetched: 1,000 input records not HTML pages (HTTP errors, other types), 1 alias "
        "of a page listed before"
    ]


def test_user_agent_delay_and_directory_index_reach_the_config(tmp_path: Path) -> None:
    write_stage2(tmp_path, ["http://a.test/d/", "http://a.test/d/index.html"])
    parser = build_parser()

    default = prepare(parser.parse_args(["--data-dir", str(tmp_path)]))
    kept_apart = prepare(
        parser.parse_args(
            [
                "--data-dir",
                str(tmp_path),
                "--directory-index",
                "",
                "--user-agent",
                "me (+mail)",
                "--delay",
                "1.5",
            ]
        )
    )

    assert isinstance(default, Job) and isinstance(kept_apart, Job)
    assert default.config.user_agent == DEFAULT_USER_AGENT
    assert default.config.directory_index == ("index.html", "index.htm")
    assert list(default.source) == ["http://a.test/d/"]
    assert kept_apart.config.user_agent == "me (+mail)"
    assert (default.config.per_host_delay, kept_apart.config.per_host_delay) == (0.0, 1.5)
    assert kept_apart.config.directory_index == ()
    assert list(kept_apart.source) == ["http://a.test/d/", "http://a.test/d/index.html"]


def test_a_start_without_workers_does_not_load_psycopg() -> None:
    """psycopg (the shared PostgreSQL queue's driver) costs every start ~0.08 s: it is loaded
    only by --workers. The real entry point, run to its parsed options, and the module alone."""
    started = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "enrich", "--help"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    assert "import time:" in started.stderr
    assert [line for line in started.stderr.splitlines() if "psycopg" in line] == []
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import enrich.__main__, sys; from common.work_queue import DSN_ENV, resolve_dsn; "
            "print('psycopg' in sys.modules)",
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert imported.stdout.strip() == "False", imported.stderr[-2000:]
    # What needs it is still where it was, loaded on first use.
    from common.work_queue import WorkQueue
    from common.work_queue.queue import WorkQueue as Queue

    assert WorkQueue is Queue


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--directory-index", "docs/index.html", "bare file names"),
        ("--user-agent", " ", "must not be empty"),
        ("--delay", "-1", "must be >= 0"),
        ("--delay", "soon", "not a number of seconds"),
        ("--concurrency", "0", "must be at least 1"),
        ("--per-host", "-2", "must be at least 1"),
        ("--allow-network", "bogus", "argument --allow-network: 'bogus' is not an IP address"),
    ],
)
def test_bad_options_are_usage_errors(
    option: str, value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([option, value])
    assert exit_info.value.code == 2
    assert reason in capsys.readouterr().err


def test_pacing_reaches_shared_workers_without_entering_the_stored_settings() -> None:
    config = EnrichmentConfig(per_host_delay=2.5, allowed_domains=("a.test",))
    stored = {"stage": STAGE, "fetch": output_settings(config)}
    assert "per_host_delay" not in stored["fetch"]  # changing the pace never refuses a resume
    record = StageRecord(STAGE, "hash", stored, 10, 30.0, 3, False)

    worker = fetch_config(record, None, 2.5)
    assert (worker.per_host_delay, worker.allowed_domains) == (2.5, ("a.test",))
    assert fetch_config(record).per_host_delay == 0.0

    paced = DistributedOptions(dsn="postgresql://x/y", workers=2, per_host_delay=2.5)
    assert worker_command(paced, STAGE)[-2:] == ["--delay", "2.5"]
    assert "--delay" not in worker_command(
        DistributedOptions(dsn="postgresql://x/y", workers=2), STAGE
    )
    assert worker_build_parser().parse_args(["--delay", "2.5"]).delay == 2.5


@pytest.mark.slow
def test_a_documentation_site_gives_one_record_per_page_with_headings_a_reader_sees(
    tmp_path: Path,
) -> None:
    """The demo site's Sphinx-like mode: ``/x/`` and ``/x/index.html`` serve one page, headings
    carry ``¶`` headerlinks. Stage 3 over every URL that answers gives one record per page, and
    its words and headings agree with BeautifulSoup on the bodies the site serves."""
    pages = 120
    site = build_site(pages, 5, profile="dense")
    with serving_demo_site(pages, 5, profile="dense", timeout=120) as base:
        urls = site.expected_ok_urls(base)
        plain = [u for u in urls if "?" not in u]  # a query may change the page: kept apart
        assert any(u.endswith("/index.html") for u in plain)
        write_stage2(tmp_path, urls)
        run = run_enrich("--data-dir", str(tmp_path))
        assert run.returncode == 0, run.stderr[-2000:]
        output = tmp_path / "processed/stage03/enrichment_output.jsonl"
        records = [json.loads(line) for line in output.read_text().splitlines()]
        samples = {r["url"]: r for r in records if "?" not in r["url"]}
        bodies = {}
        for url in sorted(samples)[:5]:
            with urllib.request.urlopen(url, timeout=60) as response:
                bodies[url] = response.read().decode("utf-8")

    paths = [URL(r["url"]).path.removesuffix("index.html") for r in records if "?" not in r["url"]]
    assert len(paths) == len(set(paths)) == len(site.html_pages())
    assert len(records) == len(paths) + len(urls) - len(plain)
    for record in records:
        assert not any("¶" in heading for heading in record["h1"] + record["h2"]), record["url"]
    for url, body in bodies.items():
        words, h1, h2 = reference_extract(body)
        assert (samples[url]["word_count"], samples[url]["h1"], samples[url]["h2"]) == (
            words,
            h1,
            h2,
        ), url


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_directory_given_as_input_or_output_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """--input DIR says it is a directory (not "run validation first"); --output DIR (or one
    whose failed sidecar is a directory, or under a file) is refused, naming the path, before
    the checkpoint directory or a lock file is made."""
    write_stage2(tmp_path, ["http://127.0.0.1:9/a"])
    output = tmp_path / "out.jsonl"
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "out.failed.jsonl").mkdir()
    before = _tree(tmp_path)
    for args, line in (
        (
            ["--input", str(tmp_path / "adir")],
            f"error: input {tmp_path / 'adir'} is a directory, not a JSON Lines file",
        ),
        (
            ["--output", str(tmp_path / "adir")],
            f"error: output {tmp_path / 'adir'} is a directory, not a JSON Lines file "
            "(nothing was written)",
        ),
        (
            ["--output", str(output)],
            f"error: failed sidecar {tmp_path / 'out.failed.jsonl'} is a directory, not a JSON "
            "Lines file (nothing was written)",
        ),
        (
            ["--output", str(tmp_path / "afile" / "o.jsonl")],
            f"error: output {tmp_path / 'afile' / 'o.jsonl'} cannot be created: "
            f"{tmp_path / 'afile'} is not a directory (nothing was written)",
        ),
    ):
        result = run_enrich("--data-dir", str(tmp_path), *args)
        assert result.returncode == 1, (args, result.stderr[-2000:])
        assert result.stderr.splitlines() == [line], args
        assert _tree(tmp_path) == before, args  # no checkpoints/, no lock file


class _GatedPages(http.server.BaseHTTPRequestHandler):
    """HTML pages answered only once the test opens the gate: the stage stays running."""

    gate = threading.Event()
    asked = threading.Event()

    def do_GET(self) -> None:
        type(self).asked.set()
        type(self).gate.wait(timeout=300)  # bounds a hang
        body = f"<html><head><title>{self.path}</title></head><body>x</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_reset_of_a_stage_being_enriched_is_refused_and_the_run_finishes(tmp_path: Path) -> None:
    """B3: checkpoint-manager reset --force while python -m enrich runs the stage said "reset",
    exit 0, and the run saved the checkpoint again. Now it is refused naming the run's pid,
    and the run finishes with every page."""

    class Pages(_GatedPages):
        gate = threading.Event()
        asked = threading.Event()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    write_stage2(tmp_path, [f"{base}/page-{n}" for n in range(3)])
    checkpoints = tmp_path / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-m", "enrich", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        Pages.asked.wait(timeout=300)
        manager = UnifiedCheckpointManager(checkpoints)
        wait_for(
            lambda: STAGE in manager.stages() and manager.inspect(STAGE).live,
            300,
            "the enrichment stage to be saved and held",
        )
        result = run_cli("--checkpoint-dir", checkpoints, "reset", "enrichment", "--force")
        assert result.returncode == 1, result
        assert result.stderr.splitlines() == [
            f"error: stage {STAGE} is running (pid {proc.pid}); stop it first (nothing was changed)"
        ]
        assert result.stdout == ""
        assert (checkpoints / f"{STAGE}.json").exists()
        assert "before-reset" not in [e.reason for e in manager.store.list_history(STAGE)]
    finally:
        Pages.gate.set()
        out, err = proc.communicate(timeout=300)
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, err[-2000:]
    assert f"{STAGE} completed, 3 pages: 3 written" in out
    shown = json.loads(run_cli("--checkpoint-dir", checkpoints, "show", STAGE, "--json").stdout)
    assert shown["status"] == "completed" and shown["progress"]["processed_items"] == 3


@pytest.mark.parametrize("workers", [False, True], ids=["local", "workers"])
def test_an_output_another_stage_records_is_refused_before_anything_is_written(
    tmp_path: Path, workers: bool, request: pytest.FixtureRequest
) -> None:
    # --output pointed at stage 1's output (a copy-paste of the wrong path): refused with one
    # line naming the file and stage 1, the file untouched, nothing fetched. With --workers
    # the work queue's server is reached first (a real one: an unreachable one is refused
    # before the output is looked at).
    from common import EnhancedCheckpoint

    dsn = request.getfixturevalue("postgres_dsn") if workers else None

    write_stage2(tmp_path, ["http://127.0.0.1:9/a"])
    discovery = tmp_path / "processed/stage01/discovery_output.jsonl"
    stage1 = EnhancedCheckpoint(tmp_path / "checkpoints" / "stage1_discovery.json")
    stage1.attach_output(discovery)
    stage1.start("stage1_discovery", total_items=1)
    stage1.update(processed=1, successful=1, index=0, record={"url": "http://127.0.0.1:9/"})
    stage1.complete()
    stage1.close()
    sidecar = discovery.with_name("discovery_output.failed.jsonl")
    before = discovery.read_bytes(), sidecar.read_bytes()
    extra = ["--workers", "1", "--dsn", dsn] if dsn is not None else []
    result = run_enrich("--data-dir", str(tmp_path), "--output", str(discovery), *extra)
    assert result.returncode == 1, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: stage '{STAGE}' cannot write {discovery}: "), line
    assert "stage 'stage1_discovery'" in line and "nothing was changed" in line
    assert (discovery.read_bytes(), sidecar.read_bytes()) == before
