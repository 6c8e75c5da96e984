"""What a URL's host means (WHATWG URL standard), and that the SSRF guard reads it the same way. Pure."""

from __future__ import annotations

import anyio
import pytest

from reconciler.api.hosts import InvalidHost, parse_host, url_host_problem
from reconciler.probe import BlockedDestination
from reconciler.probe.ssrf import resolve_checked, url_problem


@pytest.mark.parametrize(
    ("host", "kind", "address", "canonical"),
    [
        ("mcp.example.com", "domain", None, True),
        ("MCP.Example.COM", "domain", None, True),
        ("127.0.0.1", "ipv4", "127.0.0.1", True),
        ("0177.0.0.1", "ipv4", "127.0.0.1", False),  # octal
        ("0x7f.0.0.1", "ipv4", "127.0.0.1", False),  # hex
        ("0x7F.1", "ipv4", "127.0.0.1", False),
        ("127.1", "ipv4", "127.0.0.1", False),  # the last part fills the remaining bytes
        ("2130706433", "ipv4", "127.0.0.1", False),
        ("010.0.0.1", "ipv4", "8.0.0.1", False),
        ("10.0.0.1.", "ipv4", "10.0.0.1", False),  # trailing dot
        ("0", "ipv4", "0.0.0.0", False),
        ("::1", "ipv6", "::1", True),
        ("[fe80::1]", "ipv6", "fe80::1", True),
        ("1.example", "domain", None, True),  # a number first is fine: only the last label decides
    ],
)
def test_hosts_mean_what_the_url_standard_says(host: str, kind: str, address: str | None, canonical: bool) -> None:
    parsed = parse_host(host)
    assert (parsed.kind, parsed.address, parsed.canonical) == (kind, address, canonical)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("999.0.0.1", "out of range"),
        ("1.2.3.256", "out of range"),
        ("1.2.65536", "out of range"),
        ("4294967296", "out of range"),
        ("1.2.3.4.5", "more than four parts"),
        ("foo.1", "'foo' is not a number"),
        ("1.08.1.1", "'08' is not a number"),  # 8 is not an octal digit
        ("0xg.1", "'0xg' is not a number"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("exa mple.com", "character"),
        ("a%41.com", "character"),
        ("x" * 64 + ".com", "longer than 63"),
        ("[::zz]", "not a valid IPv6"),
        ("", "empty"),
    ],
)
def test_invalid_hosts_are_refused_with_the_reason(host: str, why: str) -> None:
    with pytest.raises(InvalidHost, match=why):
        parse_host(host)


@pytest.mark.parametrize("url", ["http://999.0.0.1/mcp", "http://1.2.3.4.5/mcp", "https://foo.1/mcp"])
def test_the_guard_refuses_urls_with_invalid_hosts(url: str) -> None:
    problem = url_problem(url)
    assert problem is not None and problem.startswith("the URL's host is not valid:")


@pytest.mark.parametrize("host", ["0177.0.0.1", "0x7f.0.0.1", "127.1", "2130706433"])
def test_the_guard_checks_what_the_standard_says_a_numeric_host_means(host: str) -> None:
    def resolver(name: str, port: int) -> list[str]:
        raise AssertionError("a numeric host is an address, never a name to look up")

    async def check(allow_private: bool) -> list[str]:
        return await resolve_checked(host, 80, resolver=resolver, allow_private=allow_private)

    with pytest.raises(BlockedDestination, match=rf"{host} resolves to 127\.0\.0\.1, a loopback address"):
        anyio.run(check, False)
    assert anyio.run(check, True) == ["127.0.0.1"]


def test_the_guard_refuses_an_invalid_numeric_host_without_resolving() -> None:
    def resolver(name: str, port: int) -> list[str]:
        raise AssertionError("never resolved")

    async def check() -> list[str]:
        return await resolve_checked("999.0.0.1", 80, resolver=resolver, allow_private=True)

    with pytest.raises(BlockedDestination, match="not a valid host"):
        anyio.run(check)


def test_templated_urls_are_checked_once_rendered() -> None:
    assert url_host_problem("https://{{ tenant.slug }}.example.com/mcp") is None
    assert url_host_problem("https://999.0.0.1/mcp") is not None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://999.0.0.1/mcp", "invalid host: '999.0.0.1' is not an IPv4 address"),
        ("http://0177.0.0.1/mcp", "reads as 127.0.0.1; write 127.0.0.1"),
        ("http://0x7f.0.0.1:8080/mcp", "reads as 127.0.0.1; write 127.0.0.1"),
        ("https://mcp.example.com/mcp", None),
        ("http://10.0.0.1:8080/sse", None),
    ],
)
def test_validation_asks_for_the_one_spelling_every_client_reads_alike(url: str, said: str | None) -> None:
    problem = url_host_problem(url)
    assert (problem is None) if said is None else (problem is not None and said in problem)
