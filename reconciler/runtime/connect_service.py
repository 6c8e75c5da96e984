"""The connect service: a platform starts a member's login on an authorization-code server, the member's browser
comes back to `{public URL}/oauth/callback`, and a UI polls until it is done (OpenWork's flow, ThinkWork's
per-user tokens). One route set of `serve`, beside the MCP endpoint and the Registry API.

    POST   /oauth/connections  {namespace, server, member | shared: true, connection?} → 201 {id, authorizationUrl, …}
    GET    /oauth/connections/{id}                                → {id, status, server, member, error}
    DELETE /oauth/connections  {namespace, server, member | shared: true, connection?} → {disconnected, revocation}

`connection` names one of the server's `perMember` MCPConnections: the member logs in through it and the tokens
are kept for it (as a connect link naming a connection does); a disconnect naming it clears only those.
    GET    /oauth/callback          (the authorization server's redirect) → a small page that says how it went
    GET    /oauth/connect?link=…    (a member's browser, from a resolution's connectUrl) → 302 to a fresh login

The three `/oauth/connections` routes take the platform's bearer token; the callback takes none, and is held to
the `state` it carries: signed by this process (HMAC, a key of its own), expiring (`LOGIN_SECONDS`) and single
use (the login is forgotten when its callback arrives). `/oauth/connect` takes no token either: its `link` is a
connect link (`credentials/connect_links.py`) signed with a key derived from the registry's store key, which names
the namespace, server and member and expires; each opening begins a new login with its own state and PKCE pair,
and gives the browser a cookie its callback must bring back (`login_cookie`).
Pending logins live in this process's memory, bounded (`MAX_PENDING`): run one `serve` replica, or route the
callback to the one that started the login. The logins
themselves are the engine's (`engine/connecting.py`), handed in as a `Connector`, since the runtime does not
import the engine; they block, so they run on worker threads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.credentials.connect_links import CONNECT_PATH, LinkRefused, read_link
from reconciler.credentials.connecting import signed_state, state_holds
from reconciler.errors import ReconcilerError
from reconciler.records import ORGANIZATION_MEMBER
from reconciler.runtime.registry_api import CallerDirectory

CONNECTIONS_PATH = "/oauth/connections"
CALLBACK_PATH = "/oauth/callback"
LOGIN_SECONDS = 600
"""How long a started login may take before its state stops holding."""
MAX_PENDING = 1000
"""Logins waiting for their callback at once; more are refused (503) rather than held in memory."""
MAX_BODY_BYTES = 4096

Status = Literal["pending", "connected", "failed"]


class PendingLogin(Protocol):
    """What the connector begun: opaque here, except the URL to open."""

    @property
    def authorization_url(self) -> str: ...


class Connector(Protocol):
    """The engine's logins, as the service needs them (blocking calls; the service runs them on threads)."""

    def begin(
        self,
        *,
        namespace: str,
        server: str,
        member: str,
        redirect_uri: str,
        state: str,
        connection: str | None = None,
    ) -> PendingLogin: ...

    def finish(self, pending: PendingLogin, callback: dict[str, str]) -> None: ...

    def disconnect(self, *, namespace: str, server: str, member: str, connection: str | None = None) -> str: ...


@dataclass
class Connection:
    """One login started through the service, as a UI polls it."""

    id: str
    namespace: str
    server: str
    member: str
    state: str = field(repr=False)
    expires_at: float
    pending: PendingLogin | None = field(default=None, repr=False)
    status: Status = "pending"
    error: str | None = None
    connection: str | None = None
    browser: str | None = field(default=None, repr=False)
    """The nonce the opening browser holds in a cookie (`login_cookie`), for logins begun by a connect link."""

    def document(self) -> dict[str, Any]:
        document = {
            "id": self.id,
            "status": self.status,
            "namespace": self.namespace,
            "server": self.server,
            "member": self.member,
            "error": self.error,
        }
        return document if self.connection is None else {**document, "connection": self.connection}


@dataclass(frozen=True)
class _Refusal:
    status: int
    message: str


class ConnectService:
    """The routes above over one `Connector`; `clock` is injectable so expiry can be tested without waiting.
    `link_key` (`linking.registry_link_key`) opens connect links; without it `/oauth/connect` answers 404."""

    def __init__(
        self,
        connector: Connector,
        *,
        public_url: str,
        callers: CallerDirectory,
        clock: Callable[[], float] = time.time,
        link_key: bytes | None = None,
    ) -> None:
        self._connector = connector
        self._public_url = public_url.rstrip("/")
        self._callers = callers
        self._clock = clock
        self._link_key = link_key
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._by_id: dict[str, Connection] = {}
        self._by_state: dict[str, Connection] = {}

    @property
    def redirect_uri(self) -> str:
        return f"{self._public_url}{CALLBACK_PATH}"

    def handles(self, path: str) -> bool:
        return path in (CALLBACK_PATH, CONNECTIONS_PATH, CONNECT_PATH) or path.startswith(CONNECTIONS_PATH + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        if path == CALLBACK_PATH:
            return await self._callback(request) if method == "GET" else _not_allowed("GET")
        if path == CONNECT_PATH:
            return await self._open_link(request) if method == "GET" else _not_allowed("GET")
        caller = self._callers.caller_for(request.headers.get("authorization", ""))
        if caller is None or not caller.platform:
            return JSONResponse(
                {"error": "the platform's bearer token is required"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        if path == CONNECTIONS_PATH:
            if method == "POST":
                return await self._start(request)
            if method == "DELETE":
                return await self._disconnect(request)
            return _not_allowed("POST, DELETE")
        if method != "GET":
            return _not_allowed("GET")
        found = self._by_id.get(path.removeprefix(CONNECTIONS_PATH + "/"))
        if found is None:
            return JSONResponse({"error": "no such connection (unknown, or forgotten after it expired)"}, 404)
        return JSONResponse(found.document())

    async def _start(self, request: Request) -> Response:
        fields = await _member_fields(request)
        if isinstance(fields, Response):
            return fields
        namespace, server, member, through = fields
        connection = await self._begin(namespace=namespace, server=server, member=member, through=through)
        if isinstance(connection, _Refusal):
            return JSONResponse({"error": connection.message}, connection.status)
        assert connection.pending is not None
        document = {
            **connection.document(),
            "authorizationUrl": connection.pending.authorization_url,
            "statusUrl": f"{self._public_url}{CONNECTIONS_PATH}/{connection.id}",
            "expiresIn": LOGIN_SECONDS,
        }
        return JSONResponse(document, 201, headers={"cache-control": "no-store"})

    async def _open_link(self, request: Request) -> Response:
        """A member opened a connect link: begin the login it names and send the browser to the authorization
        server; a link that does not hold gets a page saying why, and nothing is begun or stored."""
        if self._link_key is None:
            return _page(404, "Not connected", "This service does not open connect links.")
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        try:
            target = read_link(self._link_key, request.query_params.get("link", ""), now=now)
        except LinkRefused as err:
            return _page(400, "Not connected", str(err))
        browser = secrets.token_urlsafe(32)
        connection = await self._begin(
            namespace=target.namespace,
            server=target.server,
            member=target.member,
            through=target.connection,
            browser=browser,
        )
        if isinstance(connection, _Refusal):
            return _page(connection.status, "Not connected", connection.message)
        assert connection.pending is not None
        # The link is a capability: keep it out of the Referer the authorization server would see.
        response = RedirectResponse(
            connection.pending.authorization_url,
            302,
            headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
        )
        # Only the browser that opened the link may finish its login: otherwise a member could hand someone else
        # the authorization URL and have that person's account stored as their own.
        response.set_cookie(
            login_cookie(connection.state),
            browser,
            max_age=LOGIN_SECONDS,
            path=CALLBACK_PATH,
            secure=self._public_url.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
        return response

    async def _begin(
        self, *, namespace: str, server: str, member: str, through: str | None = None, browser: str | None = None
    ) -> Connection | _Refusal:
        """A login begun through the connector (on the server, or `through` one of its perMember connections) and
        remembered under its signed state until its callback."""
        now = self._clock()
        state = signed_state(self._key, expires_at=now + LOGIN_SECONDS)
        with self._lock:
            self._forget_expired(now)
            if len(self._by_state) >= MAX_PENDING:
                return _Refusal(503, "too many logins in progress; try again shortly")
        try:
            pending = await anyio.to_thread.run_sync(
                lambda: self._connector.begin(
                    namespace=namespace,
                    server=server,
                    member=member,
                    redirect_uri=self.redirect_uri,
                    state=state,
                    connection=through,
                )
            )
        except ReconcilerError as err:
            return _Refusal(400, str(err))
        connection = Connection(
            id=secrets.token_urlsafe(16),
            namespace=namespace,
            server=server,
            member=member,
            state=state,
            expires_at=now + LOGIN_SECONDS,
            pending=pending,
            connection=through,
            browser=browser,
        )
        with self._lock:
            self._by_id[connection.id] = connection
            self._by_state[state] = connection
        return connection

    async def _callback(self, request: Request) -> Response:
        params = dict(request.query_params)
        state = params.get("state", "")
        now = self._clock()
        with self._lock:
            connection = self._by_state.pop(state, None) if state_holds(self._key, state, now=now) else None
        if connection is None or connection.pending is None:
            return _page(400, "Not connected", "This login link is unknown, already used or expired: start again.")
        presented = request.cookies.get(login_cookie(state), "")
        if connection.browser is not None and not hmac.compare_digest(presented, connection.browser):
            connection.pending, connection.status = None, "failed"
            connection.error = "the login was finished in another browser than the one that opened the connect link"
            refused = "This login was started in another browser: open your connect link again, in this browser."
            return _page(400, "Not connected", refused)
        pending, connection.pending = connection.pending, None
        try:
            await anyio.to_thread.run_sync(lambda: self._connector.finish(pending, params))
        except ReconcilerError as err:
            connection.status, connection.error = "failed", str(err)
            return _page(400, "Not connected", str(err))
        connection.status = "connected"
        return _page(200, "Connected", f"Your account is connected to {connection.server}. You can close this window.")

    async def _disconnect(self, request: Request) -> Response:
        fields = await _member_fields(request)
        if isinstance(fields, Response):
            return fields
        namespace, server, member, through = fields
        try:
            revocation = await anyio.to_thread.run_sync(
                lambda: self._connector.disconnect(
                    namespace=namespace, server=server, member=member, connection=through
                )
            )
        except ReconcilerError as err:
            return JSONResponse({"error": str(err)}, 400)
        return JSONResponse({"disconnected": True, "revocation": revocation})

    def _forget_expired(self, now: float) -> None:
        for state, connection in list(self._by_state.items()):
            if connection.expires_at <= now:
                del self._by_state[state]
                connection.pending = None
                if connection.status == "pending":
                    connection.status, connection.error = "failed", "the login expired before it was completed"
        for key, connection in list(self._by_id.items()):
            if connection.expires_at + LOGIN_SECONDS <= now:
                del self._by_id[key]


class ConnectRoutes:
    """ASGI: the connect service's paths go to it, every other request to `app`."""

    def __init__(self, app: ASGIApp, service: ConnectService) -> None:
        self._app = app
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._service.handles(scope.get("path", "")):
            await self._service(scope, receive, send)
            return
        await self._app(scope, receive, send)


async def _member_fields(request: Request) -> tuple[str, str, str, str | None] | Response:
    """`{namespace, server, member}` (or `shared: true` for the organization's connection instead of a member) and
    the optional `connection` (a `perMember` MCPConnection of the server) from a JSON body, or the 4xx answer that
    says what is wrong with it."""
    body = await _json_body(request)
    if isinstance(body, Response):
        return body
    through = body.get("connection")
    if through is not None and (not isinstance(through, str) or not through):
        return JSONResponse({"error": "connection: not a string (the name of a perMember MCPConnection)"}, 400)
    if body.get("shared") is True:
        if "member" in body:
            return JSONResponse({"error": "give a member or shared: true, not both"}, 400)
        if through is not None:
            refused = "shared: true connects the organization on the server; a perMember connection is for members"
            return JSONResponse({"error": refused}, 400)
        body = {**body, "member": ORGANIZATION_MEMBER}
    fields = _fields(body, "namespace", "server", "member")
    if isinstance(fields, Response):
        return fields
    namespace, server, member = fields
    return namespace, server, member, through


async def _json_body(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return JSONResponse({"error": f"the body is limited to {MAX_BODY_BYTES} bytes"}, 413)
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, 400)
    if not isinstance(document, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, 400)
    return document


def _fields(body: dict[str, Any], *names: str) -> tuple[str, ...] | Response:
    missing = [name for name in names if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        return JSONResponse({"error": f"missing or not a string: {', '.join(missing)}"}, 400)
    return tuple(str(body[name]) for name in names)


def login_cookie(state: str) -> str:
    """The cookie holding the browser nonce of the login with this state: one per login, so a member may open
    several links at once."""
    return f"mcp_reconciler_login_{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _not_allowed(allow: str) -> Response:
    return Response(status_code=405, headers={"allow": allow})


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset=utf-8><title>mcp-reconciler</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    )
    return HTMLResponse(body, status, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})
