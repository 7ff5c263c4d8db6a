"""What a pipeline run crawls and how hard: :class:`PipelineConfig` and where it comes from.

Three sources, in this order of precedence: command-line options, a production TOML file
(``--config``, see ``tools/production.example.toml``), and one of two built-in profiles:

* **fast**, for the local demo site and any start URL on this machine (loopback): all
  concurrency on the one domain, no delay;
* **polite**, for every other start URL: AutoThrottle, two requests in flight per domain, one
  second between them (more when robots.txt asks for a ``Crawl-delay``), robots.txt obeyed.
"""

from __future__ import annotations

import argparse
import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from enrich.addresses import parse_networks

__all__ = [
    "EXAMPLE_CONFIG",
    "ConfigError",
    "PipelineConfig",
    "UsageError",
    "is_loopback_url",
    "load_config_file",
    "resolve_config",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = PROJECT_ROOT / "tools" / "production.example.toml"

# Say who you are: sites block anonymous bots, and a contact lets an owner ask before blocking.
DEFAULT_USER_AGENT = "resumable-crawl (+https://example.invalid/bot)"


class ConfigError(ValueError):
    """A configuration file or option that cannot be used (exit code 1)."""


class UsageError(ConfigError):
    """A command-line option with a value it cannot take (exit code 2)."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """What a run crawls and how hard (the fast profile's values are the defaults)."""

    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    depth_limit: int = 10
    concurrency: int = 32
    concurrency_per_domain: int = 32
    download_delay: float = 0.0
    autothrottle: bool = False
    obey_robots: bool = True
    enrichment_concurrency: int = 64
    enrichment_per_host: int = 16
    user_agent: str | None = None
    max_pages: int | None = None
    max_seconds: float | None = None
    block_private_addresses: bool = False
    allow_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # "http://host" and "http://host/" are one page: keep one spelling, so the resume guard
        # (a hash of this config) does not see a change where there is none.
        normalized = tuple(
            url + "/" if urlsplit(url).path == "" and "?" not in url else url
            for url in self.start_urls
        )
        object.__setattr__(self, "start_urls", normalized)
        if not self.start_urls:
            raise ValueError("no start URL: give --start-url or start_urls in the config")
        for url in self.start_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"invalid start URL {url!r}: expected an absolute http(s) URL")
        if self.depth_limit < 1:
            raise ValueError(f"depth_limit must be >= 1, got {self.depth_limit}")
        for name in ("concurrency", "concurrency_per_domain", "enrichment_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.enrichment_per_host < 1:
            raise ValueError(f"per_host must be >= 1, got {self.enrichment_per_host}")
        if self.download_delay < 0:
            raise ValueError(f"download_delay must be >= 0, got {self.download_delay}")
        parse_networks(self.allow_networks)  # a bad one is named here, before any stage runs


# Overrides of the fast defaults for a site that is not ours. A site owner sees at most two
# requests at a time, about one a second, and AutoThrottle backs off further when it slows down.
POLITE: Mapping[str, Any] = {
    "depth_limit": 3,
    "concurrency": 8,
    "concurrency_per_domain": 2,
    "download_delay": 1.0,
    "autothrottle": True,
    "obey_robots": True,
    "enrichment_concurrency": 8,
    "enrichment_per_host": 2,
}

# TOML keys -> (field, type). bool is checked before int: in Python True is an int.
_CRAWL_KEYS: Mapping[str, tuple[str, type | tuple[type, ...]]] = {
    "start_urls": ("start_urls", list),
    "allowed_domains": ("allowed_domains", list),
    "depth_limit": ("depth_limit", int),
    "concurrency": ("concurrency", int),
    "concurrency_per_domain": ("concurrency_per_domain", int),
    "download_delay": ("download_delay", (int, float)),
    "autothrottle": ("autothrottle", bool),
    "obey_robots": ("obey_robots", bool),
    "user_agent": ("user_agent", str),
    "max_pages": ("max_pages", int),
    "max_seconds": ("max_seconds", (int, float)),
}
_ENRICHMENT_KEYS: Mapping[str, tuple[str, type | tuple[type, ...]]] = {
    "concurrency": ("enrichment_concurrency", int),
    "per_host": ("enrichment_per_host", int),
    "allow_networks": ("allow_networks", list),
}


_KIND_NAMES: Mapping[type, str] = {
    bool: "true or false",
    int: "an integer",
    str: "a string",
    list: "a list of strings",
}


def _typed(path: Path, section: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    wanted = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)
    if kind is list and ok and not all(isinstance(v, str) for v in value):
        ok = False
    if not ok:
        names = (  # (int, float) is a number
            "a number" if float in wanted else " or ".join(_KIND_NAMES[k] for k in wanted)
        )
        raise ConfigError(f"config file {path}: [{section}] {key} must be {names}, got {value!r}")
    return tuple(value) if kind is list else value


def load_config_file(path: Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a production TOML config (see ``tools/production.example.toml``).

    Keys left out take the polite profile's values; ``overrides`` replace ``start_urls``.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = dict(POLITE)
    unknown = set(data) - {"crawl", "enrichment"}
    for section, known in (("crawl", _CRAWL_KEYS), ("enrichment", _ENRICHMENT_KEYS)):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        unknown |= {f"{section}.{key}" for key in set(table) - set(known)}
        for key, value in table.items():
            if key in known:
                name, kind = known[key]
                values[name] = _typed(path, section, key, value, kind)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(sorted(unknown))}")
    if overrides:
        values["start_urls"] = tuple(overrides)
    values.setdefault("start_urls", ())
    values.setdefault("allowed_domains", ())
    if not values["allowed_domains"]:
        values["allowed_domains"] = _hosts(values["start_urls"])
    try:
        return PipelineConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _hosts(urls: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({urlsplit(u).hostname or "" for u in urls} - {""}))


def is_loopback_url(url: str) -> bool:
    """True for a URL on this machine (``localhost``, 127.0.0.0/8, ``::1``): crawled fast."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_config(args: argparse.Namespace, demo_url: str | None) -> PipelineConfig:
    """The run's configuration from the parsed command line (and the demo site's URL)."""
    if args.config is not None:
        config = load_config_file(args.config, args.start_url)
    else:
        if args.env == "production" and not args.start_url:
            raise UsageError(
                "--env production needs --config FILE or --start-url URL naming the site to "
                "crawl (see tools/production.example.toml and the README's 'Crawling a real site')"
            )
        start_urls = tuple(args.start_url) or ((demo_url,) if demo_url else ())
        config = PipelineConfig(start_urls=start_urls, allowed_domains=_hosts(start_urls))
        polite = args.polite
        if polite is None:
            polite = args.env == "production" or not all(
                is_loopback_url(u) for u in config.start_urls
            )
        if polite:
            config = replace(config, **POLITE)
    changes: dict[str, Any] = {}
    if args.allowed_domain:
        changes["allowed_domains"] = tuple(args.allowed_domain)
    for option, name in (
        ("depth_limit", "depth_limit"),
        ("concurrency_per_domain", "concurrency_per_domain"),
        ("download_delay", "download_delay"),
        ("user_agent", "user_agent"),
        ("max_pages", "max_pages"),
        ("max_time", "max_seconds"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    if args.allow_network:
        changes["allow_networks"] = (*config.allow_networks, *args.allow_network)
    block = args.block_private_addresses
    if block is None:
        block = args.env == "production"
    changes["block_private_addresses"] = block
    try:
        return replace(config, **changes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
