"""Refuse private, loopback and link-local addresses (SSRF), checked where the connection is made.

A host name is judged by the addresses it resolves to *when the connection is opened*: the
:class:`GuardedResolver` wraps aiohttp's resolver, so the addresses aiohttp connects to are the
ones that were checked (no second lookup a rebinding DNS server could answer differently, and
every redirect hop is resolved, and checked, again). IP literals never reach a resolver, so the
fetcher checks them with :func:`refusal_reason` before each request.

An address is refused unless it is globally routable: private ranges (10/8, 172.16/12,
192.168/16, fc00::/7), loopback, link-local (169.254/16, fe80::/10, cloud metadata services),
carrier-grade NAT, unspecified, multicast, reserved and documentation ranges, and the same
inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses. ``allowed_networks`` lists exceptions (an intranet host the
crawl is meant to reach).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = [
    "BlockedAddressError",
    "GuardedResolver",
    "Network",
    "add_allow_network_option",
    "is_public_address",
    "parse_networks",
    "refusal_reason",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddressError(OSError):
    """A host resolved to (or is) an address the configuration refuses to connect to."""

    def __init__(self, host: str, address: str) -> None:
        reason = f"{host!r} resolves to {address}" if host != address else f"{address}"
        super().__init__(errno.EACCES, f"refused address: {reason} is not a public address")
        self.host = host
        self.address = address


def parse_networks(networks: Iterable[str]) -> tuple[Network, ...]:
    """``("10.1.2.0/24", "192.0.2.7")`` as networks; ``ValueError`` naming a bad entry."""
    parsed: list[Network] = []
    for text in networks:
        try:
            parsed.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"allowed network {text!r} is not an IP address or network (e.g. 10.1.2.0/24)"
            ) from None
    return tuple(parsed)


def _network_argument(text: str) -> str:
    try:
        parse_networks([text])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or network (e.g. 10.1.2.0/24)"
        ) from None
    return text.strip()


def add_allow_network_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-network CIDR`` (repeatable), checked as the command line is read: a typo is a
    usage error before anything runs, not a stage that fails after the others did their work."""
    parser.add_argument(
        "--allow-network",
        action="append",
        default=[],
        type=_network_argument,
        metavar="CIDR",
        help="an address or network exempt from --block-private-addresses (repeatable)",
    )


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


def is_public_address(address: Address, allowed: Iterable[Network] = ()) -> bool:
    """True when ``address`` is globally routable (or inside one of ``allowed``)."""
    if any(address in network for network in allowed if network.version == address.version):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:  # an IPv4 address in IPv6 clothes is judged as itself
            return is_public_address(embedded, allowed)
    return address.is_global and not address.is_multicast


def refusal_reason(host: str, allowed: Iterable[Network] = ()) -> str | None:
    """Why a connection to the IP literal ``host`` is refused; None for names and public IPs."""
    address = _address(host.strip("[]"))
    if address is None or is_public_address(address, allowed):
        return None
    return f"refused address: {address} is not a public address"


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing every answer that holds a non-public address.

    One refused address refuses the host: a name that mixes public and private answers is the
    shape of a rebinding attack. The refusal is a :class:`BlockedAddressError` (an ``OSError``),
    which aiohttp hands back as ``ClientConnectorDNSError`` with it as ``os_error``.
    """

    def __init__(
        self, resolver: AbstractResolver | None = None, allowed: Iterable[Network] = ()
    ) -> None:
        self._resolver = resolver if resolver is not None else DefaultResolver()
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            address = _address(result["host"])
            if address is None or not is_public_address(address, self._allowed):
                raise BlockedAddressError(host, result["host"])
        return results

    async def close(self) -> None:
        await self._resolver.close()
