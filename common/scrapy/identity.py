"""What makes two Scrapy crawls "the same crawl": hashed into the checkpoint's config guard.

The stage name alone does not identify a crawl: the same spider run with other arguments, other
start URLs or a different ``DEPTH_LIMIT`` is another crawl. Its identity is

* the spider (name and class);
* its arguments: the spider's ``checkpoint_config`` when it defines one (or the
  ``CHECKPOINT_CONFIG`` setting), otherwise every public instance attribute holding plain JSON
  data after construction (``scrapy crawl -a NAME=VALUE`` and ``crawler.crawl(**kwargs)`` land
  there) and its ``start_urls``;
* the settings that change *what* is crawled (not how fast): ``CHECKPOINT_IDENTITY_SETTINGS``,
  by default :data:`IDENTITY_SETTINGS`.

A different identity in the same ``CHECKPOINT_DIR`` is a changed configuration: a completed
stage starts over, an unfinished one is refused unless forced (``CHECKPOINT_FORCE``) or started
fresh (``CHECKPOINT_FRESH``). A spider whose attributes change from run to run (a timestamp set
in ``__init__``) defines ``checkpoint_config`` to say what identifies it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scrapy.settings import BaseSettings

if TYPE_CHECKING:
    from scrapy import Spider

__all__ = ["IDENTITY_SETTINGS", "crawl_identity"]

# name -> how to read it, so "True" from the command line and True from a settings module agree.
IDENTITY_SETTINGS: dict[str, str] = {
    "DEPTH_LIMIT": "int",
    "ROBOTSTXT_OBEY": "bool",
    "DUPEFILTER_CLASS": "raw",
    "URLLENGTH_LIMIT": "int",
    "DOWNLOAD_MAXSIZE": "int",
    "REDIRECT_ENABLED": "bool",
    "REDIRECT_MAX_TIMES": "int",
    "METAREFRESH_ENABLED": "bool",
    "RETRY_ENABLED": "bool",
    "RETRY_TIMES": "int",
    "HTTPERROR_ALLOWED_CODES": "list",
    "HTTPERROR_ALLOW_ALL": "bool",
    "CHECKPOINT_ITEM_KEY": "raw",
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
    names = settings.getlist("CHECKPOINT_IDENTITY_SETTINGS") or list(IDENTITY_SETTINGS)
    part: dict[str, Any] = {}
    for name in names:
        kind = IDENTITY_SETTINGS.get(name, "raw")
        if kind == "int":
            part[name] = settings.getint(name)
        elif kind == "bool":
            part[name] = settings.getbool(name)
        elif kind == "list":
            part[name] = sorted(str(v) for v in settings.getlist(name))
        else:
            part[name] = _plain(settings.get(name))
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
