"""``python -m enrich --retry-failed``: only the failed sidecar's URLs, into their own files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._enrich_stage import run_enrich, write_stage2
from tools.bench.load import LoadSite, start_load_site
from tools.testing.jsonl_audit import audit_jsonl


@pytest.fixture(scope="module")
def load_site() -> Iterator[LoadSite]:
    site = start_load_site(40, 3, transient_share=0.0, transient_failures=1)
    yield site
    site.stop()


def test_retry_failed_fetches_only_the_failed_urls_and_leaves_the_output(
    load_site: LoadSite, tmp_path: Path
) -> None:
    site, base = load_site.site, load_site.base_url
    good = [base + spec.path for spec in site.html_pages()[:5]]
    broken = [base + path for path in site.broken_paths[:2]]
    write_stage2(tmp_path, [*good, *broken, good[0]])  # a repeat is enriched once
    load_site.reset()
    first = run_enrich("--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr[-2000:]
    out_dir = tmp_path / "processed/stage03"
    output = out_dir / "enrichment_output.jsonl"
    before = output.read_bytes()
    assert set(audit_jsonl(output).urls) == set(good)
    assert set(audit_jsonl(out_dir / "enrichment_output.failed.jsonl").urls) == set(broken)

    load_site.reset()
    retry = run_enrich("--data-dir", str(tmp_path), "--retry-failed")
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert load_site.stats() == {url.removeprefix(base): 1 for url in broken}
    still = audit_jsonl(out_dir / "enrichment_output.retry.failed.jsonl")
    assert set(still.urls) == set(broken) and not still.doubled
    assert audit_jsonl(out_dir / "enrichment_output.retry.jsonl").lines == 0
    assert output.read_bytes() == before
