"""Requests as JSON for the crawl's request journal: no pickle, half the size, cheap to encode.

:class:`RequestEncoder` is ``Request.to_dict()`` with the callback names cached;
:func:`compact_request_dict` leaves out fields at their defaults; :func:`to_json_safe` and
:func:`from_json_safe` tag bytes and non-string keys so any ``to_dict()`` survives JSON;
:func:`is_replacement_of` tells a retry or redirect from a new request.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from scrapy import Request

if TYPE_CHECKING:
    from scrapy import Spider

__all__ = [
    "RequestEncoder",
    "compact_request_dict",
    "from_json_safe",
    "is_replacement_of",
    "to_json_safe",
]


_REQUEST_DEFAULTS: dict[str, Any] = {
    "body": b"",
    "cookies": {},
    "headers": {},
    "meta": {},
    "encoding": "utf-8",
    "flags": [],
    "cb_kwargs": {},
    "dont_filter": False,
    "method": "GET",
    "priority": 0,
    "errback": None,
}


class RequestEncoder:
    """``Request.to_dict(spider=spider)`` with the callback names cached.

    Scrapy finds a callback's name with ``inspect.getmembers(spider)`` on every call: about
    60 µs each, twice per request, which made journaling the largest cost the checkpoint adds to
    a crawl. The name of a spider method never changes, so it is looked up once per function.
    Anything unusual (a callback that is not a method of this spider) goes through Scrapy's own
    ``to_dict``, so errors and output stay Scrapy's.
    """

    def __init__(self, spider: Spider) -> None:
        self.spider = spider
        self._names: dict[Any, str] = {}

    def _method_name(self, func: Any) -> str | None:
        if func is None or isinstance(func, str):
            return func  # type: ignore[no-any-return]
        if getattr(func, "__self__", None) is not self.spider:
            raise LookupError
        key = func.__func__
        name = self._names.get(key)
        if name is None:
            candidate = func.__name__
            bound = getattr(self.spider, candidate, None)
            if getattr(bound, "__func__", None) is not key:
                raise LookupError
            name = self._names[key] = candidate
        return name

    def to_dict(self, request: Request) -> dict[str, Any]:
        try:
            data: dict[str, Any] = {
                "url": request.url,
                "callback": self._method_name(request.callback),
                "errback": self._method_name(request.errback),
                "headers": dict(request.headers),
            }
        except LookupError:
            return request.to_dict(spider=self.spider)
        for attr in request.attributes:
            data.setdefault(attr, getattr(request, attr))
        if type(request) is not Request:
            data["_class"] = type(request).__module__ + "." + type(request).__name__
        return data


def compact_request_dict(data: dict[str, Any]) -> dict[str, Any]:
    """``Request.to_dict()`` without the fields at their defaults (``request_from_dict`` fills
    them back in): journal records half the size, and half the encoding work."""
    return {
        k: v for k, v in data.items() if k not in _REQUEST_DEFAULTS or _REQUEST_DEFAULTS[k] != v
    }


def to_json_safe(value: Any) -> Any:
    """``Request.to_dict()`` output made JSON-safe: bytes and bytes-keyed dicts are tagged."""
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            if len(value) == 1 and next(iter(value)) in ("$b", "$d"):
                return {"$d": [[k, to_json_safe(v)] for k, v in value.items()]}
            return {k: to_json_safe(v) for k, v in value.items()}
        return {"$d": [[to_json_safe(k), to_json_safe(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [to_json_safe(v) for v in value]
    return value


def from_json_safe(value: Any) -> Any:
    """The inverse of :func:`to_json_safe`."""
    if isinstance(value, dict):
        if len(value) == 1:
            if "$b" in value:
                return base64.b64decode(value["$b"])
            if "$d" in value:
                return {from_json_safe(k): from_json_safe(v) for k, v in value["$d"]}
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    return value


def is_replacement_of(request: Request, original: Request) -> bool:
    """True when ``request`` is a retry or redirect of ``original`` (which Scrapy handed out).

    Such a request replaces its original, which is finished only once the replacement is. A
    child that merely copied its parent's meta (``meta=response.meta``) is not one: it has a new
    URL and no new retry or redirect.
    """
    if original is request:
        return False
    retries = request.meta.get("retry_times", 0)
    if request.url == original.url and retries > original.meta.get("retry_times", 0):
        return True
    hops = request.meta.get("redirect_urls") or []
    return len(hops) > len(original.meta.get("redirect_urls") or []) and hops[-1] == original.url
