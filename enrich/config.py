"""Configuration of the enrichment stage's HTTP fetching.

:class:`EnrichmentConfig` is a frozen value object validated at construction, in the manner of
:class:`aiohttp.ClientTimeout`: a bad value fails loudly when the config is built, not halfway
through a crawl. :meth:`EnrichmentConfig.to_dict` gives a JSON-safe mapping that the stage hashes
into its checkpoint, so a resume under a changed configuration can be detected.

Settings (all keyword arguments, all optional):

``concurrency``
    Requests in flight at once, across all hosts (default 64).
``per_host_concurrency``
    Requests in flight at once to one host name (default 16).
``per_host_delay``
    Seconds between the starts of two requests to one host name, retries and redirect hops
    included (default 0: no pause). On a site you do not own, set it to what the site asks
    (robots.txt ``Crawl-delay``) or what stages 1-2 use (``DOWNLOAD_DELAY``).
``total_timeout``, ``connect_timeout``, ``sock_read_timeout``
    Seconds, or ``None`` for no limit; passed to :class:`aiohttp.ClientTimeout` as ``total``,
    ``connect`` and ``sock_read`` for every request.
``max_retries``
    Re-sends after a transient failure (connection error, timeout, 429, 5xx), per fetch (default 3).
``backoff_base``, ``backoff_max``, ``backoff_jitter``
    Exponential backoff: the n-th retry waits up to ``min(backoff_max, backoff_base * 2**(n-1))``
    seconds, a uniformly random part of it with jitter on ("full jitter"). ``backoff_max`` also
    caps a server's ``Retry-After``.
``max_body_bytes``
    Largest (decoded) HTML body kept (default 5 MiB); larger pages are abandoned.
``allowed_domains``
    Host names a fetch may touch, including through redirects; a host is allowed if it equals one
    or is a subdomain of one. Empty (the default) allows every host.
``user_agent``
    The ``User-Agent`` header sent with every request.
``follow_redirects``, ``max_redirects``
    Whether 3xx responses are followed, and how many hops at most.
``block_private_addresses``
    Refuse to connect to private, loopback, link-local and other non-public addresses, checked
    on the addresses a host resolves to when the connection is made, and on every redirect hop
    (SSRF protection; see :mod:`enrich.addresses`). Off by default; on in production runs.
``allowed_networks``
    Exceptions to ``block_private_addresses``: addresses or networks such as ``10.1.2.0/24``.
``directory_index``
    File names that, as an address's last path segment, mean their directory: the stage writes
    one record for ``/docs/`` and ``/docs/index.html`` (default ``("index.html", "index.htm")``;
    ``()`` keeps them apart). Fragments never make two pages; see :mod:`enrich.same_page`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import aiohttp
from yarl import URL

from enrich.addresses import Network, parse_networks
from enrich.same_page import DEFAULT_DIRECTORY_INDEX, page_key_function

__all__ = ["DEFAULT_USER_AGENT", "EnrichmentConfig"]

DEFAULT_USER_AGENT = "resumable-crawl/0.1 (+enrichment)"

# 2**62 seconds already exceeds any sane backoff_max; capping the exponent keeps the float
# arithmetic away from OverflowError for absurd retry numbers.
_MAX_BACKOFF_EXPONENT = 62


def normalize_host(host: str) -> str:
    """Return ``host`` in the form used for comparisons: lower case, IDNA-encoded, no final dot.

    Raises :class:`ValueError` if ``host`` is not a valid host name (for example, if it carries a
    scheme, a port or a path).
    """
    candidate = host.strip().rstrip(".").lower()
    if not candidate:
        raise ValueError("empty host name")
    raw = URL.build(scheme="http", host=candidate).raw_host
    if raw is None:
        raise ValueError(f"invalid host name {host!r}")
    return raw.lower()


def _check_int(name: str, value: object, minimum: int) -> None:
    # bool is an int subclass; `max_retries=True` is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_seconds(name: str, value: object, *, optional: bool, allow_zero: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a number of seconds or None" if optional else "a number of seconds"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _directory_index(names: object) -> tuple[str, ...]:
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ValueError(
            f"directory_index must be a tuple of file names, got {names!r}: use ({names!r},)"
        )
    checked: list[str] = []
    for name in names:
        if (
            not isinstance(name, str)
            or not name
            or any(c in name for c in "/?#")
            or name.strip() != name
        ):
            raise ValueError(
                f"directory_index entries must be bare file names such as 'index.html', got {name!r}"
            )
        checked.append(name)
    return tuple(dict.fromkeys(checked))


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrichmentConfig:
    """How the enrichment stage fetches pages; see the module docstring for each setting."""

    concurrency: int = 64
    per_host_concurrency: int = 16
    per_host_delay: float = 0.0
    total_timeout: float | None = 60.0
    connect_timeout: float | None = 10.0
    sock_read_timeout: float | None = 30.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: bool = True
    max_body_bytes: int = 5 * 1024 * 1024
    allowed_domains: tuple[str, ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    follow_redirects: bool = True
    max_redirects: int = 10
    block_private_addresses: bool = False
    allowed_networks: tuple[str, ...] = ()
    directory_index: tuple[str, ...] = DEFAULT_DIRECTORY_INDEX

    def __post_init__(self) -> None:
        _check_int("concurrency", self.concurrency, 1)
        _check_int("per_host_concurrency", self.per_host_concurrency, 1)
        _check_seconds("per_host_delay", self.per_host_delay, optional=False, allow_zero=True)
        for name in ("total_timeout", "connect_timeout", "sock_read_timeout"):
            _check_seconds(name, getattr(self, name), optional=True, allow_zero=False)
        _check_int("max_retries", self.max_retries, 0)
        _check_seconds("backoff_base", self.backoff_base, optional=False, allow_zero=True)
        _check_seconds("backoff_max", self.backoff_max, optional=False, allow_zero=True)
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})"
            )
        _check_int("max_body_bytes", self.max_body_bytes, 1)
        _check_int("max_redirects", self.max_redirects, 0)
        for name in ("backoff_jitter", "follow_redirects", "block_private_addresses"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.user_agent, str) or not self.user_agent.strip():
            raise ValueError("user_agent must be a non-empty string")
        # Frozen: normalised values are written once here, through object.__setattr__.
        object.__setattr__(self, "allowed_domains", self._normalized_domains(self.allowed_domains))
        if isinstance(self.allowed_networks, str | bytes):
            raise ValueError("allowed_networks must be a tuple of networks, not a single string")
        networks = tuple(str(n) for n in parse_networks(self.allowed_networks))
        object.__setattr__(self, "allowed_networks", networks)
        object.__setattr__(self, "directory_index", _directory_index(self.directory_index))

    def same_page(self) -> Callable[[str], str]:
        """The key two addresses of one page share (:func:`enrich.same_page.page_key`)."""
        return page_key_function(self.directory_index)

    @classmethod
    def from_mapping(
        cls, settings: Mapping[str, object], *, source: str = "enrichment settings"
    ) -> EnrichmentConfig:
        """Build a config from a parsed TOML or JSON table, strictly.

        An unknown key, or a value of the wrong type (``"false"`` for a boolean, ``"3"`` or
        ``3.0`` for an integer), is a :class:`ValueError` naming ``source`` and the setting;
        nothing is coerced except JSON/TOML arrays, which become tuples.
        """
        known = [field.name for field in fields(cls)]
        unknown = sorted(key for key in settings if key not in known)
        if unknown:
            raise ValueError(
                f"{source}: unknown setting {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(known)})"
            )
        values = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in settings.items()
        }
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def networks(self) -> tuple[Network, ...]:
        """:attr:`allowed_networks` parsed."""
        return parse_networks(self.allowed_networks)

    @staticmethod
    def _normalized_domains(domains: Iterable[str]) -> tuple[str, ...]:
        if isinstance(domains, str | bytes):
            raise ValueError(
                f"allowed_domains must be a tuple of host names, not a single string: "
                f"use ({domains!r},)"
            )
        normalized: list[str] = []
        for domain in domains:
            if not isinstance(domain, str):
                raise ValueError(f"allowed_domains entries must be strings, got {domain!r}")
            try:
                host = normalize_host(domain.lstrip("."))
            except ValueError as exc:
                raise ValueError(
                    f"allowed_domains entry {domain!r} is not a host name ({exc}); "
                    "give bare names such as 'example.com', without scheme, port or path"
                ) from None
            if host not in normalized:
                normalized.append(host)
        return tuple(normalized)

    def is_allowed(self, url: str | URL) -> bool:
        """Tell whether ``url``'s host is inside :attr:`allowed_domains` (always, if empty)."""
        if not self.allowed_domains:
            return True
        try:
            raw_host = URL(url).raw_host if isinstance(url, str) else url.raw_host
        except ValueError:
            return False
        if not raw_host:
            return False
        host = raw_host.rstrip(".").lower()
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """Return the :class:`aiohttp.ClientTimeout` applied to every request."""
        return aiohttp.ClientTimeout(
            total=self.total_timeout,
            connect=self.connect_timeout,
            sock_read=self.sock_read_timeout,
        )

    def backoff_delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        exponent = min(max(retry_number - 1, 0), _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        if not self.backoff_jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)

    def to_dict(self) -> dict[str, object]:
        """Return the settings as a JSON-safe dict (for hashing into a checkpoint's config hash)."""
        data: dict[str, object] = asdict(self)
        data["allowed_domains"] = list(self.allowed_domains)
        data["allowed_networks"] = list(self.allowed_networks)
        data["directory_index"] = list(self.directory_index)
        return data
