"""SSRF guard: refuse hosts that resolve to loopback, private, link-local or other non-public addresses.

Two layers, both used by `pipelines.fetch.Fetcher` unless `allow_private_addresses` is set:

- `check_host` runs before a request (every redirect hop): it resolves the host and refuses it
  if ANY resolved address is not public, so nothing is sent anywhere.
- `GuardedBackend` sits under httpx's direct connection pool: it resolves again at connect time,
  refuses the same way, and connects to the very address it checked. That closes the gap a
  DNS-rebinding host would use between the check and the connection.

It also reads proxy settings from the environment as curl does (`ProxyConfig`): which requests go
through a proxy matters to the guard, since a proxy resolves names itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore

Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def effective_port(scheme: str, port: int | None) -> int:
    """The TCP port a URL with this scheme and (possibly absent) explicit port connects to."""
    return port or (443 if scheme == "https" else 80)


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (IP literals resolve to themselves), deduplicated."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_public_address(address: str) -> bool:
    """True only for a globally routable unicast address; IPv6 forms that embed IPv4 are judged by it."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4-mapped and NAT64 addresses reach the IPv4 address inside: judge that one alone.
        mapped = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if mapped is not None:
            return is_public_address(str(mapped))
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if tunnelled is not None and not is_public_address(str(tunnelled)):
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
        or ip.is_reserved or ip.is_unspecified or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


class PrivateAddressError(httpcore.ConnectError):
    """A host resolved to a non-public address; raised by GuardedBackend before connecting."""


def first_private(addresses: Iterable[str]) -> str | None:
    """The first address that is not public, or None if all are."""
    for address in addresses:
        if not is_public_address(address):
            return address
    return None


async def check_host(host: str, port: int, resolver: Resolver = resolve_host) -> str | None:
    """Resolve host and return a refusal message if any address is not public, else None.

    Resolution errors (OSError, or UnicodeError for a name IDNA refuses) propagate: the caller
    decides what an unresolvable host means.
    """
    addresses = await resolver(host, port)
    if not addresses:
        raise OSError(f"no address for {host}")
    bad = first_private(addresses)
    if bad is not None:
        return f"{host} resolves to non-public address {bad}"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only ever connects to public addresses it has just checked."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolver: Resolver = resolve_host) -> None:
        self.inner = inner
        self.resolver = resolver

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, refuse non-public addresses, then connect to the checked addresses in turn."""
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:  # UnicodeError: IDNA refuses the name (label too long)
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"no address for {host}")
        bad = first_private(addresses)
        if bad is not None:
            raise PrivateAddressError(f"{host} resolves to non-public address {bad}")
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# -- proxies from the environment, as curl reads them ----------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NoProxyEntry:
    """One NO_PROXY entry: a domain (matching itself and its subdomains) or an IP network, maybe a port."""

    domain: str = ""
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """Whether a request to host:port bypasses the proxy because of this entry."""
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False  # a name: curl doesn't resolve it to compare
        return host == self.domain or host.endswith("." + self.domain)


def _no_proxy_entry(entry: str) -> NoProxyEntry | None:
    """Parse one NO_PROXY entry ("example.com", ".example.com", "host:8080", "10.0.0.0/8", "[::1]:80")."""
    port: int | None = None
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", entry)
    if bracketed:
        entry, port = bracketed.group(1), int(bracketed.group(2)) if bracketed.group(2) else None
    elif entry.count(":") == 1:  # host:port (an IPv6 address has more colons)
        entry, _, port_text = entry.partition(":")
        if not port_text.isascii() or not port_text.isdigit():
            return None
        port = int(port_text)
    try:
        return NoProxyEntry(network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        pass
    domain = entry.lower().removeprefix("*").lstrip(".").rstrip(".")
    return NoProxyEntry(domain=domain, port=port) if domain else None


def _env(environ: Mapping[str, str], name: str) -> str:
    """A variable in curl's order: the lowercase name first, then the uppercase one; blank is unset."""
    return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()


@dataclass
class ProxyConfig:
    """HTTP_PROXY / HTTPS_PROXY / ALL_PROXY and NO_PROXY (either case), with curl's rules.

    NO_PROXY is a comma- (or space-) separated list: `*` means every host; a name matches itself and
    its subdomains, with or without a leading dot ("gov.uk" and ".gov.uk" both cover gov.uk and
    www.gov.uk); IP addresses and CIDR ranges (192.168.0.0/16, fd00::/8) match IP hosts; an entry
    with a port (host:8080) only matches that port, one without matches any. httpx's own
    `trust_env` handling does not do CIDR ranges or a leading dot matching the bare domain.
    """

    http: str | None = None
    https: str | None = None
    bypass_all: bool = False
    no_proxy: tuple[NoProxyEntry, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyConfig:
        """The proxy settings in environ (default: os.environ)."""
        environ = os.environ if environ is None else environ
        fallback = _env(environ, "all_proxy")
        proxies = {scheme: _env(environ, f"{scheme}_proxy") or fallback for scheme in ("http", "https")}
        for scheme, url in proxies.items():
            if url and "://" not in url:
                proxies[scheme] = "http://" + url  # curl's default proxy scheme
        words = [w for w in re.split(r"[,\s]+", _env(environ, "no_proxy")) if w]
        entries = tuple(e for e in map(_no_proxy_entry, words) if e is not None)
        return cls(http=proxies["http"] or None, https=proxies["https"] or None, bypass_all="*" in words,
                   no_proxy=entries)

    def proxy_for(self, scheme: str, host: str, port: int) -> str | None:
        """The proxy URL a request to scheme://host:port goes through, or None to go direct."""
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or self.bypass_all:
            return None
        host = host.strip("[]").rstrip(".").lower()
        if any(entry.matches(host, port) for entry in self.no_proxy):
            return None
        return proxy
