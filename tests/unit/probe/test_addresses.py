"""The SSRF guard's address and URL policy, table-driven (pure)."""

from __future__ import annotations

import anyio
import pytest

from reconciler.probe import BlockedDestination, address_problem
from reconciler.probe.ssrf import resolve_checked, url_problem


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("100.64.1.1", "a carrier-grade NAT address"),
        ("100.127.255.254", "a carrier-grade NAT address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.2.10", "a non-public address"),
        ("::ffff:127.0.0.1", "a loopback address (IPv4 embedded in IPv6)"),
        ("::ffff:10.0.0.5", "a private address (IPv4 embedded in IPv6)"),
        ("::ffff:169.254.169.254", "a cloud metadata address (IPv4 embedded in IPv6)"),
        ("2002:a00:5::1", "a private address (IPv4 embedded in IPv6)"),
        ("64:ff9b::a00:5", "a private address (IPv4 embedded in IPv6)"),
        ("not-an-ip", "not an IP address"),
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
    ],
)
def test_address_policy(address: str, problem: str | None) -> None:
    assert address_problem(address, allow_private=False) == problem


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "fd00::1", "100.64.0.1", "fe80::1", "::ffff:10.0.0.1"])
def test_allow_private_opens_private_ranges(address: str) -> None:
    assert address_problem(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1"])
def test_never_reachable_even_when_private_is_allowed(address: str) -> None:
    assert address_problem(address, allow_private=True) is not None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://mcp.example.com/mcp", None),
        ("http://10.0.0.1:8080/sse", None),
        ("file:///etc/passwd", "only http and https URLs are allowed, not 'file'"),
        ("gopher://example.com/", "only http and https URLs are allowed, not 'gopher'"),
        ("example.com/mcp", "only http and https URLs are allowed, not 'no scheme'"),
        ("http:///mcp", "the URL has no host"),
    ],
)
def test_url_policy(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem


def test_any_blocked_address_blocks_the_name() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    async def check() -> None:
        await resolve_checked("mixed.test", 443, resolver=resolver, allow_private=False)

    with pytest.raises(BlockedDestination, match=r"mixed\.test resolves to 10\.0\.0\.5, a private address"):
        anyio.run(check)


def test_ip_literals_are_not_resolved() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal needs no resolver")

    async def check() -> list[str]:
        return await resolve_checked("[::1]", 80, resolver=resolver, allow_private=True)

    assert anyio.run(check) == ["::1"]
