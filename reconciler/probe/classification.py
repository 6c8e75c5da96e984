"""Error classes for probe failures: which class a failure belongs to, a one-line message and a hint.

`probing.py` calls `classify_failure` (`authserver.py` its shorthand `classify`) with whatever escaped a probe
(often nested exception groups from the SDK's task groups) plus the HTTP trace; our own code raises
`ProbeFailure` when it already knows the class. Classes:

    transport   DNS failure, refused connection, HTTP 404/405/5xx without a JSON-RPC body, dropped connection
    tls         certificate or handshake errors
    auth        HTTP 401/403, OAuth discovery problems (e.g. an issuer mismatch)
    insufficient_scope
                HTTP 403 with a Bearer `insufficient_scope` challenge: the token is good but lacks a scope; the
                scopes the challenge names come back with the class (SEP-835 step-up)
    downstream  the server answered with a JSON-RPC error
    timeout     connect, request or whole-probe timeout
    protocol    the server answers but not in MCP (HTML, invalid JSON-RPC, too large, past the page bounds)
    blocked     the SSRF guard refused the destination before connecting
    internal    a fault in the reconciler (or the SDK) itself while probing this server; no other server is touched

Messages never echo request headers; `probing.py` additionally scrubs the target's secret values from them.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx2
import mcp_types
import pydantic
import websockets.exceptions
from mcp.client.auth import OAuthFlowError
from mcp.shared.exceptions import MCPError

from reconciler.errors import ErrorClass as ErrorClass  # re-exported: its home before it moved down
from reconciler.errors import one_line as one_line
from reconciler.probe.challenges import MalformedChallenge, challenged_scopes, parse_challenges
from reconciler.probe.hints import HINTS as HINTS  # re-exported: its home before it moved
from reconciler.probe.ssrf import BlockedDestination
from reconciler.probe.tracing import HttpExchange, HttpTrace

_Found = TypeVar("_Found", bound=BaseException)
_NOISE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, GeneratorExit)


class ProbeFailure(Exception):
    """A failure our own code has already classified (bounds exceeded, issuer mismatch, oversize document)."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class: ErrorClass = error_class
        self.message = message


@dataclass(frozen=True)
class FailureContext:
    """What the classifier needs to word a message: where the probe was and with which limits."""

    url: str
    stage: str
    sent_credentials: bool
    connect_timeout: float
    request_timeout: float
    total_timeout: float


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, so a wrapped root cause (an SSL error under a ConnectError) is found."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find(leaves: list[BaseException], kind: type[_Found]) -> _Found | None:
    for leaf in leaves:
        for link in _chain(leaf):
            if isinstance(link, kind):
                return link
    return None


@dataclass(frozen=True)
class Classified:
    """A failure's class and one-line message, plus the scopes an `insufficient_scope` challenge named."""

    error_class: ErrorClass
    message: str
    challenged_scopes: tuple[str, ...] = ()


def classify(exc: BaseException, *, trace: HttpTrace | None, context: FailureContext) -> tuple[ErrorClass, str]:
    """The class and one-line message for a failed probe; see the module docstring for the classes."""
    classified = classify_failure(exc, trace=trace, context=context)
    return classified.error_class, classified.message


def classify_failure(exc: BaseException, *, trace: HttpTrace | None, context: FailureContext) -> Classified:
    """`classify`, keeping the scopes a `403 insufficient_scope` challenge named."""
    found = _classify(exc, trace=trace, context=context)
    if isinstance(found, Classified):
        return dataclasses.replace(found, message=one_line(found.message))
    error_class, message = found
    return Classified(error_class, one_line(message))


def _classify(
    exc: BaseException, *, trace: HttpTrace | None, context: FailureContext
) -> tuple[ErrorClass, str] | Classified:
    if trace is not None and trace.unanswered and context.stage == "connecting":
        # The connection was open and a request sent: the server accepted TCP, then said nothing.
        context = dataclasses.replace(context, stage="waiting for the response")
    all_leaves = [*_leaves(exc), *(trace.errors if trace else ())]
    leaves = [leaf for leaf in all_leaves if not isinstance(leaf, _NOISE)] or all_leaves

    if (failure := _find(leaves, ProbeFailure)) is not None:
        return failure.error_class, failure.message
    if (blocked := _find(leaves, BlockedDestination)) is not None:
        return "blocked", f"refused to connect: {blocked}"
    if (tls := _find(leaves, ssl.SSLError)) is not None:
        return "tls", f"TLS handshake with {_host(context.url)} failed: {_ssl_reason(tls)}"
    if (status_error := _find(leaves, httpx2.HTTPStatusError)) is not None:
        response = status_error.response
        exchange = HttpExchange(
            method=response.request.method,
            url=context.url,
            status=response.status_code,
            reason=response.reason_phrase,
            content_type=response.headers.get("content-type", "").lower(),
            www_authenticate=response.headers.get("www-authenticate"),
        )
        return _from_exchange(exchange, context)
    if (ws_status := _find(leaves, websockets.exceptions.InvalidStatus)) is not None:
        ws_response = ws_status.response
        exchange = HttpExchange(
            method="GET",
            url=context.url,
            status=ws_response.status_code,
            reason=ws_response.reason_phrase,
            content_type=ws_response.headers.get("content-type", "").lower(),
            www_authenticate=ws_response.headers.get("www-authenticate"),
        )
        if 200 <= exchange.status < 300:
            return "protocol", f"server answered HTTP {exchange.status} instead of a websocket upgrade"
        return _from_exchange(exchange, context)
    if (oauth := _find(leaves, OAuthFlowError)) is not None:
        return "auth", f"OAuth failed: {oauth}"

    mcp_error = _find(leaves, MCPError)
    timed_out = _timeout_message(leaves, context)
    http_failure = trace.last_failure() if trace else None
    if http_failure is not None and (mcp_error is not None or timed_out is not None):
        # The SDK reduced an HTTP answer to a generic JSON-RPC error (or, over SSE, to a timeout).
        return _from_exchange(http_failure, context)
    if mcp_error is not None and mcp_error.code != mcp_types.REQUEST_TIMEOUT:
        return _from_mcp_error(mcp_error, context)
    if timed_out is not None:
        return "timeout", timed_out
    if (closed := _find(leaves, websockets.exceptions.ConnectionClosed)) is not None:
        return "transport", f"websocket closed by the server while {context.stage} ({closed})"
    if (handshake := _find(leaves, websockets.exceptions.InvalidHandshake)) is not None:
        return "protocol", f"websocket handshake failed: {handshake}"
    if (sse := _find(leaves, httpx2.SSEError)) is not None:
        return "protocol", f"server did not answer with an MCP event stream: {sse}"
    if (transport := _find(leaves, httpx2.TransportError)) is not None:
        return "transport", _transport_message(transport, context)
    if (invalid := _find(leaves, pydantic.ValidationError)) is not None:
        return "protocol", f"server sent a message that is not valid MCP while {context.stage}: {invalid.title}"
    if (os_error := _find(leaves, OSError)) is not None:
        return "transport", f"network error while {context.stage}: {os_error.strerror or os_error}"
    first = leaves[0] if leaves else exc
    # Nothing the server did explains it: say so, rather than blame the server's protocol.
    return "internal", f"unexpected failure while {context.stage}: {type(first).__name__}: {first}"


SSE_HINT = "this looks like an SSE endpoint: set transport: sse"
STREAMABLE_HINT = "this looks like a streamable HTTP endpoint: set transport: streamable-http"


def hint_for(error_class: ErrorClass, *, transport: str, trace: HttpTrace | None) -> str:
    """The hint for a failed probe: the class's own, or the other transport when the HTTP answer points there.

    An SSE server's `/sse` endpoint refuses the POST a streamable HTTP client sends (404, or 405); a streamable HTTP
    endpoint refuses the session-less GET an SSE client opens with (400, or 405/406).
    """
    if trace is None or error_class != "transport":
        return HINTS[error_class]
    for exchange in reversed(trace.exchanges):
        last_segment = exchange.url.rstrip("/").rsplit("/", 1)[-1].lower()
        posted = exchange.method == "POST" and exchange.status in (404, 405)
        if transport == "streamable-http" and posted and last_segment == "sse":
            return SSE_HINT
        if transport == "sse" and exchange.method == "GET" and exchange.status in (400, 405, 406):
            return STREAMABLE_HINT
    return HINTS[error_class]


def _from_exchange(exchange: HttpExchange, context: FailureContext) -> tuple[ErrorClass, str] | Classified:
    status = f"HTTP {exchange.status}{' ' + exchange.reason if exchange.reason else ''}"
    scopes = challenged_scopes(exchange.www_authenticate) if exchange.status == 403 else None
    if scopes is not None:
        named = f"it names scope(s) {' '.join(scopes)}" if scopes else "it names no scopes"
        message = f"server refused the token for insufficient scope ({status}): {named}"
        return Classified("insufficient_scope", message, scopes)
    if exchange.status in (401, 403):
        detail = _challenge_error(exchange.www_authenticate)
        said = f"{status}{': ' + detail if detail else ''}"
        if exchange.status == 401 and not context.sent_credentials:
            return "auth", f"server requires authentication ({said}) and no credentials were sent"
        if exchange.status == 401:
            return "auth", f"server rejected the credentials ({said})"
        return "auth", f"server refused access ({said})"
    if 200 <= exchange.status < 300:
        kind = exchange.content_type.split(";")[0] or "no content type"
        return "protocol", f"server answered {status} with {kind}, not MCP, at {exchange.url}"
    return "transport", f"server answered {status} at {exchange.url}"


def _from_mcp_error(error: MCPError, context: FailureContext) -> tuple[ErrorClass, str]:
    if error.code == mcp_types.CONNECTION_CLOSED:
        return "transport", f"connection closed while {context.stage}: {error.message}"
    if error.code == mcp_types.PARSE_ERROR:
        return "protocol", f"server sent something that is not JSON-RPC while {context.stage}: {error.message}"
    return "downstream", f"server returned JSON-RPC error {error.code} while {context.stage}: {error.message}"


def _timeout_message(leaves: list[BaseException], context: FailureContext) -> str | None:
    if _find(leaves, httpx2.ConnectTimeout) is not None:
        return f"connecting to {_host(context.url)} timed out after {context.connect_timeout:g} s (connect_timeout)"
    if _find(leaves, httpx2.PoolTimeout) is not None:
        return f"no free connection within {context.connect_timeout:g} s while {context.stage}"
    if _find(leaves, httpx2.TimeoutException) is not None:
        return f"no answer within {context.request_timeout:g} s (request_timeout) while {context.stage}"
    mcp_error = _find(leaves, MCPError)
    if mcp_error is not None and mcp_error.code == mcp_types.REQUEST_TIMEOUT:
        return f"no answer within {context.request_timeout:g} s (request_timeout) while {context.stage}"
    if _find(leaves, TimeoutError) is not None:
        return f"no answer within {context.total_timeout:g} s (total_timeout) while {context.stage}"
    return None


def _transport_message(error: httpx2.TransportError, context: FailureContext) -> str:
    if isinstance(error, httpx2.RemoteProtocolError):
        return f"server broke the HTTP exchange while {context.stage}: {error}"
    if isinstance(error, httpx2.ReadError | httpx2.WriteError):
        return f"connection to {_host(context.url)} failed while {context.stage}: {error or type(error).__name__}"
    return str(error) or f"cannot connect to {_host(context.url)}"


def _ssl_reason(error: ssl.SSLError) -> str:
    # Set by the ssl module on real handshakes only.
    verify_message = getattr(error, "verify_message", None)
    if isinstance(error, ssl.SSLCertVerificationError) and verify_message:
        return f"certificate verify failed: {verify_message}"
    reason = getattr(error, "reason", None)
    return (reason or str(error)).lower().replace("_", " ")


def _challenge_error(header: str | None) -> str | None:
    """The `error` (and scope) of the first challenge that has one: safe to show, it names the problem, not the
    token. A header that does not parse is still searched for an `error`, so a sloppy server is not silenced."""
    if not header:
        return None
    try:
        challenges = parse_challenges(header)
    except MalformedChallenge:
        error = re.search(r'error="?([A-Za-z0-9_.-]+)', header)
        return error.group(1) if error else None
    for challenge in challenges:
        if (code := challenge.param("error")) is not None:
            scope = challenge.param("scope")
            return f"{code}, scope {scope}" if scope is not None else code
    return None


def _host(url: str) -> str:
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL:
        return url
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
