"""Proof of SPEC §6.7 and the enrichment's network limits, by trying to break them.

* Stage names, snapshot names and CLI arguments that try to leave the checkpoint directory are
  refused everywhere a name enters (engine, tracker, manager, store, CLI), and nothing appears
  outside the directory.
* Everything a run writes is private: directories 0700, files 0600 (engine, CLI exports and
  reports, and a real orchestrator run with its logs).
* No pickle, marshal, shelve, eval or exec in the package (an AST scan that is shown to catch
  them), and no Scrapy component that pickles (JOBDIR, SpiderState) or runs code sent to it
  (telnet console, RemoteControl) in a real crawler built from the project's settings.
* The enrichment never connects outside ``allowed_domains`` and, with
  ``block_private_addresses``, never to a private, loopback or link-local address: IP literals,
  names whose DNS answer is private, and redirects to either; real servers on 127.0.0.1 and
  127.0.0.2 count the requests that reached them. The body-size cap holds for a gzip bomb.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import io
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from common import (
    AsyncCheckpointTracker,
    CheckpointSaveError,
    EnhancedCheckpoint,
    InvalidStageNameError,
    JsonFileStore,
    UnifiedCheckpointManager,
)
from common.stores.base import validate_stage_name
from enrich.config import EnrichmentConfig
from enrich.fetch import FetchOutcome, PageFetcher
from tests._demo_site import serving_demo_site
from tools.checkpoint_cli import app as cli
from tools.demo_site import build_site, client
from tools.orchestrator import app as orchestrator

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crawler", "enrich", "tools")

ESCAPING_NAMES = [
    "..",
    ".",
    "../outside",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b",
    "stage/../../x",
    "a\\..\\..\\b",
    "",
    " ",
    "-rf",
    ".hidden",
    "x\x00y",
    "line\nbreak",
    "~root",
    "x\u2024\u2024/y",  # one-dot leaders that look like ".."
    "x\uff0f..",  # a full-width solidus
    "\u202eevil",
    "a" * 129,
    "s.backup",
    "s.tmp",
    "s.lock",
]


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@contextlib.contextmanager
def _kept_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def cli_in_process(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with (
        _kept_logging(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
    return code, err.getvalue()


# Leaving the checkpoint directory -------------------------------------------------------------


def test_names_that_leave_the_checkpoint_directory_are_refused_everywhere(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "checkpoints"
    checkpoint = EnhancedCheckpoint(directory / "real.json")
    with checkpoint:
        checkpoint.start(total_items=1)
        checkpoint.pause()
    (tmp_path / "outside").write_text("not yours\n")
    before = tree(tmp_path)
    store = JsonFileStore(directory)
    manager = UnifiedCheckpointManager(directory)
    attempts = (
        validate_stage_name,
        lambda name: EnhancedCheckpoint(name, store=store),
        lambda name: AsyncCheckpointTracker(directory, name),
        manager.get_checkpoint,
        manager.reset,
        store.main_path,
        lambda name: store.load_history("real", name),
        lambda name: store.delete_history("real", name),
    )
    for name in ESCAPING_NAMES:
        for attempt in attempts:
            with pytest.raises(InvalidStageNameError, match="invalid stage name"):
                attempt(name)
        d = str(directory)
        for argv in (
            ("show", name),
            ("reset", name, "--force"),
            ("set", name, "3"),
            ("history", name),
            ("restore", "real", name),
        ):
            code, err = cli_in_process("--checkpoint-dir", d, *argv)
            if name.startswith("-"):  # read as an option: a usage error, exit 2
                assert code == 2 and "error:" in err, argv
            else:
                # A STAGE that cannot be one is a usage error (exit 2, as --help says); a
                # SNAPSHOT id is looked up like any other, and refused as an error (exit 1).
                expected = 1 if argv[0] == "restore" else 2
                assert code == expected, (argv, code, err)
                assert err.startswith("error: ") and "invalid stage name" in err, argv
    assert tree(tmp_path) == before


def test_symbolic_links_planted_at_our_file_names_are_never_written_through(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "checkpoints"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    checkpoint = EnhancedCheckpoint(directory / "planted.json")
    with checkpoint:
        checkpoint.start(total_items=2)
        checkpoint.pause()
    (directory / ".planted.tmp.json").symlink_to(victim)  # the temporary file of a save
    checkpoint = EnhancedCheckpoint(directory / "planted.json")
    with checkpoint:
        checkpoint.start()
        checkpoint.update(index=0)
        checkpoint.pause()
    assert not (directory / ".planted.tmp.json").exists()
    assert EnhancedCheckpoint(directory / "planted.json").state.progress.processed_items == 1
    (directory / "locked.lock").symlink_to(victim)  # acquiring a lock truncates its file
    with pytest.raises(CheckpointSaveError, match="cannot lock stage 'locked'"):
        EnhancedCheckpoint(directory / "locked.json").acquire()
    assert victim.read_text() == "precious\n"


# Permissions ----------------------------------------------------------------------------------


def assert_private(root: Path, *, skip: tuple[Path, ...] = ()) -> int:
    """Every directory under ``root`` is 0700 and every file 0600; returns how many were seen."""
    seen = 0
    for path in root.rglob("*"):
        if path in skip:
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
        seen += 1
    return seen


@pytest.mark.slow
def test_what_a_pipeline_run_writes_is_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask: without our modes, files would be 0644
    try:
        with serving_demo_site(12, 3) as base_url:
            data = tmp_path / "data"
            validation = data / "processed" / "stage02" / "validation_output.jsonl"
            validation.parent.mkdir(parents=True, mode=0o700)
            data.chmod(0o700)
            (data / "processed").chmod(0o700)
            urls = build_site(12, 3).expected_ok_urls(base_url)
            lines = [json.dumps({"url": u, "ok": True, "content_type": "text/html"}) for u in urls]
            validation.write_text("\n".join(lines) + "\n")
            validation.chmod(0o600)
            command = [sys.executable, "-m", "tools.orchestrator", "--stage", "enrichment"]
            command += ["--start-url", base_url, "--data-dir", str(data), "--no-live"]
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr[-2000:]
        code, err = cli_in_process(
            "--checkpoint-dir",
            str(data / "checkpoints"),
            "export",
            "--output",
            str(data / "e.json"),
        )
        assert code == 0, err
        code, err = cli_in_process(
            "--checkpoint-dir", str(data / "checkpoints"), "report", "--html", str(data / "r.html")
        )
        assert code == 0, err
    finally:
        os.umask(old_umask)
    assert (data / "logs" / "stage3_async_enrichment.log").is_file()
    assert (data / "checkpoints" / "history").is_dir()
    assert assert_private(data) >= 12


# Nothing persisted is code --------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_MODULES |= {"jsonpickle", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}  # as builtins, not re.compile


def unsafe_uses(source: str, filename: str) -> list[str]:
    """Imports of object-serialising modules and calls that run text as code."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        found += [
            f"{filename}:{node.lineno}: import {m}"
            for m in modules
            if m.split(".")[0] in UNSAFE_MODULES
        ]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                found.append(f"{filename}:{node.lineno}: {func.id}()")
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                owner, name = func.value.id, func.attr
                if (owner == "builtins" and name in UNSAFE_CALLS) or (owner, name) == (
                    "yaml",
                    "load",
                ):
                    found.append(f"{filename}:{node.lineno}: {owner}.{name}()")
    return found


def test_the_scan_catches_what_it_looks_for() -> None:
    source = (
        "import pickle\nfrom marshal import loads\nimport yaml\neval('1')\n"
        "builtins.exec('y')\nyaml.load(s)\n__import__('shelve')\nre.compile('ok')\n"
    )
    assert [hit.split(": ", 1)[1] for hit in unsafe_uses(source, "bad.py")] == [
        "import pickle",
        "import marshal",
        "eval()",
        "builtins.exec()",
        "yaml.load()",
        "__import__()",
    ]


def test_no_pickle_marshal_eval_or_exec_in_the_package() -> None:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 30
    found = [hit for p in files for hit in unsafe_uses(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == []


@pytest.mark.slow
def test_a_real_crawler_runs_no_console_and_nothing_that_pickles() -> None:
    probe = (
        "import json\n"
        "from scrapy.utils.reactor import install_reactor\n"
        "install_reactor('twisted.internet.asyncioreactor.AsyncioSelectorReactor')\n"
        "from scrapy.crawler import Crawler\n"
        "from scrapy.utils.project import get_project_settings\n"
        "from crawler.spiders.discovery import DiscoverySpider\n"
        "crawler = Crawler(DiscoverySpider, get_project_settings())\n"
        "crawler._apply_settings()\n"
        "s = crawler.settings\n"
        "print(json.dumps({'extensions': [type(m).__name__ for m in "
        "crawler.extensions.middlewares], 'jobdir': s.get('JOBDIR'), "
        "'scheduler': s.get('SCHEDULER')}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "CoreStats" in seen["extensions"]  # the probe sees the real extension list
    for forbidden in ("TelnetConsole", "RemoteControl", "SpiderState"):
        assert forbidden not in seen["extensions"]
    assert seen["jobdir"] is None
    assert seen["scheduler"] == "common.scrapy.scheduler.CheckpointScheduler"


# SSRF and the body cap -------------------------------------------------------------------------


@dataclass
class Host:
    """A real HTTP server on one loopback address, counting what reached it."""

    address: str
    hits: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        name = host or self.address
        return f"http://{name}:{self.port}{path}"

    async def start(self, routes: dict[str, web.Response]) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path_qs)
            return routes.get(request.path, web.Response(status=404))

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


def html(text: str = "page") -> web.Response:
    return web.Response(text=f"<html><title>{text}</title></html>", content_type="text/html")


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


@pytest_asyncio.fixture
async def hosts() -> AsyncIterator[tuple[Host, Host]]:
    """``inner`` on 127.0.0.1 (private, never to be reached) and ``edge`` on 127.0.0.2."""
    inner, edge = Host("127.0.0.1"), Host("127.0.0.2")
    await inner.start({"/secret": html("secret")})
    await edge.start({})
    yield inner, edge
    for host in (inner, edge):
        assert host.runner is not None
        await host.runner.cleanup()


def config(**options: object) -> EnrichmentConfig:
    return EnrichmentConfig(
        max_retries=0,
        connect_timeout=5,
        total_timeout=10,
        **options,  # type: ignore[arg-type]
    )


async def fetch(url: str, cfg: EnrichmentConfig) -> tuple[FetchOutcome, str | None]:
    async with PageFetcher(cfg) as fetcher:
        result = await fetcher.fetch(url)
    return result.outcome, result.error


@pytest.mark.asyncio
async def test_private_literals_and_dns_answers_are_refused_before_connecting(
    hosts: tuple[Host, Host],
) -> None:
    inner, _edge = hosts
    blocked = config(block_private_addresses=True)
    targets = [
        inner.url("/secret"),
        inner.url("/secret", host="localhost"),  # a name whose DNS answer is loopback
        inner.url("/secret", host="[::ffff:127.0.0.1]"),
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://0.0.0.0/",
    ]
    for url in targets:
        outcome, error = await fetch(url, blocked)
        assert outcome is FetchOutcome.REFUSED_ADDRESS, (url, outcome, error)
        assert error is not None and "not a public address" in error
    assert inner.hits == []
    # The same server answers when the guard is off: the refusals above were the guard's.
    assert (await fetch(inner.url("/secret", host="localhost"), config()))[0] is FetchOutcome.OK
    assert inner.hits == ["/secret"]


@pytest.mark.asyncio
async def test_redirects_to_private_addresses_and_other_domains_are_refused(
    hosts: tuple[Host, Host],
) -> None:
    inner, edge = hosts
    assert edge.runner is not None
    edge.runner.app.router._frozen = False  # routes are added once the port is known
    await edge.runner.cleanup()
    await edge.start(
        {
            "/to-literal": redirect(inner.url("/secret")),
            "/to-name": redirect(inner.url("/secret", host="localhost")),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-other-domain": redirect("http://elsewhere.test/"),
        }
    )
    # The edge server is the one allowed exception, as an intranet host would be.
    guarded = config(block_private_addresses=True, allowed_networks=("127.0.0.2/32",))
    for path in ("/to-literal", "/to-name", "/to-metadata"):
        outcome, error = await fetch(edge.url(path), guarded)
        assert outcome is FetchOutcome.REFUSED_ADDRESS, (path, outcome, error)
    domains = config(allowed_domains=("127.0.0.2",))
    outcome, _ = await fetch(edge.url("/to-other-domain"), domains)
    assert outcome is FetchOutcome.REFUSED_DOMAIN
    assert (await fetch(inner.url("/secret"), domains))[0] is FetchOutcome.REFUSED_DOMAIN
    assert inner.hits == []
    assert sorted(edge.hits) == ["/to-literal", "/to-metadata", "/to-name", "/to-other-domain"]


def test_a_guard_cannot_be_bypassed_with_an_injected_session() -> None:
    with pytest.raises(ValueError, match="block_private_addresses"):
        PageFetcher(config(block_private_addresses=True), session=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an IP address"):
        config(block_private_addresses=True, allowed_networks=("intranet",))


@pytest.mark.asyncio
async def test_a_gzip_bomb_stops_at_the_body_cap(hosts: tuple[Host, Host]) -> None:
    _inner, edge = hosts
    bomb = gzip.compress(b"<html>" + b" " * (20 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    assert edge.runner is not None
    await edge.runner.cleanup()
    await edge.start(
        {
            "/bomb": web.Response(
                body=bomb,
                headers={"Content-Encoding": "gzip", "Content-Type": "text/html"},
            )
        }
    )
    outcome, error = await fetch(edge.url("/bomb"), config(max_body_bytes=1024 * 1024))
    assert outcome is FetchOutcome.TOO_LARGE, error


def test_production_turns_the_guard_on_and_development_leaves_it_off(tmp_path: Path) -> None:
    parser = orchestrator.build_parser()
    production = parser.parse_args(["--env", "production", "--start-url", "https://a.test/"])
    development = parser.parse_args(["--start-url", "https://a.test/"])
    opted_out = parser.parse_args(
        ["--env", "production", "--start-url", "https://a.test/", "--no-block-private-addresses"]
    )
    stage = next(s for s in orchestrator.STAGES if s.alias == "enrichment")
    flags = {}
    for name, args in (
        ("production", production),
        ("development", development),
        ("off", opted_out),
    ):
        resolved = orchestrator.resolve_config(args, None)
        command = orchestrator.stage_command(stage, resolved, tmp_path, force=False, fresh=False)
        flags[name] = "--block-private-addresses" in command
    assert flags == {"production": True, "development": False, "off": False}


@pytest.mark.slow
def test_enrich_with_the_guard_refuses_every_loopback_page(tmp_path: Path) -> None:
    with serving_demo_site(12, 4) as base_url:
        validation = tmp_path / "processed/stage02/validation_output.jsonl"
        validation.parent.mkdir(parents=True)
        urls = build_site(12, 4).expected_ok_urls(base_url)
        validation.write_text(
            "".join(
                json.dumps({"url": u, "ok": True, "content_type": "text/html"}) + "\n" for u in urls
            )
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "enrich",
                "--data-dir",
                str(tmp_path),
                "--block-private-addresses",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        served = client.stats(base_url)["requests"]
    output = tmp_path / "processed/stage03/enrichment_output.jsonl"
    failed = [
        json.loads(line)
        for line in output.with_name("enrichment_output.failed.jsonl").read_text().splitlines()
    ]
    assert output.read_bytes() == b""
    assert sorted(f["url"] for f in failed) == sorted(urls)
    assert {f["outcome"] for f in failed} == {"refused_address"}
    assert served == 0  # not one request reached the site
