"""Talking to authorization servers: one bounded request through the probe's SSRF-guarded HTTP, and OAuth error
answers turned into the credentials package's errors. With the probe, the only module that uses the HTTP client
(httpx2) and the MCP SDK's OAuth models; the rest of the package talks through the functions here.

`tokens.py` (token endpoint) and `registration.py` (RFC 7591 / 7592 endpoints) call `send` (and
`read_issued_client` for a registration's answer); `preparing.py` calls `discover` and `origin`; both hand over the
secret values of the request so that anything a server echoes back is redacted before it reaches an error
message. Requests never follow redirects (an authorization server has no business redirecting a token request),
bodies are capped like every probe response, and the whole exchange is bounded by the probe's `total_timeout`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import httpx2
import pydantic
from mcp.shared.auth import OAuthClientInformationFull

from reconciler.credentials.errors import (
    AuthServerBlocked,
    AuthServerUnavailable,
    InvalidClient,
    OAuthRejected,
    redact,
)
from reconciler.probe import AuthDiscovery, ProbeHttp, ProbeSettings, Transport
from reconciler.probe.classification import FailureContext, classify, one_line
from reconciler.probe.discovery import discover_auth, fetch_challenge
from reconciler.probe.ssrf import url_problem
from reconciler.probe.tracing import HttpTrace, display_url
from reconciler.probe.transports import request_timeout

logger = logging.getLogger(__name__)

MAX_DESCRIPTION = 200
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class AuthServerAccess:
    """How the reconciler reaches authorization servers: the probe's shared HTTP, its limits, and whether the
    server being prepared may use private addresses (its `spec.network.allowPrivate`)."""

    http: ProbeHttp
    settings: ProbeSettings
    allow_private: bool = False

    @property
    def private_allowed(self) -> bool:
        """Both switches, as for probes: the reconciler-wide flag and the server's own."""
        return self.settings.allow_private_networks and self.allow_private


@dataclass(frozen=True)
class AuthServerAnswer:
    """One answer: status, the JSON object body (if it was one) and the `WWW-Authenticate` header."""

    status: int
    document: Mapping[str, Any] | None = field(repr=False)
    www_authenticate: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def send(
    access: AuthServerAccess,
    method: str,
    url: str,
    *,
    purpose: str,
    form: Mapping[str, str | Sequence[str]] | None = None,
    json_body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Sequence[str | None] = (),
) -> AuthServerAnswer:
    """Send one request to an authorization server. `purpose` words errors ("the token request").

    Raises `AuthServerBlocked` when the SSRF guard refuses the URL and `AuthServerUnavailable` for transport
    failures and timeouts; HTTP error answers are returned, for the caller to interpret (`rejection`).
    """

    async def request(client: httpx2.AsyncClient) -> httpx2.Response:
        return await client.request(
            method,
            url,
            data=dict(form) if form is not None else None,
            json=dict(json_body) if json_body is not None else None,
            headers={"accept": "application/json", **(headers or {})},
        )

    response = await guarded(access, url, purpose=purpose, action=request, secrets=secrets)
    logger.debug("%s: %s %s answered %d", purpose, method, display_url(url), response.status_code)
    return AuthServerAnswer(
        status=response.status_code,
        document=_json_object(response),
        www_authenticate=response.headers.get("www-authenticate"),
    )


async def guarded(
    access: AuthServerAccess,
    url: str,
    *,
    purpose: str,
    action: Callable[[httpx2.AsyncClient], Awaitable[_Result]],
    secrets: Sequence[str | None] = (),
) -> _Result:
    """Run `action` with a fresh SSRF-guarded client, bounded by `total_timeout`, every failure classified like a
    probe failure: `AuthServerBlocked` for the guard, `AuthServerUnavailable` for the rest (an auth-class failure,
    such as an issuer mismatch in discovery, becomes `OAuthRejected`)."""
    problem = url_problem(url)
    if problem is not None:
        raise AuthServerBlocked(f"refused to send {purpose} to {display_url(url)}: {problem}")
    settings = access.settings
    trace = HttpTrace()
    try:
        with anyio.fail_after(settings.total_timeout):
            async with access.http.client(
                allow_private=access.private_allowed,
                trace=trace,
                timeout=request_timeout(settings),
                max_response_bytes=settings.max_response_bytes,
            ) as client:
                return await action(client)
    except Exception as exc:  # every failure is classified; cancellation is a BaseException and passes
        error_class, message = classify(
            exc,
            trace=trace,
            context=FailureContext(
                url=display_url(url),
                stage=f"sending {purpose}",
                sent_credentials=True,
                connect_timeout=settings.connect_timeout,
                request_timeout=settings.request_timeout,
                total_timeout=settings.total_timeout,
            ),
        )
        message = one_line(redact(message, secrets))
        if error_class == "blocked":
            raise AuthServerBlocked(message) from None
        if error_class == "auth":
            raise OAuthRejected(message, endpoint=display_url(url)) from None
        raise AuthServerUnavailable(message, error_class=error_class) from None


async def discover(access: AuthServerAccess, *, server_url: str, transport: Transport) -> AuthDiscovery:
    """The probe's auth discovery for one server (challenge, RFC 9728, RFC 8414), errors as credential errors."""

    async def discover_with(client: httpx2.AsyncClient) -> AuthDiscovery:
        challenge = await fetch_challenge(client, url=server_url, transport=transport)
        return await discover_auth(
            challenge, server_url=server_url, client=client, max_bytes=access.settings.max_response_bytes
        )

    return await guarded(access, server_url, purpose="auth discovery", action=discover_with)


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: the issuer assumed for a registration endpoint nothing else names."""
    parsed = httpx2.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


def read_issued_client(document: Mapping[str, Any] | None) -> OAuthClientInformationFull | None:
    """The client an RFC 7591 registration answer describes (the MCP SDK's model); None when it describes none."""
    try:
        return OAuthClientInformationFull.model_validate({**(document or {}), "issuer": None})
    except pydantic.ValidationError:
        return None


def _json_object(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        document = json.loads(response.content)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def rejection(
    answer: AuthServerAnswer,
    *,
    url: str,
    purpose: str,
    client_id: str | None = None,
    method: str | None = None,
    secrets: Sequence[str | None] = (),
) -> OAuthRejected | AuthServerUnavailable:
    """The error an unsuccessful answer stands for: server trouble is retryable, an OAuth error is not."""
    where = display_url(url)
    document = answer.document or {}
    code = document.get("error") if isinstance(document.get("error"), str) else None
    description = document.get("error_description")
    detail = one_line(redact(str(description), secrets))[:MAX_DESCRIPTION] if isinstance(description, str) else ""
    if answer.status >= 500 or answer.status == 429:
        return AuthServerUnavailable(f"{purpose} to {where} failed on the server's side: HTTP {answer.status}")
    if code == "invalid_client" or (answer.status == 401 and code is None):
        who = f"client {client_id!r}" if client_id else "the client"
        how = f" with {method}" if method else ""
        return InvalidClient(
            f"{where} rejected {who}{how}: invalid_client (wrong client id or secret, or the server does not "
            f"accept this authentication method){': ' + detail if detail else ''}",
            oauth_error="invalid_client",
            endpoint=where,
        )
    if code is not None:
        safe_code = one_line(redact(code, secrets))[:64]
        return OAuthRejected(
            f"{where} refused {purpose}: {safe_code}{': ' + detail if detail else ''}",
            oauth_error=safe_code,
            endpoint=where,
        )
    return OAuthRejected(f"{where} answered {purpose} with HTTP {answer.status} and no OAuth error", endpoint=where)
