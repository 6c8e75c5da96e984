"""Every error class, produced for real by a local server (or a refused port), with its message and hint."""

from __future__ import annotations

import time

import pytest
from starlette.responses import PlainTextResponse

from reconciler.demo.serving import ServerLoop
from reconciler.probe import HINTS, ProbeSettings
from tests.fixtures.mcp_servers import (
    DEMANDED_SCOPES,
    DOWNSTREAM_ERROR,
    SCOPE_DEMANDING_TOKEN,
    LocalServers,
    answer_everything,
)
from tests.integration.probe.support import LOCAL, probe, target


def test_refused_port_is_transport(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.refused))
    assert (result.ok, result.error_class) == (False, "transport")
    assert "connection refused" in result.message
    assert result.hint == HINTS["transport"]
    assert result.tools is None


def test_unknown_path_is_transport_with_the_status(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.tools.replace("/mcp", "/nope")))
    assert result.error_class == "transport"
    assert "HTTP 404" in result.message
    assert result.hint == HINTS["transport"]  # a wrong path, not a wrong transport


def test_an_sse_endpoint_registered_as_streamable_http_hints_sse(
    mcp_servers: LocalServers, server_loop: ServerLoop
) -> None:
    # The SDK's own SSE server refuses the POST with 405; others (Starlette mounts) with 404.
    not_found = server_loop.serve_asgi(lambda url: answer_everything(PlainTextResponse("Not Found", 404))) + "/sse"
    for url, status in ((mcp_servers.events, "HTTP 405"), (not_found, "HTTP 404")):
        result = probe(target(url, transport="streamable-http"))
        assert result.error_class == "transport" and status in result.message, result.message
        assert result.hint == "this looks like an SSE endpoint: set transport: sse"


def test_a_streamable_http_endpoint_registered_as_sse_hints_streamable_http(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.tools, transport="sse"))
    assert result.error_class == "transport" and "HTTP 400" in result.message, result.message
    assert result.hint == "this looks like a streamable HTTP endpoint: set transport: streamable-http"


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_http_500_is_transport(mcp_servers: LocalServers, transport: str) -> None:
    result = probe(target(mcp_servers.failing, transport=transport))
    assert result.error_class == "transport"
    assert "HTTP 500" in result.message


def test_https_to_a_plain_http_port_is_tls(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.tools.replace("http://", "https://")))
    assert result.error_class == "tls"
    assert result.message.startswith("TLS handshake with 127.0.0.1:")


def test_missing_bearer_is_auth(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.protected))
    assert result.error_class == "auth"
    assert "HTTP 401" in result.message and "no credentials were sent" in result.message
    assert result.hint == HINTS["auth"]


def test_wrong_bearer_is_auth(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.protected, headers={"Authorization": "Bearer not-the-token"}))
    assert result.error_class == "auth"
    assert "rejected the credentials" in result.message


def test_json_rpc_error_from_tools_list_is_downstream(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.downstream))
    assert result.error_class == "downstream"
    assert DOWNSTREAM_ERROR in result.message
    assert "listing tools (page 1)" in result.message
    # The handshake worked, so what it told us is kept.
    assert result.server_info == {"name": "downstream", "version": "1.0.0"}


def test_black_hole_costs_exactly_the_total_timeout(mcp_servers: LocalServers) -> None:
    settings = ProbeSettings(allow_private_networks=True, connect_timeout=2, request_timeout=5, total_timeout=1.5)
    started = time.monotonic()
    result = probe(target(mcp_servers.black_hole), settings=settings)
    elapsed = time.monotonic() - started
    assert result.error_class == "timeout"
    assert "1.5 s (total_timeout)" in result.message
    # It accepted the connection: the probe was waiting for an answer, not connecting.
    assert "while waiting for the response" in result.message and "connecting" not in result.message
    assert 1.4 <= elapsed < 2.5
    assert 1400 <= result.latency_ms < 2500


def test_black_hole_hits_the_request_timeout_first_when_it_is_shorter(mcp_servers: LocalServers) -> None:
    settings = ProbeSettings(allow_private_networks=True, connect_timeout=1, request_timeout=1, total_timeout=10)
    result = probe(target(mcp_servers.black_hole), settings=settings)
    assert result.error_class == "timeout"
    assert "request_timeout" in result.message
    assert "while waiting for the response" in result.message and "connecting" not in result.message
    assert result.latency_ms < 5000


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_html_page_is_protocol(mcp_servers: LocalServers, transport: str) -> None:
    result = probe(target(mcp_servers.html, transport=transport))
    assert result.error_class == "protocol"
    assert "text/html" in result.message


def test_websocket_without_the_token_is_auth(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.websocket_protected, transport="websocket"))
    assert result.error_class == "auth"
    assert "HTTP 401" in result.message


def test_websocket_to_a_refused_port_is_transport(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.refused, transport="websocket"))
    assert result.error_class == "transport"


def test_non_http_scheme_is_blocked() -> None:
    result = probe(target("ftp://127.0.0.1/mcp"))
    assert result.error_class == "blocked"
    assert result.hint == HINTS["blocked"]


def test_every_result_is_classified_and_single_line(mcp_servers: LocalServers) -> None:
    for url in (mcp_servers.failing, mcp_servers.html, mcp_servers.refused, mcp_servers.downstream):
        result = probe(target(url), settings=LOCAL)
        assert result.error_class in HINTS
        assert "\n" not in result.message and len(result.message) <= 300
        assert result.at.tzinfo is not None


def test_a_token_short_of_a_scope_is_insufficient_scope_naming_the_scopes(mcp_servers: LocalServers) -> None:
    headers = {"Authorization": f"Bearer {SCOPE_DEMANDING_TOKEN}"}
    result = probe(target(mcp_servers.scope_demanding, headers=headers))
    assert (result.ok, result.error_class) == (False, "insufficient_scope"), result.message
    assert result.challenged_scopes == DEMANDED_SCOPES
    assert "HTTP 403" in result.message and "scope(s) mcp:tools files:write" in result.message, result.message
    assert result.hint == HINTS["insufficient_scope"] and SCOPE_DEMANDING_TOKEN not in result.message
    assert result.discovery is not None and result.discovery.requires_auth


def test_no_token_at_the_scope_demanding_server_is_plain_auth(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.scope_demanding))
    assert (result.error_class, result.challenged_scopes) == ("auth", ())
