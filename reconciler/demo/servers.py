"""The demo MCP servers: plain streamable HTTP, SSE, and a bearer-protected server that publishes RFC 9728
protected-resource metadata pointing at a local authorization-server metadata endpoint (RFC 8414).

`start_demo_servers()` is what the CLI demo calls; tests reuse the builders (`build_tools_server`,
`build_secure_server`, `authorization_server_metadata_app`). The protected server accepts exactly one token,
`DEMO_BEARER_TOKEN`: it is fixed and documented because the demo's example folder must be able to reference it
from a Secret manifest. It protects nothing; never reuse it for a real server.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from mcp.server import MCPServer
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from reconciler.demo.serving import ServerLoop

DEMO_BEARER_TOKEN = "mcp-reconciler-demo-token"
"""The only token the demo's protected server accepts (public on purpose: it is demo data)."""
DEMO_SCOPE = "mcp:tools"
MCP_PATH = "/mcp"
SSE_PATH = "/sse"


@dataclass(frozen=True)
class DemoServers:
    """Where the demo servers listen. `protected_url` wants `Authorization: Bearer <bearer_token>`."""

    tools_url: str
    events_url: str
    protected_url: str
    authorization_server_url: str
    bearer_token: str = DEMO_BEARER_TOKEN


@contextmanager
def _host_logging_kept() -> Iterator[None]:
    """`MCPServer()` calls `logging.basicConfig` (rich handler, INFO); the program hosting a demo server keeps the
    logging it configured itself."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def build_tools_server(name: str = "demo-tools", *, version: str = "1.0.0") -> MCPServer:
    """A small, useful toolbox: the plain streamable-HTTP demo server (also served over SSE)."""
    with _host_logging_kept():
        server = MCPServer(name, version=version, instructions="Small utilities for trying out agents.")

    @server.tool(title="Add numbers")
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool(title="Echo")
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool(title="Count words")
    def word_count(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    @server.tool(title="Current UTC time")
    def utc_now() -> str:
        """The current time in UTC, ISO 8601."""
        return dt.datetime.now(dt.UTC).isoformat()

    return server


def build_events_server() -> MCPServer:
    """The SSE demo server: the same toolbox under another name, so the demo table tells them apart."""
    return build_tools_server("demo-events")


class StaticTokenVerifier:
    """Accepts one fixed token (compared in constant time) as issued for this server's resource."""

    def __init__(self, token: str, *, resource: str, scopes: Sequence[str]) -> None:
        self._token = token
        self._resource = resource
        self._scopes = list(scopes)

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return None
        return AccessToken(token=token, client_id="demo-client", scopes=self._scopes, resource=self._resource)


def build_secure_server(
    *, resource_url: str, issuer_url: str, token: str = DEMO_BEARER_TOKEN, name: str = "demo-secure"
) -> MCPServer:
    """A bearer-protected toolbox: 401 with `WWW-Authenticate: Bearer ... resource_metadata=...` without the token,
    and RFC 9728 metadata naming `issuer_url` as its authorization server. URLs stay plain strings so the
    advertised issuer has no trailing slash added (RFC 8414 compares issuers exactly)."""
    with _host_logging_kept():
        server = MCPServer(
            name,
            version="1.0.0",
            token_verifier=StaticTokenVerifier(token, resource=resource_url, scopes=[DEMO_SCOPE]),
            auth=AuthSettings(
                issuer_url=issuer_url,
                resource_server_url=resource_url,
                required_scopes=[DEMO_SCOPE],
                validate_token_resource=True,
            ),
        )

    @server.tool(title="Who am I")
    def whoami() -> str:
        """Say which client the token belongs to."""
        return "demo-client"

    @server.tool(title="Secret fortune")
    def fortune() -> str:
        """A fortune only authenticated agents may read."""
        return "Declarative beats clicking."

    return server


def authorization_server_metadata_app(
    issuer: str,
    *,
    grant_types: Sequence[str] = ("authorization_code", "client_credentials", "refresh_token"),
    auth_methods: Sequence[str] = ("client_secret_basic", "client_secret_post", "none"),
    scopes: Sequence[str] = (DEMO_SCOPE,),
) -> ASGIApp:
    """RFC 8414 metadata for a local authorization server (metadata only: enough for discovery)."""
    base = issuer.rstrip("/")
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "registration_endpoint": f"{base}/register",
        "scopes_supported": list(scopes),
        "response_types_supported": ["code"],
        "grant_types_supported": list(grant_types),
        "token_endpoint_auth_methods_supported": list(auth_methods),
        "code_challenge_methods_supported": ["S256"],
    }

    async def metadata(request: Request) -> Response:
        return JSONResponse(document)

    return Starlette(routes=[Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"])])


DEMO_PORTS = (18180, 18181, 18182, 18183)
"""Where `mcp-reconciler demo` serves (tools, events, protected, authorization server): the quickstart
example folder points at these, so it can be applied by hand while the demo servers run."""


def _socket_for(port: int | None) -> socket.socket | None:
    if port is None:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot serve the demo on 127.0.0.1:{port}: {err.strerror}") from err
    return sock


def host_demo_servers(loop: ServerLoop, *, ports: Sequence[int] | None = None) -> DemoServers:
    """Start the three demo servers and the authorization-server metadata on a running `ServerLoop`.

    `ports` pins (tools, events, protected, authorization server); by default each takes an ephemeral port.
    """
    tools_port, events_port, protected_port, issuer_port = ports if ports is not None else (None,) * 4
    tools_base = loop.serve_asgi(
        lambda url: build_tools_server().streamable_http_app(host="127.0.0.1"), sock=_socket_for(tools_port)
    )
    events_base = loop.serve_asgi(
        lambda url: build_events_server().sse_app(host="127.0.0.1"), sock=_socket_for(events_port)
    )
    issuer = loop.serve_asgi(lambda url: authorization_server_metadata_app(url), sock=_socket_for(issuer_port))
    protected_base = loop.serve_asgi(
        lambda url: build_secure_server(resource_url=url + MCP_PATH, issuer_url=issuer).streamable_http_app(
            host="127.0.0.1"
        ),
        sock=_socket_for(protected_port),
    )
    return DemoServers(
        tools_url=tools_base + MCP_PATH,
        events_url=events_base + SSE_PATH,
        protected_url=protected_base + MCP_PATH,
        authorization_server_url=issuer,
    )


@contextmanager
def start_demo_servers(*, ports: Sequence[int] | None = None) -> Iterator[DemoServers]:
    """Run the demo servers on 127.0.0.1 (ephemeral ports unless `ports` is given) until the block exits."""
    with ServerLoop() as loop:
        yield host_demo_servers(loop, ports=ports)
