"""What makes two Scrapy crawls "the same crawl": hashed into the checkpoint's config guard.

The stage name alone does not identify a crawl: the same spider run with other arguments, other
start URLs or a different ``DEPTH_LIMIT`` is another crawl. Its identity is

* the spider (name and class);
* its arguments: the spider's ``checkpoint_config`` when it defines one (or the
  ``CHECKPOINT_CONFIG`` setting), otherwise every public instance attribute holding plain JSON
  data after construction (``scrapy crawl -a NAME=VALUE`` and ``crawler.crawl(**kwargs)`` land
  there) and its ``start_urls``;
* the settings that change *what* is crawled: every setting the project, the spider, an addon
  or the command line set (above Scrapy's defaults), except those that only change how fast,
  how politely, where to or how loudly it runs (:data:`IGNORED_SETTINGS`, plus the names in
  ``CHECKPOINT_IDENTITY_IGNORE``). ``-s DEPTH_LIMIT=3``, other ``FEEDS`` or other pipelines make
  another crawl; ``-s CONCURRENT_REQUESTS=64`` or ``-s LOG_LEVEL=DEBUG`` resume the same one.

A different identity in the same ``CHECKPOINT_DIR`` is a changed configuration: a completed
stage starts over, an unfinished one is refused unless forced (``CHECKPOINT_FORCE``) or started
fresh (``CHECKPOINT_FRESH``). A spider whose attributes change from run to run (a timestamp set
in ``__init__``) defines ``checkpoint_config`` to say what identifies it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

if TYPE_CHECKING:
    from scrapy import Spider

__all__ = ["IGNORED_SETTINGS", "crawl_identity"]

# Settings that change how a crawl runs, not what it crawls (a name ending in "_" is a prefix).
IGNORED_SETTINGS: tuple[str, ...] = (
    # What an add-on changes shows in the settings it sets; the list itself is not the crawl
    # (adding the README's Redis add-on line to a project must not make its crawl another one).
    "ADDONS",
    "AUTOTHROTTLE_",
    "BOT_NAME",
    "CHECKPOINT_",
    "CLOSESPIDER_",  # a limit: raising it resumes the crawl
    "COMMANDS_MODULE",
    "CONCURRENT_",
    "COOKIES_DEBUG",
    "DATA_DIR",
    "DEPTH_PRIORITY",
    "DEPTH_STATS_VERBOSE",
    "DNS_",
    "DOWNLOAD_DELAY",
    "DOWNLOAD_SLOTS",
    "DOWNLOAD_TIMEOUT",
    "DOWNLOAD_WARNSIZE",
    "DUPEFILTER_DEBUG",
    "EXTENSIONS",
    "GC_",
    "JOBDIR",
    "LOG_",
    "LOGSTATS_",
    "MEMDEBUG_",
    "MEMUSAGE_",
    "METAREFRESH_IGNORE_TAGS",
    "NEWSPIDER_MODULE",
    "PERIODIC_LOG_",
    "RANDOMIZE_DOWNLOAD_DELAY",
    "REACTOR_THREADPOOL_MAXSIZE",
    "REMOTE_CONTROL_",
    "SCHEDULER",
    "SCHEDULER_",
    "SPIDER_LOADER_",
    "SPIDER_MODULES",
    "STATS_",
    "TELNETCONSOLE_",
    "TWISTED_REACTOR",
    "ASYNCIO_EVENT_LOOP",
    "USER_AGENT",
    "WARN_ON_GENERATOR_RETURN_VALUE",
)
# How to read a setting, so "True" from the command line and True from a module agree.
_TYPED: dict[str, str] = {
    "DEPTH_LIMIT": "int",
    "ROBOTSTXT_OBEY": "bool",
    "URLLENGTH_LIMIT": "int",
    "DOWNLOAD_MAXSIZE": "int",
    "REDIRECT_ENABLED": "bool",
    "REDIRECT_MAX_TIMES": "int",
    "METAREFRESH_ENABLED": "bool",
    "RETRY_ENABLED": "bool",
    "RETRY_TIMES": "int",
    "HTTPERROR_ALLOWED_CODES": "list",
    "HTTPERROR_ALLOW_ALL": "bool",
    "COOKIES_ENABLED": "bool",
    "OFFSITE_ENABLED": "bool",
}

_SCRAPY_ATTRIBUTES = frozenset({"crawler", "settings", "name", "custom_settings"})


def crawl_identity(spider: Spider, settings: BaseSettings) -> dict[str, Any]:
    """The crawl's identity as plain JSON data (the checkpoint hashes it)."""
    identity: dict[str, Any] = {
        "spider": spider.name,
        "class": _dotted(type(spider)),
        "settings": _settings_part(settings),
    }
    explicit: Mapping[str, Any] | None = settings.getdict("CHECKPOINT_CONFIG") or getattr(
        spider, "checkpoint_config", None
    )
    if explicit is not None:
        identity["config"] = _plain(dict(explicit))
    else:
        arguments = {
            name: value
            for name, value in sorted(vars(spider).items())
            if not name.startswith("_") and name not in _SCRAPY_ATTRIBUTES and _is_plain(value)
        }
        identity["arguments"] = _plain(arguments)
        identity["start_urls"] = [str(u) for u in getattr(spider, "start_urls", None) or ()]
    return identity


def _settings_part(settings: BaseSettings) -> dict[str, Any]:
    ignored = (*IGNORED_SETTINGS, *settings.getlist("CHECKPOINT_IDENTITY_IGNORE"))
    default = SETTINGS_PRIORITIES["default"]
    part: dict[str, Any] = {}
    for name in sorted(settings):
        if (settings.getpriority(name) or 0) <= default:
            continue
        if any(name.startswith(i) if i.endswith("_") else name == i for i in ignored):
            continue
        kind = _TYPED.get(name, "raw")
        if kind == "int":
            part[name] = settings.getint(name)
        elif kind == "bool":
            part[name] = settings.getbool(name)
        elif kind == "list":
            part[name] = sorted(str(v) for v in settings.getlist(name))
        else:
            part[name] = _plain(settings.get(name))
    # "CHECKPOINT_" is ignored, but the key records are written under changes the output.
    part["CHECKPOINT_ITEM_KEY"] = settings.get("CHECKPOINT_ITEM_KEY") or "url"
    return part


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 4:
        return False
    if isinstance(value, list | tuple):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _plain(value: Any) -> Any:
    """JSON-safe and stable across runs: classes and functions by dotted name, never ``repr``
    (it holds memory addresses)."""
    if isinstance(value, BaseSettings):
        value = value.copy_to_dict()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {
            str(_plain(k)): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
        }
    if isinstance(value, type) or callable(value):
        return _dotted(value)
    return _dotted(type(value))


def _dotted(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
