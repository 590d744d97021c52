"""Which network addresses a suspect may be reached at.

An arbiter service queries the URL a claim names, and the claimant chooses
that URL. Left open, anyone who can file a claim could make the service
send requests into the network it runs in: a cloud's metadata service at
169.254.169.254, an admin port on loopback, the hosts of a private network
(server-side request forgery). An :class:`EgressPolicy` permits globally
routable unicast addresses and the networks the arbiter lists, nothing else.

It is enforced as each request is sent, not when a claim is filed: the URL's
host is resolved, every address it resolves to must be permitted, and the
request goes to the first of them, its ``Host`` header and TLS server name
still the URL's host (so the certificate is checked against the name). The
address connected to is the address checked: a name that resolves somewhere
else a moment later (DNS rebinding) is not reached.

An IPv6 address that carries an IPv4 address (IPv4-mapped, the NAT64
prefix ``64:ff9b::/96``, 6to4) is permitted only if the IPv4 address is;
IPv4-compatible and IPv4-translated forms, local-use NAT64 and site-local
addresses never are (unless listed).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from secmark.errors import EncodingError, SuspectError

__all__ = ["EgressPolicy", "EgressRefused"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# Prefixes Python's is_global lets through that may still lead inside: the
# deprecated IPv4-compatible and IPv4-translated forms (a tunnel or SIIT
# translator may carry them to the IPv4 address), local-use NAT64 (RFC
# 8215) and deprecated site-local addresses.
_INSIDE_V6 = tuple(
    ipaddress.IPv6Network(prefix)
    for prefix in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "fec0::/10")
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressRefused(SuspectError):
    """The suspect's host is, or resolves to, an address the policy does not
    permit; nothing was sent to it."""


@dataclass(frozen=True)
class EgressPolicy:
    """Globally routable unicast addresses, and the addresses of ``networks``.

    The default, no networks, is what a service open to claimants should
    run with; list a network (``127.0.0.0/8``, ``10.1.2.0/24``) only to
    query suspects the arbiter itself placed there.
    """

    networks: tuple[Network, ...] = ()

    def __post_init__(self) -> None:
        for network in self.networks:
            if not isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                raise EncodingError(f"a permitted network is an IP network, not {network!r}")

    @classmethod
    def from_cidrs(cls, texts: Iterable[str]) -> EgressPolicy:
        """The policy permitting the networks written in CIDR notation.

        Raises:
            EncodingError: a text that is no network, or one with host bits
                set (``127.0.0.1/8``: write ``127.0.0.0/8``).
        """
        networks = []
        for text in texts:
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise EncodingError(
                    f"{text!r} is no network in CIDR notation ({exc}); write, for instance, "
                    "127.0.0.0/8 or ::1/128"
                ) from None
        return cls(tuple(networks))

    def permits(self, address: Address) -> bool:
        """Whether a request may be sent to ``address``."""
        if isinstance(address, ipaddress.IPv6Address):
            address = ipaddress.IPv6Address(int(address))  # without a zone
            if address.ipv4_mapped is not None:
                return self.permits(address.ipv4_mapped)
        if any(address.version == n.version and address in n for n in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if any(address in prefix for prefix in _INSIDE_V6):
                return False
            inner = _embedded_ipv4(address)
            if inner is not None and not self.permits(inner):
                return False
        return address.is_global and not address.is_multicast

    def resolve(self, host: str, port: int) -> Address:
        """The address to send a request for ``host`` to: ``host`` itself
        when it is an IP address, else the first address it resolves to.

        Raises:
            EgressRefused: the address, or any address the name resolves
                to, is not permitted.
            httpx.ConnectError: the name does not resolve (nothing was sent).
        """
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = _resolved(host, port)
        for address in addresses:
            if not self.permits(address):
                # A name's address is not quoted: errors reach the claimant,
                # who must not learn the addresses of names inside.
                shown = host if str(address) == host else f"{host} resolves to an address that"
                raise EgressRefused(
                    f"{shown} is not globally routable, and the arbiter permits no such "
                    "network for suspects (secmark arbiter serve --allow-suspect-network): "
                    "nothing was sent"
                )
        return addresses[0]

    def pin(self, request: httpx.Request) -> None:
        """An httpx ``request`` event hook: send ``request`` to the address
        :meth:`resolve` checked, with the URL's host as its ``Host`` header
        (set when the request was made) and as its TLS server name."""
        url = request.url
        port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)
        address = self.resolve(url.host, port)
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        request.url = url.copy_with(host=str(address))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _resolved(host: str, port: int) -> list[Address]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise httpx.ConnectError(f"{host} does not resolve ({exc})") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpx.ConnectError(f"{host} resolves to no address")
    return addresses
