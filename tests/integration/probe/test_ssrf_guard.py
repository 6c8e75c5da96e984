"""The SSRF guard on real probes: names from our fake resolver seam, a counting listener, and both switches."""

from __future__ import annotations

import pytest

from reconciler.probe import ProbeSettings
from tests.fixtures.mcp_servers import LocalServers
from tests.integration.probe.support import fake_resolver, probe, target

BLOCKED_NAMES = {
    "metadata.test": ["169.254.169.254"],
    "intranet.test": ["10.0.0.5"],
    "cgnat.test": ["100.64.1.1"],
    "mapped.test": ["::ffff:10.0.0.5"],
    "ula.test": ["fd12:3456::1"],
    "mixed.test": ["93.184.216.34", "10.0.0.5"],
}
STRICT = ProbeSettings(connect_timeout=2, request_timeout=5, total_timeout=10)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("metadata.test", "169.254.169.254, a cloud metadata address"),
        ("intranet.test", "10.0.0.5, a private address"),
        ("cgnat.test", "100.64.1.1, a carrier-grade NAT address"),
        ("mapped.test", "::ffff:10.0.0.5, a private address (IPv4 embedded in IPv6)"),
        ("ula.test", "fd12:3456::1, a private address"),
        ("mixed.test", "10.0.0.5, a private address"),
    ],
)
@pytest.mark.parametrize("transport", ["streamable-http", "sse", "websocket"])
def test_blocked_names_never_connect(name: str, expected: str, transport: str) -> None:
    calls: list[tuple[str, int]] = []
    result = probe(
        target(f"http://{name}/mcp", transport=transport, allow_private=False),
        settings=STRICT,
        resolver=fake_resolver(BLOCKED_NAMES, calls),
    )
    assert result.error_class == "blocked", result.message
    assert f"{name} resolves to {expected}" in result.message
    assert calls and all(host == name for host, _port in calls)
    # Refused at the resolver: no connect attempt, so it is instant (a real attempt to 10.0.0.5 would hang).
    assert result.latency_ms < 1000


def test_loopback_needs_both_switches(mcp_servers: LocalServers) -> None:
    counter = mcp_servers.counter
    before = counter.accepted
    for reconciler_allows, server_allows in [(False, False), (False, True), (True, False)]:
        settings = ProbeSettings(allow_private_networks=reconciler_allows, total_timeout=5)
        result = probe(target(counter.url, allow_private=server_allows), settings=settings)
        assert result.error_class == "blocked"
        assert "127.0.0.1 is a loopback address" in result.message
    assert counter.accepted == before, "the guard must refuse before any connection is attempted"

    allowed = ProbeSettings(allow_private_networks=True, total_timeout=10)
    result = probe(target(mcp_servers.tools, allow_private=True), settings=allowed)
    assert result.ok, result.message


def test_metadata_address_stays_blocked_even_when_private_is_allowed() -> None:
    settings = ProbeSettings(allow_private_networks=True, total_timeout=5)
    result = probe(
        target("http://metadata.test/mcp", allow_private=True),
        settings=settings,
        resolver=fake_resolver(BLOCKED_NAMES),
    )
    assert result.error_class == "blocked"


def test_connects_to_the_address_it_checked(mcp_servers: LocalServers) -> None:
    # "rebind.test" exists only in our resolver: the probe can only succeed by connecting to the checked address,
    # never by letting a lower layer resolve the name again.
    calls: list[tuple[str, int]] = []
    port = mcp_servers.paginated_port
    result = probe(
        target(f"http://rebind.test:{port}/mcp"),
        resolver=fake_resolver({"rebind.test": ["127.0.0.1"]}, calls),
    )
    assert result.ok, result.message
    assert result.pages == 3
    assert calls and {host for host, _ in calls} == {"rebind.test"}


def test_unresolvable_name_is_transport() -> None:
    result = probe(target("http://nowhere.test/mcp"), resolver=fake_resolver({}))
    assert result.error_class == "transport"
    assert "cannot resolve host 'nowhere.test'" in result.message


@pytest.mark.parametrize("transport", ["streamable-http", "sse", "websocket"])
def test_listing_connection_is_guarded_too(transport: str) -> None:
    result = probe(
        target("http://intranet.test/mcp", transport=transport, allow_private=False, discover_auth=False),
        settings=STRICT,
        resolver=fake_resolver(BLOCKED_NAMES),
    )
    assert result.error_class == "blocked", result.message
    assert result.discovery is None
