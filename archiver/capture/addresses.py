"""Which network addresses a capture may reach.

Checked after DNS resolution on every hop, and again on the socket's actual
peer, so a redirect or a rebinding DNS answer cannot lead a capture to the
operator's own network or a cloud metadata service.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from archiver.errors import AddressRefused

# Cloud metadata endpoints outside the link-local range.
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


@dataclass(frozen=True)
class AddressPolicy:
    """``allow_private`` opens loopback and private ranges (tests, intranets).

    Link-local (169.254/16, incl. 169.254.169.254), multicast, unspecified,
    reserved and metadata addresses stay refused either way: nothing
    legitimate to archive lives there.
    """

    allow_private: bool = False

    def check_ip(self, ip: str, what: str) -> None:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError as exc:
            raise AddressRefused(f"{what}: not an IP address: {ip}") from exc
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        kind = _forbidden_kind(addr, self.allow_private)
        if kind:
            hint = "" if kind not in ("loopback", "private") else " (set ARCHIVER_ALLOW_PRIVATE=1 to allow)"
            raise AddressRefused(f"{what} resolves to {kind} address {addr}, which is refused{hint}")


def _forbidden_kind(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if addr in _METADATA:
        return "cloud metadata"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return None if allow_private else "loopback"
    if addr.is_private or not addr.is_global:
        if addr.is_reserved:
            return "reserved"
        return None if allow_private else "private"
    if addr.is_reserved:
        return "reserved"
    return None
