"""The classifier on failures as the SDK delivers them: nested exception groups, causes, and the HTTP trace."""

from __future__ import annotations

import ssl

import anyio
import httpx2
import mcp_types
import pytest
from mcp.shared.exceptions import MCPError

from reconciler.probe.classification import (
    Classified,
    FailureContext,
    ProbeFailure,
    classify,
    classify_failure,
    one_line,
)
from reconciler.probe.ssrf import BlockedDestination
from reconciler.probe.tracing import HttpExchange, HttpTrace

CONTEXT = FailureContext(
    url="http://127.0.0.1:9/mcp",
    stage="listing tools (page 1)",
    sent_credentials=True,
    connect_timeout=5,
    request_timeout=10,
    total_timeout=30,
)


def exchange(status: int, content_type: str = "text/plain", method: str = "POST") -> HttpExchange:
    return HttpExchange(
        method=method, url=CONTEXT.url, status=status, reason="", content_type=content_type, www_authenticate=None
    )


def test_leaves_are_found_inside_nested_groups_past_noise() -> None:
    failure = ExceptionGroup(
        "outer", [ExceptionGroup("inner", [anyio.BrokenResourceError(), ProbeFailure("protocol", "too many pages")])]
    )
    assert classify(failure, trace=None, context=CONTEXT) == ("protocol", "too many pages")


def test_blocked_is_found_through_the_cause_chain() -> None:
    wrapped = httpx2.ConnectError("cannot connect")
    wrapped.__cause__ = BlockedDestination("intranet.test resolves to 10.0.0.5, a private address")
    assert classify(ExceptionGroup("g", [wrapped]), trace=None, context=CONTEXT)[0] == "blocked"


def test_tls_is_found_under_a_connect_error() -> None:
    wrapped = httpx2.ConnectError("handshake")
    wrapped.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert classify(wrapped, trace=None, context=CONTEXT)[0] == "tls"


def test_generic_json_rpc_error_is_explained_by_the_traced_status() -> None:
    generic = MCPError(mcp_types.INTERNAL_ERROR, "Server returned an error response")
    for status, expected in [(401, "auth"), (403, "auth"), (500, "transport"), (405, "transport")]:
        trace = HttpTrace(exchanges=[exchange(status)])
        assert classify(generic, trace=trace, context=CONTEXT)[0] == expected


def test_ignored_exchanges_do_not_explain_a_failure() -> None:
    trace = HttpTrace(
        exchanges=[exchange(405, method="GET"), exchange(404, method="DELETE"), exchange(200, "application/json")]
    )
    error = MCPError(mcp_types.INTERNAL_ERROR, "database down")
    assert classify(error, trace=trace, context=CONTEXT) == (
        "downstream",
        "server returned JSON-RPC error -32603 while listing tools (page 1): database down",
    )


def test_swallowed_post_failure_beats_the_timeout_it_caused() -> None:
    trace = HttpTrace(exchanges=[exchange(200, "text/event-stream", method="GET"), exchange(500)])
    timed_out = MCPError(mcp_types.REQUEST_TIMEOUT, "Request 'tools/list' timed out")
    assert classify(timed_out, trace=trace, context=CONTEXT)[0] == "transport"
    assert classify(timed_out, trace=HttpTrace(), context=CONTEXT)[0] == "timeout"


def test_timeouts_name_the_limit_that_expired() -> None:
    assert "connect_timeout" in classify(httpx2.ConnectTimeout("x"), trace=None, context=CONTEXT)[1]
    assert "request_timeout" in classify(httpx2.ReadTimeout("x"), trace=None, context=CONTEXT)[1]
    assert "total_timeout" in classify(TimeoutError(), trace=None, context=CONTEXT)[1]


def test_messages_are_one_bounded_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 300


def challenged(status: int, www_authenticate: str) -> HttpTrace:
    answer = HttpExchange(
        method="POST",
        url=CONTEXT.url,
        status=status,
        reason="Forbidden" if status == 403 else "Unauthorized",
        content_type="application/json",
        www_authenticate=www_authenticate,
    )
    return HttpTrace(exchanges=[answer])


GENERIC = MCPError(mcp_types.INTERNAL_ERROR, "Server returned an error response")


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (
            403,
            'Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="http://x/y"',
            Classified(
                "insufficient_scope",
                "server refused the token for insufficient scope (HTTP 403 Forbidden): "
                "it names scope(s) files:read files:write",
                ("files:read", "files:write"),
            ),
        ),
        (
            403,
            'Basic realm="x", Bearer error="insufficient_scope"',
            Classified(
                "insufficient_scope",
                "server refused the token for insufficient scope (HTTP 403 Forbidden): it names no scopes",
            ),
        ),
        (
            403,
            'Bearer error="insufficient_scope", scope="unclosed',
            Classified("auth", "server refused access (HTTP 403 Forbidden: insufficient_scope)"),
        ),
        (
            403,
            'Bearer error="invalid_token", error_description="a, b"',
            Classified("auth", "server refused access (HTTP 403 Forbidden: invalid_token)"),
        ),
        (
            401,
            'Bearer error="insufficient_scope", scope="a"',
            Classified("auth", "server rejected the credentials (HTTP 401 Unauthorized: insufficient_scope, scope a)"),
        ),
    ],
    ids=["scopes-named", "no-scope-param", "malformed", "other-error", "401-is-not-step-up"],
)
def test_a_403_insufficient_scope_challenge_is_its_own_class_naming_the_scopes(
    status: int, header: str, expected: Classified
) -> None:
    assert classify_failure(GENERIC, trace=challenged(status, header), context=CONTEXT) == expected
    assert classify(GENERIC, trace=challenged(status, header), context=CONTEXT) == (
        expected.error_class,
        expected.message,
    )
