"""``build_site(pages, seed)``: draw a whole demo site from ``random.Random(seed)``.

Sections (departments, courses, people, news, events) are trees below their index, with a
fan-out chosen so that every item is at most ``MAX_DEPTH`` links from ``/``; special cases
(broken links, redirects, slow and transient pages, files, errors, private pages, external links)
are attached to pages near the top.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from tools.demo_site.dense import build_dense_site
from tools.demo_site.model import (
    DEFAULT_TRANSIENT_SHARE,
    EXTERNAL_HOST,
    MAX_DEPTH,
    ROBOTS_DISALLOWED_PREFIX,
    DemoSite,
    PageKind,
    PageSpec,
)
from tools.demo_site.render import slug
from tools.demo_site.simple import build_simple_site
from tools.demo_site.vocabulary import (
    APPS,
    BROKEN_WORDS,
    COURSE_PREFIXES,
    DEPARTMENTS,
    DEPARTMENTS_ABBR,
    DOCUMENTS,
    EVENT_KINDS,
    FIRST_NAMES,
    IMAGES,
    LAST_NAMES,
    NEWS_OBJECTS,
    NEWS_SUBJECTS,
    NEWS_VERBS,
    PARTNERS,
    PRIVATE_DOCS,
    ROLES,
    SECTION_TITLES,
    SECTION_WEIGHTS,
    SECTIONS,
    STATIC_PAGES,
    TOPICS,
    UNIVERSITIES,
)

__all__ = ["PROFILES", "build_site"]

PROFILES: Final = ("university", "dense", "simple")
"""``university``: the default site; ``dense``: a link-dense documentation site (:mod:`.dense`);
``simple``: five links a page, no duplicates (:mod:`.simple`)."""
_MIN_FANOUT: Final = 5
# Items sit at tree levels 0..4 below their section index, i.e. at depth 2..6 from "/".
_ITEM_LEVELS: Final = 5
_MAX_HOST_DEPTH: Final = MAX_DEPTH - 1


def build_site(
    pages: int,
    seed: int,
    *,
    transient_share: float = DEFAULT_TRANSIENT_SHARE,
    transient_failures: int = 1,
    transient_reset_share: float = 0.0,
    profile: str = "university",
) -> DemoSite:
    """Specify a demo site of ``pages`` public HTML pages, drawn from ``random.Random(seed)``.

    ``transient_share`` of the pages (at least one) fail their first ``transient_failures``
    requests; ``transient_reset_share`` of those fail by dropping the connection, the rest with
    503. The defaults give the site every earlier version served for the same pages and seed.
    ``profile="dense"`` builds the link-dense documentation site of :mod:`.dense` instead, and
    ``profile="simple"`` the five-links-a-page tree of :mod:`.simple` (neither has slow or
    transient pages; the transient options do not apply).
    """
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if profile == "dense":
        return build_dense_site(pages, seed)
    if profile == "simple":
        return build_simple_site(pages, seed)
    if not 0.0 <= transient_share <= 0.5:
        raise ValueError(f"transient_share must be between 0 and 0.5, got {transient_share}")
    if transient_failures < 1:
        raise ValueError(f"transient_failures must be at least 1, got {transient_failures}")
    if not 0.0 <= transient_reset_share <= 1.0:
        raise ValueError(
            f"transient_reset_share must be between 0 and 1, got {transient_reset_share}"
        )
    builder = _Builder(pages, seed)
    builder.transient_share = transient_share
    builder.transient_failures = transient_failures
    builder.transient_reset_share = transient_reset_share
    return builder.build()


@dataclass
class _Section:
    name: str
    index_path: str
    items: list[tuple[str, str]] = field(default_factory=list)  # (path, title)


class _Builder:
    def __init__(self, pages: int, seed: int) -> None:
        self.n = pages
        self.seed = seed
        self.rng = random.Random(seed)
        self.specs: dict[str, PageSpec] = {}
        self.tree_depth: dict[str, int] = {}
        self.broken: list[str] = []
        self.external: list[str] = []
        self.transient_share = DEFAULT_TRANSIENT_SHARE
        self.transient_failures = 1
        self.transient_reset_share = 0.0

    def build(self) -> DemoSite:
        rng = self.rng
        university = rng.choice(UNIVERSITIES)
        rest = self.n - 1
        section_names = SECTIONS[: min(len(SECTIONS), rest)]
        rest -= len(section_names)
        statics = STATIC_PAGES[: min(len(STATIC_PAGES), rest)]
        rest -= len(statics)
        counts = _allocate(rest, section_names)
        sections = [_Section(name, f"/{name}/") for name in section_names]
        by_name = {section.name: section for section in sections}

        dept_names = rng.sample(DEPARTMENTS, counts.get("departments", 0))
        code_depts = dept_names or rng.sample(DEPARTMENTS, 8)
        for name, count in counts.items():
            by_name[name].items = [self._item(name, i, code_depts) for i in range(count)]
        fanout = _fanout(max(counts.values(), default=0))

        nav = ("/", *(section.index_path for section in sections))
        static_paths = [path for path, _ in statics]
        footer = tuple(path for path in static_paths if path in ("/about/", "/contact/"))
        news = by_name["news"].items if "news" in by_name else []
        events = by_name["events"].items if "events" in by_name else []
        home_links = (*static_paths, *(p for p, _ in news[:3]), *(p for p, _ in events[:3]))
        self._add("/", university, "", 0, home_links)
        for section in sections:
            title = SECTION_TITLES[section.name]
            top = [path for path, _ in section.items[:fanout]]
            self._add(section.index_path, title, section.name, 1, top)
        for path, title_template in statics:
            self._add(path, title_template.format(u=university), "static", 1, ())

        departments = by_name["departments"].items if "departments" in by_name else []
        nd = len(departments)
        for section in sections:
            items = section.items
            levels: list[int] = []
            for j, (path, title) in enumerate(items):
                level = 0 if j < fanout else levels[j // fanout - 1] + 1
                levels.append(level)
                parent = section.index_path if j < fanout else items[j // fanout - 1][0]
                first_child = (j + 1) * fanout
                children = [p for p, _ in items[first_child : first_child + fanout]]
                cross = self._cross_links(section.name, j, nd, by_name)
                self._add(path, title, section.name, 2 + level, (parent, *children, *cross))

        self._mark_flags()
        extras = self._specials(by_name)
        for host, links in extras.items():
            self.specs[host] = replace(self.specs[host], extra_links=tuple(links))
        return DemoSite(
            page_count=self.n,
            seed=self.seed,
            university=university,
            pages=MappingProxyType(self.specs),
            nav=nav,
            footer=footer,
            broken_paths=tuple(self.broken),
            external_urls=tuple(self.external),
        )

    def _add(self, path: str, title: str, section: str, depth: int, links: Sequence[str]) -> None:
        self.specs[path] = PageSpec(path, PageKind.HTML, title, section, links=tuple(links))
        self.tree_depth[path] = depth

    def _item(self, section: str, i: int, code_depts: Sequence[str]) -> tuple[str, str]:
        rng = self.rng
        if section == "departments":
            name = code_depts[i]
            return f"/departments/{slug(name)}/", f"Department of {name}"
        if section == "courses":
            dept = code_depts[i % len(code_depts)]
            abbr = DEPARTMENTS_ABBR[dept]
            number = 100 + i // len(code_depts)
            topic = f"{rng.choice(COURSE_PREFIXES)}{rng.choice(TOPICS)}"
            return f"/courses/{abbr.lower()}-{number}/", f"{abbr} {number}: {topic}"
        if section == "people":
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            role = rng.choice(ROLES)
            return f"/people/{slug(first)}-{slug(last)}-{i + 1}/", f"{first} {last}, {role}"
        if section == "news":
            year = rng.randrange(2016, 2026)
            headline = (
                f"{rng.choice(code_depts)} {rng.choice(NEWS_SUBJECTS)} "
                f"{rng.choice(NEWS_VERBS)} {rng.choice(NEWS_OBJECTS)}"
            )
            return f"/news/{year}/{slug(headline)}-{i + 1}/", headline
        kind = rng.choice(EVENT_KINDS)
        topic = rng.choice(TOPICS)
        return f"/events/{slug(kind)}-{slug(topic)}-{i + 1}/", f"{kind}: {topic}"

    @staticmethod
    def _cross_links(
        section: str, j: int, nd: int, by_name: dict[str, _Section]
    ) -> tuple[str, ...]:
        if nd == 0:
            return ()
        departments = by_name["departments"].items
        if section == "departments":
            courses = by_name["courses"].items if "courses" in by_name else []
            people = by_name["people"].items if "people" in by_name else []
            picked = [courses[k][0] for k in range(j, len(courses), nd)][:3]
            picked += [people[k][0] for k in range(j, len(people), nd)][:2]
            return tuple(picked)
        return (departments[j % nd][0],)

    def _mark_flags(self) -> None:
        rng = self.rng
        candidates = [p for p in self.tree_depth if p != "/" and not _is_index(p)]
        n_slow = min(_share(self.n, 0.02), len(candidates))
        n_transient = min(_share(self.n, self.transient_share), len(candidates) - n_slow)
        picked = rng.sample(candidates, n_slow + n_transient)
        for path in picked[:n_slow]:
            self.specs[path] = replace(self.specs[path], slow=True)
        # Which transient pages reset is a prefix of the draw, so it takes no random numbers:
        # the rest of the site stays the same whatever the share.
        n_reset = round(n_transient * self.transient_reset_share)
        for k, path in enumerate(picked[n_slow:]):
            self.specs[path] = replace(
                self.specs[path],
                transient_failures=self.transient_failures,
                transient_reset=k < n_reset,
            )
        n_lang = min(_share(self.n, 0.03), len(candidates))
        for path in rng.sample(candidates, n_lang):
            lang = rng.choice(("fr", "fr", "de"))
            suffix = " (version française)" if lang == "fr" else " (deutsche Fassung)"
            spec = self.specs[path]
            self.specs[path] = replace(spec, lang=lang, title=spec.title + suffix)

    def _specials(self, by_name: dict[str, _Section]) -> dict[str, list[str]]:
        rng = self.rng
        n = self.n
        hosts = [p for p, d in self.tree_depth.items() if 1 <= d <= _MAX_HOST_DEPTH] or ["/"]
        extras: dict[str, list[str]] = {}

        def attach(target: str) -> None:
            extras.setdefault(rng.choice(hosts), []).append(target)

        prefixes = [(s.index_path, BROKEN_WORDS[s.name]) for s in by_name.values()]
        for k in range(_share(n, 0.03)):
            prefix, word = rng.choice(prefixes) if prefixes else ("/", "old-page")
            self.broken.append(f"{prefix}{word}-{k + 1}/")
            attach(self.broken[-1])

        stable = [
            p
            for p, spec in self.specs.items()
            if p != "/" and not spec.transient_failures and not spec.slow
        ] or ["/"]
        n_redirects = _share(n, 0.03)
        n_chains = max(1, n_redirects // 4) if n_redirects >= 2 else 0
        targets = (
            rng.sample(stable, n_redirects)
            if len(stable) >= n_redirects
            else [rng.choice(stable) for _ in range(n_redirects)]
        )
        for target in targets[: n_redirects - n_chains]:
            path = f"/old{target}"
            if path in self.specs:
                continue
            self._redirect(path, target, rng.choice((301, 301, 302)))
            attach(path)
        for k, target in enumerate(targets[n_redirects - n_chains :]):
            hops = [f"/go/{k + 1}"] + [f"/go/{k + 1}/hop-{h}" for h in range(1, rng.randint(2, 3))]
            for hop, next_hop in zip(hops, [*hops[1:], target], strict=True):
                self._redirect(hop, next_hop, rng.choice((301, 302)))
            attach(hops[0])

        n_files = max(2, round(n * 0.03))  # at least one PDF and one image
        for k in range(n_files):
            if k % 2 == 0:
                name = rng.choice(DOCUMENTS)
                path = f"/files/{slug(name)}-{k + 1}.pdf"
                self.specs[path] = PageSpec(path, PageKind.PDF, f"{name} (PDF)")
            else:
                name = rng.choice(IMAGES)
                path = f"/images/{slug(name)}-{k + 1}.png"
                self.specs[path] = PageSpec(path, PageKind.IMAGE, name)
            attach(path)

        for k in range(_share(n, 0.01)):
            name = rng.choice(APPS)
            path = f"/apps/{slug(name)}-{k + 1}/"
            self.specs[path] = PageSpec(path, PageKind.ERROR, name)
            attach(path)

        for k in range(_share(n, 0.01)):
            name = rng.choice(PRIVATE_DOCS)
            path = f"{ROBOTS_DISALLOWED_PREFIX}{slug(name)}-{k + 1}/"
            title = f"Staff intranet: {name}"
            self.specs[path] = PageSpec(path, PageKind.HTML, title, "private", private=True)
            attach(path)

        for k in range(_share(n, 0.01)):
            url = f"https://{EXTERNAL_HOST}/{slug(rng.choice(PARTNERS))}-{k + 1}"
            self.external.append(url)
            attach(url)
        return extras

    def _redirect(self, path: str, target: str, status: int) -> None:
        self.specs[path] = PageSpec(
            path, PageKind.REDIRECT, "", redirect_to=target, redirect_status=status
        )


def _is_index(path: str) -> bool:
    return path.count("/") == 2 and path.strip("/") in SECTIONS


def _share(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def _allocate(total: int, sections: Sequence[str]) -> dict[str, int]:
    """Split ``total`` item pages over ``sections`` by weight (largest remainder, deterministic)."""
    if total <= 0 or not sections:
        return {}
    weights = {name: SECTION_WEIGHTS[name] for name in sections}
    scale = sum(weights.values())
    exact = {name: total * weight / scale for name, weight in weights.items()}
    counts = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(sections, key=lambda name: exact[name] - counts[name], reverse=True)
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    if "departments" in counts and counts["departments"] > len(DEPARTMENTS):
        overflow = counts["departments"] - len(DEPARTMENTS)
        counts["departments"] = len(DEPARTMENTS)
        # There are only so many departments; the rest become courses (or people, news...).
        receiver = next(name for name in sections if name != "departments")
        counts[receiver] += overflow
    return counts


def _fanout(largest_section: int) -> int:
    fanout = _MIN_FANOUT
    while sum(fanout**level for level in range(1, _ITEM_LEVELS + 1)) < largest_section:
        fanout += 1
    return fanout
