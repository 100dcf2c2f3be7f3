"""The client's IP address: the socket peer, or ``X-Forwarded-For`` behind trusted proxies.

Rule (the one of MDN's ``X-Forwarded-For`` security notes and of uvicorn's
``ProxyHeadersMiddleware``): a header anyone can send is believed only when the socket peer
is one of our own reverse proxies (``VOTING_TRUSTED_PROXIES``). Then the list is read from
the right (the entries our proxies appended) and the first address that is not itself a
trusted proxy is the client. Anything to its left was written by the client and is ignored,
so a spoofed header from an untrusted peer, or a forged prefix in front of a real chain,
changes nothing. The result feeds :func:`ip_prefix` (limits and stored prefixes); full
addresses are never stored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from litestar import Request

from voting.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16384)
def ip_prefix(host: str | None, ipv4_bits: int, ipv6_bits: int) -> str:
    """The client's network prefix, e.g. ``203.0.113.0/24`` or ``2001:db8:1:2::/64``.

    An unparsable or missing address gives ``"unknown"`` (all such clients share one limit).
    Memoised (16,384 hosts): parsing an address costs a ballot more than its signature check.
    """
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = ipv4_bits if addr.version == 4 else ipv6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


@lru_cache(maxsize=32)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """``("10.0.0.0/8", "::1/128")`` → networks (validated by :class:`voting.settings.Settings`;
    raises ValueError on a bad entry)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:5000"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, networks: tuple[Network, ...]) -> bool:
    return any(addr.version == n.version and addr in n for n in networks)


def resolve_client(
    peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]
) -> str | None:
    """The client address as text, or None when unknown.

    ``peer``: the socket peer's host; ``forwarded_for``: every ``X-Forwarded-For`` header
    value in order (each a comma-separated list); ``trusted``: the proxies' networks. An
    unparsable entry met while reading from the right is returned as is (it then groups
    under the ``unknown`` prefix) because the trusted hop to its right vouched for it.
    """
    if peer is None:
        return None
    if not trusted:
        return peer
    peer_addr = _address(peer)
    if peer_addr is None or not _trusted(peer_addr, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            return hop
        client = str(addr)
        if not _trusted(addr, trusted):
            return client
    return client  # every hop is a proxy: the left-most one is the best we know


def client_ip(request: Request[Any, Any, Any], trusted_proxies: tuple[str, ...]) -> str | None:
    """The client address of ``request`` under ``trusted_proxies`` (CIDRs; see the module)."""
    peer = request.client.host if request.client else None
    return resolve_client(
        peer, request.headers.getall("x-forwarded-for", []), parse_networks(trusted_proxies)
    )


def prefix_of(peer: str | None, forwarded_for: list[str], settings: Settings) -> str:
    """:func:`client_prefix` from the socket peer's host and the ``X-Forwarded-For`` values
    (for code that has the raw ASGI scope, not a request)."""
    client = resolve_client(peer, forwarded_for, parse_networks(settings.server.trusted_proxies))
    return ip_prefix(client, settings.privacy.ipv4_prefix, settings.privacy.ipv6_prefix)


def client_prefix(request: Request[Any, Any, Any], settings: Settings) -> str:
    """The client's network prefix (IPv4 /24, IPv6 /64 by default) under the settings' trusted
    proxies: what limits count and what ballots store instead of the address."""
    client = client_ip(request, settings.server.trusted_proxies)
    return ip_prefix(client, settings.privacy.ipv4_prefix, settings.privacy.ipv6_prefix)


def client_networks(request: Request[Any, Any, Any], settings: Settings) -> tuple[str, str]:
    """``(prefix, aggregate)``: the client's network prefix (:func:`client_prefix`) and the
    wider aggregate it belongs to (IPv4 /16, IPv6 /48 by default: ``VOTING_IPV4_AGGREGATE``,
    ``VOTING_IPV6_AGGREGATE``), which device credentials are also counted by."""
    client = client_ip(request, settings.server.trusted_proxies)
    privacy, challenge = settings.privacy, settings.challenge
    return (
        ip_prefix(client, privacy.ipv4_prefix, privacy.ipv6_prefix),
        ip_prefix(client, challenge.ipv4_aggregate, challenge.ipv6_aggregate),
    )
