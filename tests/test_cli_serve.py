"""``serve``: the live dashboard, read in real headless Chromium while a checkpoint advances."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from common.manager import UnifiedCheckpointManager
from tests.test_cli import CHROMIUM, ROOT, SCRIPT, assert_one_error_line, run_cli, snapshot_files
from tools.checkpoint_cli.dashboard import Dashboard

STAGE = "stage3_async_enrichment"


class _Fields(HTMLParser):
    """``{stage: {field: text}}`` from the cards' ``data-stage`` / ``data-field`` elements, and
    the body's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: dict[str, dict[str, str]] = {}
        self.body: dict[str, str | None] = {}
        self._stage: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "body":
            self.body = named
        if tag == "section" and named.get("data-stage"):
            self._stage = named["data-stage"]
            self.stages[self._stage] = {}
        if named.get("data-field") and self._stage is not None:
            self._field = named["data-field"]
            self.stages[self._stage][self._field] = ""

    def handle_endtag(self, tag: str) -> None:
        self._field = None

    def handle_data(self, data: str) -> None:
        if self._stage is not None and self._field is not None:
            self.stages[self._stage][self._field] += data


def _chromium(url: str, profile: Path, *extra: str) -> str:
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # Virtual time: the page's timers and fetches run until the budget is spent.
            "--virtual-time-budget=4000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return result.stdout


def _page(url: str, profile: Path) -> _Fields:
    fields = _Fields()
    fields.feed(_chromium(url, profile, "--dump-dom"))
    return fields


def _on_disk(cps: Path) -> dict[str, object]:
    record = json.loads((cps / f"{STAGE}.json").read_text())
    progress: dict[str, object] = record["progress"]
    return {**progress, "status": record["status"]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    cps = tmp_path / "cps"
    cps.mkdir()
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--checkpoint-dir", str(cps), "serve", "--interval", "0.25"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the dashboard did not start"
        line = proc.stdout.readline()
        assert "serving the dashboard" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        yield url, cps, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_page_shows_the_checkpoint_numbers_as_they_advance(
    server: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, cps, proc = server
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    profile = tmp_path / "chromium-profile"

    empty = _page(url, profile)
    assert empty.stages == {}

    clock = [1_790_000_000.0]
    checkpoint = EnhancedCheckpoint(cps / f"{STAGE}.json", clock=lambda: clock[0])
    checkpoint.start(STAGE, total_items=200)
    seen: list[dict[str, str]] = []
    for step in (37, 64):  # the test advances the checkpoint; the page follows
        for _ in range(step):
            clock[0] += 0.5
            index = checkpoint.state.completion.watermark
            checkpoint.update(processed=1, successful=1, index=index)
        checkpoint.save(force=True)
        checkpoint.flush()
        disk = _on_disk(cps)
        page = _page(url, profile)
        card = page.stages[STAGE]
        assert card["processed"] == str(disk["processed_items"])
        assert card["total"] == str(disk["total_items"]) == "200"
        assert card["successful"] == str(disk["successful_items"])
        assert card["status"] == disk["status"] == "running"
        assert card["percent"] == f"{100 * int(disk['processed_items']) / 200:.1f}%"
        assert card["throughput"] == "2.0 items/s"  # one item per 0.5 s of the stage's clock
        assert card["eta"] not in ("-", "done")
        assert int(page.body["data-refreshes"] or 0) >= 2  # it keeps polling
        seen.append(card)
    assert [c["processed"] for c in seen] == ["37", "101"]

    checkpoint.complete()
    checkpoint.close()
    card = _page(url, profile).stages[STAGE]
    assert (card["status"], card["processed"], card["eta"]) == ("completed", "101", "done")

    png = tmp_path / "dashboard.png"
    _chromium(url, profile, f"--screenshot={png}", "--window-size=1200,900")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    if os.environ.get("CLI_SCREENSHOT_DIR"):  # keep it to look at
        shutil.copy(png, Path(os.environ["CLI_SCREENSHOT_DIR"]) / "dashboard.png")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_the_json_endpoint_is_read_only_and_serves_only_gets(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, cps, _ = server
    checkpoint = EnhancedCheckpoint(cps / f"{STAGE}.json")
    checkpoint.start(STAGE, total_items=10)
    checkpoint.update(processed=3, successful=2, failed=1)
    checkpoint.pause()
    checkpoint.close()
    (cps / "stage0_broken.json").write_bytes(b"garbage")
    before = snapshot_files(cps)
    with urllib.request.urlopen(url + "api/progress", timeout=60) as response:
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        data = json.load(response)
    stages = {s["stage"]: s for s in data["stages"]}
    assert stages[STAGE]["processed"] == 3 and stages[STAGE]["status"] == "paused"
    assert stages["stage0_broken"]["status"] == "corrupt" and stages["stage0_broken"]["error"]
    request = urllib.request.Request(url + "api/progress", method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 405
    assert snapshot_files(cps) == before  # reading never restores, moves or locks anything


def test_an_unreadable_checkpoint_is_reported_not_served_as_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard in process over a checkpoint whose read fails with EACCES: the other
    stages are served, ``error`` names the file and the reason."""
    cps = tmp_path / "cps"
    for name in (STAGE, "stage1_discovery"):
        checkpoint = EnhancedCheckpoint(cps / f"{name}.json")
        checkpoint.start(name, total_items=10)
        checkpoint.pause()
        checkpoint.close()
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == f"{STAGE}.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    data = asyncio.run(Dashboard(UnifiedCheckpointManager(cps)).progress())
    assert [stage["stage"] for stage in data["stages"]] == ["stage1_discovery"]
    assert data["error"].startswith(f"cannot read {cps / STAGE}.json: permission denied")


def test_a_busy_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--checkpoint-dir", tmp_path, "serve", "--port", str(port))
    assert_one_error_line(
        result, f"cannot listen on 127.0.0.1 port {port}", "address already in use"
    )


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, port: str) -> None:
    """Refused by the parser (exit 2, one line naming the value), not by bind()'s traceback."""
    result = run_cli("--checkpoint-dir", tmp_path, "serve", "--port", port)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(f"error: argument --port: must be a port number 0..65535, got {port}")
    )
