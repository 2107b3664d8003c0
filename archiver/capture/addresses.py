"""Which network addresses an outbound request may reach.

Every DNS answer is checked on every hop, the connection goes to a checked
address (see ``outbound.py``), and the connected peer is checked again, so a
redirect or a rebinding DNS answer cannot lead a capture, a feed poll or a
webhook to the operator's own network or a cloud metadata service.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Sequence

from archiver.errors import AddressRefused

# Cloud metadata endpoints outside the link-local range.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
# IPv4 ranges that are no host to archive whatever Python's version calls them:
# "this network" (0/8: Linux connects 0.0.0.0 to the machine itself; Python
# counts the range private, so allow_private opened it) and the IETF protocol
# assignments (192.0.0.0/24: Python 3.11 calls most of it global).
_SPECIAL = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("192.0.0.0/24"))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress:
    """``text`` (a zone suffix dropped) as an address; ValueError when it is not one.

    Cached: a capture parses the same few addresses several times (the answer
    vetted, the peer compared with it), and a page's requisites come from the
    same hosts. The objects are immutable; a failure is never cached."""
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class AddressPolicy:
    """``allow_private`` opens loopback and private ranges (tests, intranets).

    Link-local (169.254/16, incl. 169.254.169.254), multicast, unspecified,
    reserved (0/8, 192.0.0.0/24 included) and metadata addresses stay
    refused either way: nothing legitimate to archive lives there.

    ``allow_networks`` opens just those ranges of loopback/private space (an
    intranet's news server) and ``deny_networks`` closes ranges whatever else
    says (deny wins); neither can open link-local or metadata addresses.
    """

    allow_private: bool = False
    allow_networks: tuple[Network, ...] = field(default=())
    deny_networks: tuple[Network, ...] = field(default=())

    @classmethod
    def from_settings(cls, allow_private: bool, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> "AddressPolicy":
        return cls(allow_private, parse_networks(allow, "capture.allow_networks"),
                   parse_networks(deny, "capture.deny_networks"))

    def check_ip(self, ip: str, what: str) -> None:
        try:
            addr = parse_ip(ip)
        except ValueError as exc:
            raise AddressRefused(f"{what}: not an IP address: {ip}") from exc
        for judged in _judged(addr):
            self._check(judged, addr, what)

    def _check(self, addr: IPAddress, full: IPAddress, what: str) -> None:
        shown = str(addr) if addr == full or addr == getattr(full, "ipv4_mapped", None) else f"{full} ({addr} within)"
        if any(addr in net for net in self.deny_networks):
            raise AddressRefused(f"{what} resolves to {shown}, which capture.deny_networks refuses")
        opened = any(addr in net for net in self.allow_networks)
        kind = _forbidden_kind(addr, self.allow_private or opened)
        if kind:
            hint = "" if kind not in ("loopback", "private", "site-local") else " (set ARCHIVER_ALLOW_PRIVATE=1 to allow)"
            raise AddressRefused(f"{what} resolves to {kind} address {shown}, which is refused{hint}")


def _judged(addr: IPAddress) -> tuple[IPAddress, ...]:
    """``addr`` and every IPv4 address it carries, each to be allowed.

    Why: an IPv4-mapped address is that IPv4 address; a 6to4 address
    (2002:V4ADDR::/48) is routed to its IPv4 address by any 6to4 relay, and a
    Teredo one to its server and client; Python calls some of those global
    whatever IPv4 address they carry (2002:7f00:1::1 is 127.0.0.1's)."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return (addr,)
    if addr.ipv4_mapped is not None:
        return (addr.ipv4_mapped,)
    inner: tuple[IPAddress, ...] = ()
    if addr.sixtofour is not None:
        inner = (addr.sixtofour,)
    elif addr.teredo is not None:
        inner = addr.teredo
    return (addr, *inner)


def parse_networks(texts: Sequence[str], where: str) -> tuple[Network, ...]:
    """CIDR ranges ("10.1.0.0/16", "127.0.0.1") from a setting; ConfigError names a bad one."""
    from archiver.errors import ConfigError

    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"{where}: not an address range: {text!r}") from exc
    return tuple(nets)


@functools.lru_cache(maxsize=4096)
def _forbidden_kind(addr: IPAddress, allow_private: bool) -> str | None:
    """Why ``addr`` is refused (None: it is not); cached, as it depends on nothing else."""
    if addr in _METADATA:
        return "cloud metadata"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_unspecified:
        return "unspecified"
    if isinstance(addr, ipaddress.IPv4Address) and any(addr in net for net in _SPECIAL):
        return "reserved"
    if addr.is_loopback:
        return None if allow_private else "loopback"
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local:  # fec0::/10, deprecated but routed inside sites
        return None if allow_private else "site-local"
    if addr.is_private or not addr.is_global:
        if addr.is_reserved:
            return "reserved"
        return None if allow_private else "private"
    if addr.is_reserved:
        return "reserved"
    return None
