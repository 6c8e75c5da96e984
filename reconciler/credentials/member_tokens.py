"""Refreshing a member's own token: the decisions, and the one exchange, behind `resolve(..., renew_tokens=True)`.

The runtime (`reconciler.runtime.renewing`) calls `refresh_member_token` for a member's token that is due (past
`refresh_at` of its lifetime), having claimed the registry's single-flight lease. A member token is bound to the
issuer and client it was obtained with (SEP-2352): the token endpoint is read from that issuer's own RFC 8414
metadata, whose `issuer` must be the stored one, and the refresh names the stored client. What is decided is pure
(`metadata_request`, `token_endpoint_of`, `is_invalid_grant`, `member_token_name`, `member_token_secrets`); only
the two requests go through the authorization-server port. Token values never reach a log line or an error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.credentials.authserver import AuthServerAccess, AuthServerAnswer, AuthServerRequest, rejection
from reconciler.credentials.errors import OAuthRejected
from reconciler.credentials.local_store import NewSecret
from reconciler.credentials.stores import ACCESS_TOKEN, REFRESH_TOKEN, local_reference
from reconciler.credentials.tokens import MintedToken, TokenAuthMethod, TokenClient, refresh_access_token

INVALID_GRANT = "invalid_grant"
METADATA_PATH = "/.well-known/oauth-authorization-server"


def metadata_request(issuer: str) -> AuthServerRequest:
    """The issuer's RFC 8414 metadata request (the well-known segment goes before the issuer's path). Pure."""
    parts = urlsplit(issuer)
    path = METADATA_PATH + (parts.path.rstrip("/") if parts.path not in ("", "/") else "")
    url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return AuthServerRequest(method="GET", url=url, purpose="the authorization server metadata request")


def token_endpoint_of(answer: AuthServerAnswer, *, issuer: str) -> str:
    """The token endpoint the issuer's own metadata names; `OAuthRejected` when the metadata is for another
    issuer or names none (a member token is never sent anywhere else). Pure."""
    document: Mapping[str, Any] = answer.document or {}
    if not answer.ok or document.get("issuer") != issuer:
        raise OAuthRejected(
            f"{answer.endpoint} is not the metadata of issuer {issuer} (HTTP {answer.status}); "
            "the member's token is bound to that issuer",
            endpoint=answer.endpoint,
        )
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise OAuthRejected(f"issuer {issuer} advertises no token_endpoint", endpoint=answer.endpoint)
    return endpoint


def is_invalid_grant(error: OAuthRejected) -> bool:
    """Whether the server refused the refresh token itself (expired, revoked, already rotated): only the member
    can fix that, by connecting again."""
    return error.oauth_error == INVALID_GRANT


async def refresh_member_token(
    *,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    method: TokenAuthMethod,
    refresh_token: str,
    scopes: Sequence[str] = (),
    resource: str | None = None,
    access: AuthServerAccess,
    fingerprint_key: bytes,
    now: dt.datetime | None = None,
) -> MintedToken:
    """The member's next token set from the refresh-token grant at `issuer`'s token endpoint.

    A server that rotates refresh tokens returns a new one, which the caller must store with the access token.
    Raises `OAuthRejected` (`is_invalid_grant` when the refresh token is refused), `AuthServerUnavailable` and
    `AuthServerBlocked` like every request through the port.
    """
    request = metadata_request(issuer)
    answer = await access.perform(request)
    if answer.status >= 500 or answer.status == 429:
        raise rejection(answer, url=request.url, purpose=request.purpose)
    client = TokenClient(
        token_url=token_endpoint_of(answer, issuer=issuer),
        client_id=client_id,
        client_secret=client_secret,
        method=method,
    )
    return await refresh_access_token(
        client=client,
        refresh_token=refresh_token,
        scopes=scopes,
        resource=resource,
        access=access,
        fingerprint_key=fingerprint_key,
        now=now,
    )


def member_token_name(*, server: str, connection: str | None, user: str) -> str:
    """The local-store owner name of one member's tokens for a server (and connection). The underscore no
    Kubernetes name may hold keeps it apart from the servers' own minted values. Pure."""
    digest = hashlib.sha256("\0".join((server, connection or "", user)).encode("utf-8")).hexdigest()[:32]
    return f"member_{digest}"


def member_token_secrets(
    token: MintedToken, *, tenant: str, name: str, issuer: str, client_id: str
) -> tuple[list[NewSecret], str, str | None]:
    """What to seal for a member's token set, and the references of the access and refresh token. Pure."""
    meta = {"issuer": issuer, "clientId": client_id, "issuedAt": token.issued_at.isoformat(), "scope": token.scope}
    secrets = [NewSecret(tenant, name, ACCESS_TOKEN, token.access_token, meta, token.expires_at)]
    refresh_ref = None
    if token.refresh_token:
        secrets.append(NewSecret(tenant, name, REFRESH_TOKEN, token.refresh_token, {"issuer": issuer}))
        refresh_ref = local_reference(tenant, name, REFRESH_TOKEN)
    return secrets, local_reference(tenant, name, ACCESS_TOKEN), refresh_ref
