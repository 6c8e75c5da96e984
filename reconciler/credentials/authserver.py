"""The authorization-server port: how the credentials package reaches authorization servers without doing HTTP.

`AuthServerClient` is the port, a protocol the engine satisfies with the probe's adapter
(`reconciler.probe.authserver.ProbeAuthServer`, SSRF-guarded and bounded like every probe request).
`AuthServerAccess` pairs it with the server being prepared's `spec.network.allowPrivate`, and turns what the port
reports into this package's errors: a refusal by the SSRF guard is `AuthServerBlocked`, an auth-class failure
`OAuthRejected`, the rest `AuthServerUnavailable`, each message redacted of the request's secret values.
`tokens.py` and `registration.py` decide each request as a value (`AuthServerRequest`, built by pure functions:
`token_request`, `registration_request`, ...) and `AuthServerAccess.perform` sends it; `rejection` and
`failure_error` (pure) read what came back. A decision that needs several answers in turn (an issuer's metadata,
then its token endpoint) is written as pure steps, a generator that yields each request and is sent its answer
(`tokens.refresh_grant_steps`, `member_tokens.member_refresh_steps`); `AuthServerAccess.run` is the one loop that
performs them. The engine (`engine/authorizing.py`) calls `discover` and `origin`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from reconciler.credentials.errors import (
    AuthServerBlocked,
    AuthServerUnavailable,
    InvalidClient,
    OAuthRejected,
    redact,
)
from reconciler.errors import one_line
from reconciler.records import AuthDiscovery, AuthServerAnswer, AuthServerFailure, IssuedClient

__all__ = [
    "AuthServerAccess",
    "AuthServerAnswer",
    "AuthServerClient",
    "AuthServerRequest",
    "AuthServerSteps",
    "IssuedClient",
    "failure_error",
    "rejection",
]

MAX_DESCRIPTION = 200
_T = TypeVar("_T")


class AuthServerClient(Protocol):
    """The port: one request to an authorization server, one auth discovery, and reading what they said.

    Nothing raises for a failed exchange: the answer (any HTTP status) or the classified failure is returned.
    """

    async def send(
        self,
        method: str,
        url: str,
        *,
        purpose: str,
        allow_private: bool,
        form: Mapping[str, str | Sequence[str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AuthServerAnswer | AuthServerFailure: ...

    async def discover(
        self, *, server_url: str, transport: str, allow_private: bool
    ) -> AuthDiscovery | AuthServerFailure: ...

    def origin(self, url: str) -> str: ...

    def read_issued_client(self, document: Mapping[str, Any] | None) -> IssuedClient | None: ...


@dataclass(frozen=True)
class AuthServerRequest:
    """One request the credentials package decided to send: everything `AuthServerAccess.perform` needs.

    `secrets` are the request's secret values (a client secret, a refresh token, a code verifier): redacted from
    anything the server echoes back. Form, headers and secrets never appear in the repr.
    """

    method: str
    url: str
    purpose: str
    """Words errors: "the token request", "the client registration"."""
    form: Mapping[str, str | Sequence[str]] | None = field(default=None, repr=False)
    json_body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str | None, ...] = field(default=(), repr=False)


AuthServerSteps = Generator[AuthServerRequest, AuthServerAnswer, _T]
"""Pure steps that need only the authorization server: each request yielded is sent its answer; what they return
is the decision (`AuthServerAccess.run` performs them)."""


def _no_answer(step: object) -> object:
    raise TypeError(f"no one answers {type(step).__name__} steps here")


@dataclass(frozen=True)
class AuthServerAccess:
    """How the credentials step reaches authorization servers for one MCP server: the port, and whether that
    server may use private addresses (its `spec.network.allowPrivate`)."""

    client: AuthServerClient
    allow_private: bool = False

    async def send(
        self,
        method: str,
        url: str,
        *,
        purpose: str,
        form: Mapping[str, str | Sequence[str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str | None] = (),
    ) -> AuthServerAnswer:
        """Send one request. `purpose` words errors ("the token request"); `secrets` are the request's secret
        values, redacted from anything the server echoes back.

        Raises `AuthServerBlocked` when the SSRF guard refuses the URL and `AuthServerUnavailable` for transport
        failures and timeouts; HTTP error answers are returned, for the caller to interpret (`rejection`).
        """
        answer = await self.client.send(
            method,
            url,
            purpose=purpose,
            allow_private=self.allow_private,
            form=form,
            json_body=json_body,
            headers=headers,
        )
        if isinstance(answer, AuthServerFailure):
            raise failure_error(answer, secrets=secrets)
        return answer

    async def perform(self, request: AuthServerRequest) -> AuthServerAnswer:
        """`send` a decided request."""
        return await self.send(
            request.method,
            request.url,
            purpose=request.purpose,
            form=request.form,
            json_body=request.json_body,
            headers=request.headers or None,
            secrets=request.secrets,
        )

    async def run(self, steps: Generator[Any, Any, _T], *, answer: Callable[[Any], object] = _no_answer) -> _T:
        """Perform pure steps (see `AuthServerSteps`): each `AuthServerRequest` they yield is sent through the port
        and its answer sent back; any other step (a value they ask the caller for) is handed to `answer`, whose
        result is sent back. Returns what the steps return; an error raised by either ends them.

        The one driver loop, kept with the port, so the two callers that perform a member's refresh (the runtime
        and the engine, which may not import each other) do not each carry one."""
        sent: object = None
        try:
            while True:
                step = steps.send(sent)
                sent = await self.perform(step) if isinstance(step, AuthServerRequest) else answer(step)
        except StopIteration as done:
            result: _T = done.value
            return result
        finally:
            steps.close()

    async def discover(self, *, server_url: str, transport: str) -> AuthDiscovery:
        """The probe's auth discovery for one server (challenge, RFC 9728, RFC 8414), errors as credential errors."""
        found = await self.client.discover(server_url=server_url, transport=transport, allow_private=self.allow_private)
        if isinstance(found, AuthServerFailure):
            raise failure_error(found)
        return found

    def origin(self, url: str) -> str:
        """`scheme://host[:port]` of a URL: the issuer assumed for a registration endpoint nothing else names."""
        return self.client.origin(url)

    def read_issued_client(self, document: Mapping[str, Any] | None) -> IssuedClient | None:
        """The client an RFC 7591 registration answer describes; None when it describes none."""
        return self.client.read_issued_client(document)


def failure_error(
    failure: AuthServerFailure, *, secrets: Sequence[str | None] = ()
) -> AuthServerBlocked | OAuthRejected | AuthServerUnavailable:
    """The error a failed exchange stands for. Pure."""
    message = one_line(redact(failure.message, secrets))
    if failure.error_class == "blocked":
        return AuthServerBlocked(message)
    if failure.error_class in ("auth", "insufficient_scope"):
        return OAuthRejected(message, endpoint=failure.endpoint)
    return AuthServerUnavailable(message, error_class=failure.error_class)


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
    where = answer.endpoint or _without_query(url)
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


def _without_query(url: str) -> str:
    """A URL for a message when the port named none: no userinfo, query or fragment, which can carry secrets."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
