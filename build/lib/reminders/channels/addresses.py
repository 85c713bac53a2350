"""Which addresses a webhook may be sent to. Pure: addresses in, a refusal or None out.

A webhook URL is the clinic's to choose, so it must not reach our own network: private,
loopback, link-local and other non-public addresses are refused unless the operator
allowlists them, and so are IPv6 addresses that carry such an IPv4 address inside
(routers on the way translate them back to it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64 (RFC 6052 well-known prefix and RFC 8215 local-use prefix): the IPv4 address is
# the last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# Deprecated IPv4-compatible addresses, ::a.b.c.d (:: and ::1 are refused on their own).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LOW_32 = 0xFFFF_FFFF


def networks(allowed_hosts: Iterable[str]) -> tuple[Network, ...]:
    """Return the allowlist entries that are networks or addresses (the rest are host
    names, compared as names)."""
    found: list[Network] = []
    for entry in allowed_hosts:
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(found)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4, Teredo
    (server and client), NAT64 and IPv4-compatible forms."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in prefix for prefix in _NAT64) or address in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & _LOW_32))
    return found


def refusal(text: str, allowed: Sequence[Network] = ()) -> str | None:
    """Return why a webhook may not go to the address `text`, or None if it may."""
    address = ipaddress.ip_address(text.split("%")[0])
    inner: list[Address] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            # Deprecated site-local fec0::/10: Python still counts it as global.
            return f"non-public address {address} (site-local)"
        inner.extend(embedded_ipv4(address))
    for candidate in (address, *inner):
        if any(candidate in network for network in allowed):
            continue
        if not candidate.is_global:
            shown = address if candidate == address else f"{address} (carries {candidate})"
            return f"non-public address {shown}"
    return None
