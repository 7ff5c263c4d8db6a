"""A user's own Scrapy project with the README's settings block: ``scrapy crawl`` exit codes.

The project is made in a temporary directory as ``scrapy startproject`` would (a ``scrapy.cfg``
and a settings module, a spider of its own), its settings the README's Scrapy block verbatim;
this repository's ``crawler`` package is made unimportable in it, so the block must work with
``common`` alone. A crawl completes and exits 0; the same crawl while another process writes its
stage (two at once on one directory) is refused in one line and exits 1, not Scrapy's 0. The
older ``COMMANDS_MODULE = "crawler.commands"`` (where the repository is installed) still works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.stores import open_store
from tests._demo_site import serving_demo_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[1] / "README.md"
PAGES, SEED = 30, 2
STAGE = "stage1_discovery"  # the README block's CHECKPOINT_STAGE_NAME

SPIDER = """
import scrapy


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, start_url="", **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]

    def parse(self, response):
        yield {"url": response.url, "status": response.status}
        yield from response.follow_all(css="a", callback=self.parse)
"""


def readme_settings_block() -> str:
    """The ```python block after "For Scrapy (" in the README's engine section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^For Scrapy \(.*?^```python\n(.*?)^```$", text, re.M | re.S)
    assert match, "the README's Scrapy settings block is gone"
    return match.group(1)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving_demo_site(PAGES, SEED) as url:
        yield url


@pytest.fixture(params=["common.scrapy.commands", "crawler.commands"])
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    block = readme_settings_block()
    line = 'COMMANDS_MODULE = "common.scrapy.commands"\n'
    assert line in block
    hidden = ""
    if request.param == "common.scrapy.commands":
        hidden = (
            "import sys\n\n"
            "# As where only `common` is installed: not this repository's crawler package.\n"
            'sys.modules["crawler"] = None\n\n'
        )
    else:
        block = block.replace(line, f"COMMANDS_MODULE = {request.param!r}\n")
    root = tmp_path / "mine"
    package = root / "mine"
    (package / "spiders").mkdir(parents=True)
    (root / "scrapy.cfg").write_text("[settings]\ndefault = mine.settings\n")
    (package / "__init__.py").write_text("")
    (package / "spiders" / "__init__.py").write_text("")
    (package / "spiders" / "site.py").write_text(SPIDER)
    (package / "settings.py").write_text(
        hidden + 'BOT_NAME = "mine"\n'
        'SPIDER_MODULES = ["mine.spiders"]\n'
        "ROBOTSTXT_OBEY = False\n"
        "DEPTH_LIMIT = 1\n"
        "TELNETCONSOLE_ENABLED = False\n\n" + block
    )
    return root


def scrapy_crawl(project: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"start_url={url}/"],
        cwd=project, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "] ERROR:" in line]


def test_the_readme_block_in_a_users_project_exits_1_on_a_refused_crawl(
    project: Path, base_url: str
) -> None:
    done = scrapy_crawl(project, base_url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'finish_reason': 'finished'" in done.stderr
    output = project / "data" / "pages.jsonl"
    written = output.read_bytes()
    assert len({json.loads(line)["url"] for line in written.splitlines()}) > 1

    # Another process writes the stage (a crawl of it running): this one is refused.
    checkpoints = project / "data" / "checkpoints"
    lock = open_store("json", checkpoints).lock(STAGE)
    lock.acquire()
    try:
        refused = scrapy_crawl(project, base_url)
    finally:
        lock.release()
    assert refused.returncode == 1, refused.stderr[-3000:]
    (line,) = error_lines(refused.stderr)
    assert f"stage {STAGE}" in line or f"stage '{STAGE}'" in line, line
    assert "'finish_reason': 'checkpoint_refused'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert output.read_bytes() == written
