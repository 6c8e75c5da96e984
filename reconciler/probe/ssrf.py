"""The SSRF guard: every connection the probe opens resolves its host, checks every address, then connects to one
of the checked addresses.

Used by `transports.ProbeHttp` (as the network backend under every httpx2 client the probe creates, so the SDK's
own requests, redirects and discovery documents pointing elsewhere all pass through it) and by the websocket
transport (`connect_checked_socket`). Connecting to the address that was checked, never re-resolving the name,
closes the DNS-rebinding gap. The resolver is injectable (`Resolver`) so tests can map names to blocked addresses.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpcore2

from reconciler.api.hosts import InvalidHost, parse_host

Resolver = Callable[[str, int], list[str]]
"""`(host, port) -> addresses`: blocking name resolution, run in a worker thread. Raise `OSError` when unknown."""

ALLOWED_SCHEMES = ("http", "https")

# Cloud instance-metadata endpoints stay unreachable even when private targets are allowed: no MCP server lives
# there and they hand out the machine's credentials.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
CGNAT_NETWORK = ipaddress.ip_network("100.64.0.0/10")
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network) for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedDestination(httpcore2.ConnectError):
    """The guard refused a destination; no connection was attempted.

    A `ConnectError` so that every layer above (httpx2, the MCP SDK) treats it as a failed connection; the
    classifier recognises it in the cause chain and reports the `blocked` class.
    """


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), addresses in its preference order, without duplicates."""
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why the probe must not connect to `address`, or None when it may. Pure."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        problem = address_problem(str(embedded), allow_private=allow_private)
        return f"{problem} (IPv4 embedded in IPv6)" if problem else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT_NETWORK:
        return "a carrier-grade NAT address"
    if any(ip.version == network.version and ip in network for network in PRIVATE_NETWORKS):
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, Teredo client), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64_NETWORK:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def url_problem(url: str) -> str | None:
    """Why a URL may not be fetched at all (scheme, missing host), or None. Pure."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the URL cannot be parsed"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return f"only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}"
    if not parts.hostname:
        return "the URL has no host"
    try:
        parse_host(parts.hostname)
    except InvalidHost as exc:
        return f"the URL's host is not valid: {exc}"
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def resolve_checked(host: str, port: int, *, resolver: Resolver, allow_private: bool) -> list[str]:
    """Resolve `host` and return its addresses if ALL of them are allowed; otherwise raise `BlockedDestination`.

    Rejecting when any address is blocked (not just the first) means a name cannot smuggle a private address in
    behind a public one. Raises `httpcore2.ConnectError` when the name does not resolve.
    """
    host = host.strip("[]")
    try:
        parsed = parse_host(host)
    except InvalidHost as exc:
        raise BlockedDestination(f"not a valid host: {exc}") from None
    if parsed.kind == "ipv4" and parsed.address is not None:
        # What the URL standard says the host means (0177.0.0.1 and 127.1 are 127.0.0.1), never a DNS lookup.
        addresses = [parsed.address]
    elif _is_ip_literal(host):
        addresses = [host]
    else:
        try:
            # Abandoned on cancel: a hanging lookup must not outlive the probe's deadline.
            addresses = await anyio.to_thread.run_sync(resolver, host, port, abandon_on_cancel=True)
        except OSError as exc:
            raise httpcore2.ConnectError(f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise httpcore2.ConnectError(f"cannot resolve host {host!r}: no addresses")
    for address in addresses:
        problem = address_problem(address, allow_private=allow_private)
        if problem is not None:
            where = f"{host} is" if host == address else f"{host} resolves to {address},"
            raise BlockedDestination(f"{where} {problem}")
    return addresses


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """An httpcore2 network backend that connects only to checked addresses.

    The pool above it hands over the URL's host name; this backend resolves it, checks every address and connects
    to the first reachable checked address, so TLS still verifies against the name (httpcore passes the name as
    `server_hostname` when it starts TLS on the returned stream).
    """

    def __init__(self, *, resolver: Resolver, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_checked(
                    host, port, resolver=self._resolver, allow_private=self._allow_private
                )
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"resolving {host!r} timed out") from exc
        failure: httpcore2.ConnectError | httpcore2.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore2.ConnectTimeout as exc:
                failure = exc
            except httpcore2.ConnectError as exc:
                failure = httpcore2.ConnectError(f"cannot connect to {host}:{port}: {_reason(exc)}")
                failure.__cause__ = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise BlockedDestination("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _reason(exc: BaseException) -> str:
    """The most specific words for a failed connect: the OS's own text for the deepest error number."""
    current: BaseException | None = exc
    reason = str(exc) or type(exc).__name__
    while current is not None:
        if isinstance(current, OSError) and current.errno:
            reason = os.strerror(current.errno).lower()
        current = current.__cause__ or current.__context__
    return reason


async def connect_checked_socket(
    host: str, port: int, *, resolver: Resolver, allow_private: bool, timeout: float
) -> socket.socket:
    """A connected, non-blocking TCP socket to a checked address of `host` (for transports that take a socket)."""
    import asyncio

    with anyio.fail_after(timeout):
        addresses = await resolve_checked(host, port, resolver=resolver, allow_private=allow_private)
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (address, port))
            except OSError as exc:
                sock.close()
                failure = exc
            except BaseException:
                sock.close()
                raise
            else:
                return sock
    assert failure is not None
    raise httpcore2.ConnectError(f"cannot connect to {host}:{port}: {_reason(failure)}")
