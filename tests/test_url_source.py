"""``enrich.url_source``: the enrichment input streamed, each URL once, exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import enrich.same_page as same_page
import enrich.url_source as url_source
from enrich.same_page import DEFAULT_DIRECTORY_INDEX, page_key, page_key_function
from enrich.url_source import JsonlUrls, UrlList


def write_validation(
    path: Path, urls: list[str | None], *, final: dict[int, str] | None = None
) -> None:
    lines = []
    for i, url in enumerate(urls):
        if url is None:
            lines.append("")
            continue
        record = {"url": url, "ok": True, "content_type": "text/html; charset=utf-8"}
        if final and i in final:
            record["final_url"] = final[i]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def test_unique_urls_in_first_occurrence_order_with_the_lists_digest(tmp_path: Path) -> None:
    urls = [f"http://h{i % 3}.test/p{i % 50}" for i in range(400)]
    path = tmp_path / "v.jsonl"
    write_validation(path, [*urls, None, "http://other.test/x"])
    source = JsonlUrls.valid_pages(path)
    expected = list(dict.fromkeys([*urls, "http://other.test/x"]))
    summary = source.scan()
    assert list(source) == expected
    assert summary.count == len(expected)
    # The same resume guard as a list in memory had, so a resume across versions is accepted.
    assert summary.digest == hashlib.sha256("\n".join(expected).encode()).hexdigest()
    assert summary.digest == UrlList([*urls, "http://other.test/x"]).scan().digest
    assert summary.hosts == {"h0.test", "h1.test", "h2.test", "other.test"}


def test_redirects_lead_to_their_final_url_once_and_invalid_records_are_left_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v.jsonl"
    rows = [
        {
            "url": "http://a.test/old",
            "ok": True,
            "content_type": "text/html",
            "final_url": "http://a.test/new",
        },
        {"url": "http://a.test/new", "ok": True, "content_type": "text/html"},
        {"url": "http://a.test/pdf", "ok": True, "content_type": "application/pdf"},
        {"url": "http://a.test/404", "ok": False, "content_type": "text/html"},
        {"url": "http://a.test/x", "ok": True, "content_type": "application/xhtml+xml"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = JsonlUrls.valid_pages(path)
    assert list(source) == ["http://a.test/new", "http://a.test/x"]
    # What the records held besides the pages, for the pipeline's summary: the PDF and the
    # 404 lead to no page, the redirect's target is listed twice.
    summary = source.scan()
    assert (summary.count, summary.left_out, summary.repeats) == (2, 2, 1)


def test_hash_collisions_never_drop_a_distinct_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seven hash values for 3,000 distinct URLs: every URL collides with hundreds of others.
    monkeypatch.setattr(url_source, "_hash", lambda url: len(url) % 7 + 1)
    urls = [f"http://a.test/{'x' * (i % 11)}{i}" for i in range(3000)]
    path = tmp_path / "v.jsonl"
    write_validation(path, urls + urls[::-1])
    assert list(JsonlUrls.valid_pages(path)) == urls


def test_many_urls_grow_the_table_and_stay_exact(tmp_path: Path) -> None:
    urls = [f"http://a.test/{i}" for i in range(20_000)]
    path = tmp_path / "v.jsonl"
    write_validation(path, urls + urls[:5000])
    source = JsonlUrls.valid_pages(path)
    assert source.scan().count == 20_000
    assert sum(len(batch) for batch in source.batches(512)) == 20_000


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"url": "http://a.test/b", "ok"', "not a validation record"),
        ('["http://a.test/b"]', "not a validation record"),
        ('{"url": "http://a.test/b", "ok": true, "content_type": 5}', "'content_type' is int"),
    ],
)
def test_a_bad_line_is_a_value_error_naming_the_file_and_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text(
        json.dumps({"url": "http://a.test/a", "ok": True, "content_type": "text/html"})
        + "\n\n"
        + line
        + "\n"
    )
    with pytest.raises(ValueError, match=rf"v\.jsonl:3: .*{reason}"):
        JsonlUrls.valid_pages(path).scan()


def test_failed_items_give_their_urls_once(tmp_path: Path) -> None:
    path = tmp_path / "out.failed.jsonl"
    rows = [
        {"url": "http://a.test/1", "error": "x"},
        {"url": "http://a.test/2"},
        {"url": "http://a.test/1"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert list(JsonlUrls.failed_items(path)) == ["http://a.test/1", "http://a.test/2"]


# --- one page, several addresses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://a.test/docs/", "http://a.test/docs/#install"),
        ("http://a.test/docs/", "http://a.test/docs/index.html"),
        ("http://a.test/", "http://a.test/index.htm#top"),
        ("http://A.Test:80/x?b=2&a=1", "http://a.test/x?a=1&b=2"),
        ("https://a.test:443/%7Euser/", "https://a.test/~user/"),
        ("http://a.test/p?", "http://a.test/p"),
        ("http://a.test", "http://a.test/"),
    ],
)
def test_addresses_of_one_page_share_a_key(a: str, b: str) -> None:
    assert page_key(a) == page_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://a.test/A", "http://a.test/a"),  # servers may tell path case apart
        ("http://a.test/docs", "http://a.test/docs/"),
        ("http://a.test:8080/", "http://a.test/"),
        ("https://a.test/", "http://a.test/"),
        ("http://a.test/docs/Index.html", "http://a.test/docs/"),
        ("http://a.test/?page=2", "http://a.test/"),
    ],
)
def test_different_pages_keep_different_keys(a: str, b: str) -> None:
    assert page_key(a) != page_key(b)


def test_directory_index_is_a_setting() -> None:
    assert page_key("http://a.test/d/index.html", ()) == "http://a.test/d/index.html"
    assert page_key("http://a.test/d/default.aspx", ("default.aspx",)) == "http://a.test/d/"
    assert page_key("http://[broken/#x") == "http://[broken/"


def test_each_page_once_first_spelling_without_its_fragment(tmp_path: Path) -> None:
    urls = [
        "http://a.test/docs/#intro",
        "http://a.test/other",
        "http://a.test/docs/index.html",
        "http://A.TEST/docs/",
        "http://a.test/other#x",
        "http://a.test/docs/index.html?",
    ]
    expected = ["http://a.test/docs/", "http://a.test/other"]
    key = page_key_function(DEFAULT_DIRECTORY_INDEX)
    path = tmp_path / "v.jsonl"
    write_validation(path, list(urls))

    streamed = JsonlUrls.valid_pages(path, same_page=key)
    assert list(streamed) == expected
    assert (streamed.scan().count, streamed.scan().left_out, streamed.scan().repeats) == (2, 0, 4)
    assert list(UrlList(urls, same_page=key)) == expected
    assert UrlList(urls, same_page=key).scan().repeats == 4
    # Without a key the addresses are compared as written (the old behaviour, still available).
    assert len(list(JsonlUrls.valid_pages(path))) == len(urls)
    assert list(JsonlUrls.valid_pages(path, same_page=page_key_function(()))) == [
        "http://a.test/docs/",
        "http://a.test/other",
        "http://a.test/docs/index.html",
    ]


_HOSTS = st.sampled_from(
    ["a.test", "www.example.edu", "127.0.0.1", "x-y.z", "a..b", "-a.test", "."]
)
_SEGMENT = st.text(alphabet="abcAZ09-._~!$&'()*+,;=:@%/ \"<>{}|?#é", max_size=8)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_HOSTS,
    port=st.one_of(st.none(), st.sampled_from(["80", "443", "8080", "0", "65535", "99999"])),
    segments=st.lists(_SEGMENT, max_size=4),
    fragment=st.one_of(st.none(), st.text(max_size=5)),
    index=st.sampled_from([(), DEFAULT_DIRECTORY_INDEX]),
)
def test_the_fast_path_agrees_with_canonicalize_url(
    scheme: str,
    host: str,
    port: str | None,
    segments: list[str],
    fragment: str | None,
    index: tuple[str, ...],
) -> None:
    url = f"{scheme}://{host}{':' + port if port else ''}" + "".join("/" + s for s in segments)
    if fragment is not None:
        url += "#" + fragment
    assert page_key(url, index) == same_page._canonical_key(url, index)
