"""The orchestrator's options: usage errors, production's refusals, the polite profile, the
config file. Nothing here crawls: each test runs ``python -m tools.orchestrator`` against no
site, or calls the option parsing directly.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.orchestrator", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--pages", "0", "must be at least 1"),
        ("--pages", "-5", "must be at least 1, got -5"),
        ("--depth-limit", "-1", "must be at least 1, got -1"),
        ("--depth-limit", "0", "must be at least 1"),
        ("--max-pages", "0", "must be at least 1"),
        ("--max-time", "0", "must be > 0"),
        ("--download-delay", "-1", "must be a finite number >= 0"),
        ("--workers", "-2", "must be >= 0"),
        ("--allow-network", "10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
    ],
)
def test_bad_option_values_are_usage_errors_before_anything_starts(
    option: str, value: str, reason: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    result = run_cli("--data-dir", str(data_dir), "--no-live", f"{option}={value}")
    assert result.returncode == 2, result.stderr
    no_traceback(result)
    last = result.stderr.strip().splitlines()[-1]
    assert f"argument {option}: {reason}" in last, last
    assert not data_dir.exists()  # no demo site, no data dir, no logs


def test_an_unreachable_work_queue_is_named_before_any_stage_runs(tmp_path: Path) -> None:
    """Not after hours of crawling, when the shared enrichment stage starts."""
    data_dir = tmp_path / "d"
    dsn = "postgresql://crawler:s3cret@127.0.0.1:1/crawl"  # nothing listens on port 1
    result = run_cli("--data-dir", str(data_dir), "--no-live", "--workers", "2", "--dsn", dsn)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: cannot reach the work queue at postgresql://crawler@127.0.0.1:1/crawl"
    )
    assert last.endswith("(nothing was started)"), last
    assert "s3cret" not in result.stderr + result.stdout
    assert not data_dir.exists()


def test_a_run_without_workers_does_not_load_psycopg(tmp_path: Path) -> None:
    """psycopg (the shared queue's driver) costs every start ~0.1 s: only --workers loads it.
    The real entry point, run past the queue's reachability check to a refusal, and the
    module alone."""
    data_dir = tmp_path / "d"
    started = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tools.orchestrator", "--env", "production",
         "--data-dir", str(data_dir), "--no-live"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr[-2000:]
    assert "--env production needs --config" in started.stderr  # run() got that far
    assert "import time:" in started.stderr
    assert [line for line in started.stderr.splitlines() if "psycopg" in line] == []
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, tools.orchestrator.app; print('psycopg' in sys.modules)"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert imported.stdout.strip() == "False", imported.stderr[-2000:]


def test_production_without_a_config_refuses_to_crawl_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    result = run_cli("--env", "production", "--data-dir", str(data_dir), "--no-live")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--env production needs --config" in lines[0], lines
    assert not data_dir.exists()


def test_production_refuses_a_private_start_url_in_every_stage(tmp_path: Path) -> None:
    """Stages 1-2 and stage 3 apply one address policy: a loopback start URL is refused up
    front (before a stage runs) instead of crawled by stages 1-2 and refused by stage 3."""
    data_dir = tmp_path / "d"
    result = run_cli(
        "--env", "production", "--start-url", "http://127.0.0.1:9/", "--data-dir",
        str(data_dir), "--no-live",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "not a public address" in lines[0] and "--allow-network 127.0.0.1" in lines[0]
    assert not (data_dir / "checkpoints").exists() or not any((data_dir / "checkpoints").iterdir())


def test_allow_network_reaches_stage_3_with_the_guard(tmp_path: Path) -> None:
    from tools.orchestrator.app import build_parser, resolve_config, stage_command
    from tools.orchestrator.stages import STAGES as SPECS

    args = build_parser().parse_args(
        ["--env", "production", "--start-url", "http://10.1.2.3/", "--allow-network", "10.1.2.3"]
    )
    config = resolve_config(args, None)
    command = stage_command(SPECS[2], config, tmp_path, force=False, fresh=False)
    assert "--block-private-addresses" in command
    assert command[command.index("--allow-network") + 1] == "10.1.2.3"
    from tools.orchestrator.politeness import check_addresses

    check_addresses(config)  # allowed: no error


def test_a_real_site_gets_polite_defaults_and_the_demo_site_fast_ones(tmp_path: Path) -> None:
    from tools.orchestrator.app import build_parser, resolve_config
    from tools.orchestrator.config import POLITE

    parser = build_parser()
    real = resolve_config(parser.parse_args(["--start-url", "https://docs.example.org/"]), None)
    for name, value in POLITE.items():
        assert getattr(real, name) == value, name
    assert real.autothrottle and real.concurrency_per_domain <= 2 and real.download_delay >= 1
    demo = resolve_config(parser.parse_args([]), "http://127.0.0.1:8000")
    assert not demo.autothrottle and demo.concurrency_per_domain == 32
    assert demo.download_delay == 0
    tuned = resolve_config(
        parser.parse_args(
            ["--start-url", "https://docs.example.org/", "--user-agent", "me (+mailto:a@b.c)",
             "--download-delay", "3", "--max-pages", "50", "--max-time", "600"]
        ),
        None,
    )  # fmt: skip
    assert (tuned.user_agent, tuned.download_delay) == ("me (+mailto:a@b.c)", 3.0)
    assert (tuned.max_pages, tuned.max_seconds, tuned.autothrottle) == (50, 600.0, True)


def test_robots_crawl_delay_is_read_for_the_user_agent(tmp_path: Path) -> None:
    import http.server
    import threading

    from tools.orchestrator.politeness import robots_crawl_delay

    class Robots(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"User-agent: *\nCrawl-delay: 2.5\nDisallow: /private/\n"
            self.send_response(200 if self.path == "/robots.txt" else 404)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Robots)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert robots_crawl_delay([url], "my-crawler (+mailto:a@b.c)") == 2.5
        assert robots_crawl_delay(["http://127.0.0.1:9/"], "x") is None  # unreachable: Scrapy's
    finally:
        server.shutdown()
        server.server_close()


def test_a_polite_crawl_without_a_user_agent_is_told_to_set_one(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    result = run_cli(
        "--start-url", url, "--polite", "--stage", "discovery", "--data-dir",
        str(tmp_path / "d"), "--no-live", timeout=300,
    )  # fmt: skip
    assert "warning: crawling as 'resumable-crawl" in result.stderr, result.stderr
    assert "set --user-agent" in result.stderr


def test_the_example_config_loads_and_every_key_is_explained() -> None:
    from tools.orchestrator.config import EXAMPLE_CONFIG, load_config_file

    config = load_config_file(EXAMPLE_CONFIG)
    assert config.autothrottle and config.concurrency_per_domain == 2
    assert config.user_agent and "example.invalid" not in config.user_agent
    # Every key, set or commented out, sits under a comment (keys of a group share one).
    lines = EXAMPLE_CONFIG.read_text().splitlines()
    key = re.compile(r"^#? ?\w+ = ")
    for number, line in enumerate(lines):
        if key.match(line):
            above = number - 1
            while above >= 0 and key.match(lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("# "), f"line {number + 1}: {line}"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[crawl]\nobey_robots = "false"\n', "[crawl] obey_robots must be true or false"),
        ('[crawl]\ndepth_limit = "3"\n', "[crawl] depth_limit must be an integer"),
        ("[crawl]\ndepth_limit = true\n", "[crawl] depth_limit must be an integer"),
        ("[crawl]\nspeed = 3\n", "unknown keys crawl.speed"),
        ("[crawl]\nstart_urls = 'x'\n", "start_urls must be a list of strings"),
        (
            '[enrichment]\nallow_networks = ["intranet"]\n',
            "allowed network 'intranet' is not an IP address or network",
        ),
    ],
)
def test_a_config_value_of_the_wrong_type_is_named(toml: str, named: str, tmp_path: Path) -> None:
    from tools.orchestrator.config import ConfigError, load_config_file

    path = tmp_path / "site.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(named)) as caught:
        load_config_file(path, ("https://docs.example.org/",))
    assert str(path) in str(caught.value)


def test_a_stage_whose_every_item_failed_is_not_a_success(tmp_path: Path) -> None:
    """Stage 3 refusing every page (an address policy, say) ends the run with the first
    failure named; an empty input, where nothing failed, is fine."""
    import json

    from common import EnhancedCheckpoint, UnifiedCheckpointManager
    from tools.orchestrator.stages import STAGES, fetched_nothing

    enrichment = STAGES[2]
    sidecar = tmp_path / enrichment.sidecar()
    sidecar.parent.mkdir(parents=True)
    failure = {"url": "http://10.0.0.7/", "error": "refused address: 10.0.0.7"}
    sidecar.write_text(json.dumps(failure) + "\n")
    checkpoint = EnhancedCheckpoint(tmp_path / "checkpoints" / f"{enrichment.name}.json")
    checkpoint.start(enrichment.name, total_items=2)
    checkpoint.update(processed=2, failed=2)
    checkpoint.complete()
    checkpoint.close()
    manager = UnifiedCheckpointManager(tmp_path / "checkpoints")
    try:
        info = manager.inspect(enrichment.name)
        reason = fetched_nothing(enrichment, tmp_path, info)
        assert reason == "fetched nothing: http://10.0.0.7/: refused address: 10.0.0.7"
        empty = EnhancedCheckpoint(tmp_path / "checkpoints" / "stage2_validation.json")
        empty.start("stage2_validation", total_items=0)
        empty.complete()
        empty.close()
        assert fetched_nothing(STAGES[1], tmp_path, manager.inspect("stage2_validation")) is None
    finally:
        manager.close()


def test_stage_3_gets_the_same_user_agent_and_delay_as_the_crawl(tmp_path: Path) -> None:
    from tools.orchestrator.app import build_parser, resolve_config, stage_command
    from tools.orchestrator.stages import STAGES as SPECS

    args = build_parser().parse_args(
        ["--start-url", "https://docs.example.org/", "--user-agent", "me (+mailto:a@b.c)",
         "--download-delay", "3"]
    )  # fmt: skip
    config = resolve_config(args, None)
    crawl = stage_command(SPECS[0], config, tmp_path, force=False, fresh=False)
    enrich = stage_command(SPECS[2], config, tmp_path, force=False, fresh=False)
    assert "USER_AGENT=me (+mailto:a@b.c)" in crawl and "DOWNLOAD_DELAY=3.0" in crawl
    assert enrich[enrich.index("--user-agent") + 1] == "me (+mailto:a@b.c)"
    assert float(enrich[enrich.index("--delay") + 1]) == 3.0
    demo = resolve_config(build_parser().parse_args([]), "http://127.0.0.1:8000")
    assert "--delay" not in stage_command(SPECS[2], demo, tmp_path, force=False, fresh=False)


@pytest.mark.parametrize("nested", [False, True])
def test_a_data_dir_on_a_file_is_one_line_naming_it(tmp_path: Path, nested: bool) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("mine\n")
    data_dir = a_file / "sub" if nested else a_file
    result = run_cli("--data-dir", str(data_dir), "--no-live")
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(data_dir) in lines[0] and "Errno" not in lines[0] and "stage" not in lines[0]
    assert a_file.read_text() == "mine\n"


@pytest.mark.parametrize("stage", ["validation", "enrichment"])
def test_a_later_stage_without_its_input_is_refused_before_the_data_dir_is_made(
    tmp_path: Path, stage: str
) -> None:
    """``--stage enrichment --data-dir dta`` (a typo) made dta/ with logs, a lock and the demo
    site's port, and started the demo site, before saying the input was missing."""
    data_dir = tmp_path / "dta"
    result = run_cli("--data-dir", str(data_dir), "--no-live", "--stage", stage)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot run stage")
    assert line.endswith(
        "does not exist (run the earlier stages first, e.g. --stage all) (nothing was changed)"
    )
    assert not data_dir.exists()
