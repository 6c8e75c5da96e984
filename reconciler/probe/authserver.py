"""The authorization-server adapter: the HTTP behind the credentials package's `AuthServerClient` port.

The engine builds one `ProbeAuthServer` per credentials step from the run's `ProbeHttp` and `ProbeSettings` and
hands it to the credentials package, which decides every token, registration and discovery request and sends it
through here. Each request goes through the probe's SSRF-guarded HTTP, never follows redirects (an authorization
server has no business redirecting a token request), has its body capped like every probe response, and is
bounded by `total_timeout`. Nothing here raises for a failed exchange: the answer (`AuthServerAnswer`) or the
classified failure (`AuthServerFailure`) is returned, and the credentials package turns it into its own errors,
redacting what a server echoed back. Also the one place that reads a registration answer with the MCP SDK's
client model (`read_issued_client`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import anyio
import httpx2
import pydantic
from mcp.shared.auth import OAuthClientInformationFull

from reconciler.probe.classification import FailureContext, classify
from reconciler.probe.discovery import discover_auth, fetch_challenge
from reconciler.probe.settings import ProbeSettings, Transport
from reconciler.probe.ssrf import url_problem
from reconciler.probe.tracing import HttpTrace, display_url
from reconciler.probe.transports import ProbeHttp, request_timeout
from reconciler.records import AuthDiscovery, AuthServerAnswer, AuthServerFailure, IssuedClient

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result")


class ProbeAuthServer:
    """`AuthServerClient` over the probe's shared HTTP and limits. `allow_private` per request is the server's
    own `spec.network.allowPrivate`; private addresses need it and the reconciler-wide flag, as for probes."""

    def __init__(self, http: ProbeHttp, settings: ProbeSettings) -> None:
        self.http = http
        self.settings = settings

    def __repr__(self) -> str:
        return f"ProbeAuthServer(total_timeout={self.settings.total_timeout})"

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
    ) -> AuthServerAnswer | AuthServerFailure:
        """Send one request; HTTP error answers are answers too, for the caller to interpret."""

        async def request(client: httpx2.AsyncClient) -> httpx2.Response:
            return await client.request(
                method,
                url,
                data=dict(form) if form is not None else None,
                json=dict(json_body) if json_body is not None else None,
                headers={"accept": "application/json", **(headers or {})},
            )

        response = await self._guarded(url, purpose=purpose, allow_private=allow_private, action=request)
        if isinstance(response, AuthServerFailure):
            return response
        logger.debug("%s: %s %s answered %d", purpose, method, display_url(url), response.status_code)
        return AuthServerAnswer(
            status=response.status_code,
            document=_json_object(response),
            www_authenticate=response.headers.get("www-authenticate"),
            endpoint=display_url(url),
        )

    async def discover(
        self, *, server_url: str, transport: str, allow_private: bool
    ) -> AuthDiscovery | AuthServerFailure:
        """The probe's auth discovery for one server (challenge, RFC 9728, RFC 8414)."""

        async def discover_with(client: httpx2.AsyncClient) -> AuthDiscovery:
            challenge = await fetch_challenge(client, url=server_url, transport=cast(Transport, transport))
            return await discover_auth(
                challenge, server_url=server_url, client=client, max_bytes=self.settings.max_response_bytes
            )

        return await self._guarded(
            server_url, purpose="auth discovery", allow_private=allow_private, action=discover_with
        )

    def origin(self, url: str) -> str:
        """`scheme://host[:port]` of a URL: the issuer assumed for a registration endpoint nothing else names."""
        parsed = httpx2.URL(url)
        return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"

    def read_issued_client(self, document: Mapping[str, Any] | None) -> IssuedClient | None:
        """The client an RFC 7591 registration answer describes (read with the MCP SDK's model); None when it
        describes none."""
        try:
            issued = OAuthClientInformationFull.model_validate({**(document or {}), "issuer": None})
        except pydantic.ValidationError:
            return None
        return IssuedClient(
            client_id=issued.client_id,
            client_secret=issued.client_secret,
            token_endpoint_auth_method=issued.token_endpoint_auth_method,
            client_secret_expires_at=issued.client_secret_expires_at,
        )

    async def _guarded(
        self,
        url: str,
        *,
        purpose: str,
        allow_private: bool,
        action: Callable[[httpx2.AsyncClient], Awaitable[_Result]],
    ) -> _Result | AuthServerFailure:
        """Run `action` with a fresh SSRF-guarded client, bounded by `total_timeout`, every failure classified
        like a probe failure."""
        problem = url_problem(url)
        if problem is not None:
            return AuthServerFailure(
                "blocked", f"refused to send {purpose} to {display_url(url)}: {problem}", display_url(url)
            )
        settings = self.settings
        trace = HttpTrace()
        try:
            with anyio.fail_after(settings.total_timeout):
                async with self.http.client(
                    allow_private=settings.allow_private_networks and allow_private,
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
            return AuthServerFailure(error_class, message, display_url(url))


def _json_object(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        document = json.loads(response.content)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
