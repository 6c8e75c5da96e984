"""A per-probe record of the HTTP exchanges and connection errors the transports saw.

The MCP SDK's streamable-HTTP transport turns HTTP statuses into generic JSON-RPC errors and its SSE transport
swallows failed POSTs, so `transports.py` records every response (through an httpx2 response hook) and every
connection-level error here, and `classification.py` reads it to name the real cause. Only non-secret facts are
kept: method, URL without query, status, content type and the `WWW-Authenticate` challenge.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx2

MCP_CONTENT_TYPES = ("application/json", "text/event-stream")


def display_url(url: httpx2.URL | str) -> str:
    """A URL fit for messages and logs: no userinfo, query or fragment, which can carry credentials.

    Never raises: it runs in log lines and error messages, where a URL httpx2 refuses (a host such as
    `999.0.0.1`) must still be shown rather than turn one server's bad URL into everyone's failure.
    """
    text = str(url)
    if "@" in text or "?" in text or "#" in text:
        return _shown(text)  # not cached: userinfo and queries can carry credentials, which a cache would keep
    return _shown_cached(text)


def _shown(url: str) -> str:
    try:
        parsed = httpx2.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx2.InvalidURL, ValueError, TypeError):
        pass
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparsable URL>"


_shown_cached = functools.lru_cache(maxsize=4096)(_shown)
"""Pure, and asked for the same few URLs on every request of a probe (the trace, the size-limit message, the log
line): parsing them again each time was about a tenth of `probe_many`'s own CPU time at 200 servers."""


@dataclass(frozen=True)
class HttpExchange:
    """One HTTP response, as far as classification needs it."""

    method: str
    url: str
    status: int
    reason: str
    content_type: str
    www_authenticate: str | None

    @property
    def is_json(self) -> bool:
        return self.content_type.startswith("application/json")

    @property
    def speaks_mcp(self) -> bool:
        """A success answer in a content type an MCP endpoint uses (202/204 carry no body to judge)."""
        return self.status in (202, 204) or self.content_type.startswith(MCP_CONTENT_TYPES)


@dataclass
class HttpTrace:
    """What one probe's HTTP traffic looked like; appended to by hooks, read after a failure."""

    exchanges: list[HttpExchange] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    requests_sent: int = 0
    answers_started: int = 0

    @property
    def unanswered(self) -> int:
        """Requests sent on an open connection whose response headers never came (a server that accepted the
        connection and then said nothing). Failed waits still count: that is the case to report."""
        return self.requests_sent - self.answers_started

    async def on_connection_event(self, name: str, info: dict[str, object]) -> None:
        """httpcore2's per-request `trace` extension: says whether a request got as far as waiting for an answer."""
        if name.endswith(".receive_response_headers.started"):
            self.requests_sent += 1
        elif name.endswith(".receive_response_headers.complete"):
            self.answers_started += 1

    async def on_response(self, response: httpx2.Response) -> None:
        """httpx2 response hook: runs before the body is read, so it costs nothing and works for streams."""
        self.exchanges.append(
            HttpExchange(
                method=response.request.method,
                url=display_url(response.request.url),
                status=response.status_code,
                reason=response.reason_phrase,
                content_type=response.headers.get("content-type", "").lower(),
                www_authenticate=response.headers.get("www-authenticate"),
            )
        )

    def first_answer_from(self, url: str) -> HttpExchange | None:
        """The first response from `url` itself (what an unauthenticated client was told)."""
        wanted = display_url(url).rstrip("/")
        return next((item for item in self.exchanges if item.url.rstrip("/") == wanted), None)

    def last_failure(self) -> HttpExchange | None:
        """The last answer that explains a failure: an auth refusal, an HTTP error without a JSON-RPC body, or a
        success in a content type no MCP endpoint uses. Session clean-up and an unsupported GET stream don't count.
        """
        for item in reversed(self.exchanges):
            if item.method == "DELETE" or (item.method == "GET" and item.status == 405):
                continue
            if item.status in (401, 403):
                return item
            if item.status >= 400 and not item.is_json:
                return item
            if 200 <= item.status < 300 and not item.speaks_mcp:
                return item
        return None
