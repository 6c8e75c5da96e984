"""OAuth token requests: the client-credentials grant the reconciler mints with (kept sealed, renewed before
expiry), plus the refresh-token and authorization-code grants a runtime completes for a member.

Before it probes an `oauthClientCredentials` server the engine (`engine/authorizing.py`) reads the server's kept
token back (`stored_token`, keyed by `request_inputs`, a fingerprint of everything the request depends on, so a
rotated client secret or new scopes mint afresh), asks `token_step` whether to reuse it, refresh it or mint anew
(renewed once `refresh_at`, default 0.8, of its lifetime has passed), sends the `token_request` through the
authorization-server port, reads the answer with `read_token_answer` and seals what `token_rows` says under
`local:<tenant>/<server>#oauth-access-token`. A member's grants are built here too (`refresh_grant`,
`authorization_code_grant`); the refresh-token grant as pure steps, `refresh_grant_steps` (its request, and its
answer read), which the engine's `engine/minting.refresh_access_token` and every member token's refresh
(`member_tokens.member_refresh_steps`) share; the engine sends them (`engine/minting.py`, `engine/renewing.py`),
as does the runtime for a member's token (`runtime/renewing.py`). All of it is pure.
Access and refresh tokens never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from reconciler.credentials.assertions import ASSERTION_TYPE, client_assertion
from reconciler.credentials.authserver import AuthServerAnswer, AuthServerRequest, AuthServerSteps, rejection
from reconciler.credentials.errors import OAuthRejected
from reconciler.credentials.fingerprints import fingerprint
from reconciler.credentials.local_store import LocalSecret, NewSecret
from reconciler.credentials.stores import ACCESS_TOKEN, REFRESH_TOKEN, local_reference

logger = logging.getLogger(__name__)

TokenAuthMethod = Literal["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
TOKEN_AUTH_METHODS: tuple[TokenAuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")
DEFAULT_REFRESH_AT = 0.8
FORM_CONTENT = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class MintedToken:
    """An access token and its facts. `fresh` is False when it came from the cache."""

    access_token: str = field(repr=False)
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    fingerprint: str
    token_type: str = "Bearer"
    scope: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    reference: str | None = None
    """`local:<tenant>/<server>#oauth-access-token` once stored in the local encrypted store."""
    fresh: bool = True

    def headers(self) -> dict[str, str]:
        """The request header that carries the token."""
        return {"Authorization": f"{self.token_type} {self.access_token}"}

    def renewal_due(self, now: dt.datetime, *, refresh_at: float = DEFAULT_REFRESH_AT) -> bool:
        """True once `refresh_at` of the lifetime has passed (never for a token without expiry)."""
        if self.expires_at is None:
            return False
        lifetime = self.expires_at - self.issued_at
        return now >= self.issued_at + lifetime * refresh_at or now >= self.expires_at


TokenStep = Literal["reuse", "refresh", "mint"]


def token_step(cached: MintedToken | None, *, now: dt.datetime, refresh_at: float = DEFAULT_REFRESH_AT) -> TokenStep:
    """What a client-credentials token needs now: the cached one while less than `refresh_at` of its lifetime has
    passed, else a refresh (when the server gave a refresh token) or a new one. Pure."""
    if not 0 < refresh_at <= 1:
        raise ValueError("refresh_at must be a fraction of the token lifetime in (0, 1]")
    if cached is not None and not cached.renewal_due(now, refresh_at=refresh_at):
        return "reuse"
    return "refresh" if cached is not None and cached.refresh_token else "mint"


def stored_token(
    access: LocalSecret | None, refresh: LocalSecret | None, *, inputs: str, now: dt.datetime
) -> MintedToken | None:
    """A server's kept token, unsealed (`local:<tenant>/<server>#oauth-access-token` and its refresh token), when it
    was minted for these `inputs`; None otherwise. Issue time, scope and fingerprint are its clear metadata. Pure."""
    if access is None or access.meta.get("inputs") != inputs:
        return None
    issued_at = _parse_time(access.meta.get("issuedAt")) or access.updated_at or now
    return MintedToken(
        access_token=access.value,
        issued_at=issued_at,
        expires_at=access.expires_at,
        fingerprint=str(access.meta.get("fingerprint", "")),
        token_type=str(access.meta.get("tokenType", "Bearer")),
        scope=access.meta.get("scope"),
        refresh_token=refresh.value if refresh is not None else None,
        reference=access.reference,
        fresh=False,
    )


@dataclass(frozen=True)
class TokenRows:
    """What keeping a server's minted token seals, and the purposes whose sealed values go (a token without a
    refresh token leaves none of an earlier one behind)."""

    seal: tuple[NewSecret, ...]
    unseal: tuple[str, ...]
    reference: str


def token_rows(token: MintedToken, *, inputs: str, tenant: str, server: str) -> TokenRows:
    """The sealed values of a token kept as the server's (`inputs` identifies the request that minted it). Pure."""
    meta = {
        "inputs": inputs,
        "issuedAt": token.issued_at.isoformat(),
        "fingerprint": token.fingerprint,
        "tokenType": token.token_type,
        "scope": token.scope,
    }
    seal = [NewSecret(tenant, server, ACCESS_TOKEN, token.access_token, meta, token.expires_at)]
    if token.refresh_token:
        seal.append(NewSecret(tenant, server, REFRESH_TOKEN, token.refresh_token, {"inputs": inputs}))
    return TokenRows(
        seal=tuple(seal),
        unseal=() if token.refresh_token else (REFRESH_TOKEN,),
        reference=local_reference(tenant, server, ACCESS_TOKEN),
    )


@dataclass(frozen=True)
class TokenClient:
    """Who asks the token endpoint: the client and how it authenticates there (RFC 6749 section 2.3)."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    method: TokenAuthMethod = "client_secret_basic"
    private_key: str | None = field(default=None, repr=False)
    """PEM key that signs `private_key_jwt` assertions (RFC 7523); with `signing_algorithm` and `key_id`."""
    signing_algorithm: str | None = None
    key_id: str | None = None

    def authentication(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form fields) that authenticate the client with its method (a fresh assertion each call)."""
        if self.method == "private_key_jwt":
            if self.private_key is None or self.signing_algorithm is None:
                raise ValueError("private_key_jwt needs a private key and an algorithm")
            signed = client_assertion(
                client_id=self.client_id,
                audience=self.token_url,
                pem=self.private_key,
                algorithm=self.signing_algorithm,
                key_id=self.key_id,
            )
            return {}, {
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed,
            }
        if self.method == "client_secret_basic":
            # RFC 6749 section 2.3.1: both parts form-urlencoded before base64.
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret or '', safe='')}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}, {}
        if self.method == "client_secret_post":
            return {}, {"client_id": self.client_id, "client_secret": self.client_secret or ""}
        return {}, {"client_id": self.client_id}


def secret_method(declared: object, advertised: Sequence[str]) -> TokenAuthMethod:
    """How a client secret is presented at the token endpoint: the method the spec declares, else
    `client_secret_basic` (RFC 6749's default) unless the issuer advertises only `client_secret_post`. One rule for
    every pre-registered client, so the code exchange, the refreshes and the revocations of a member's token
    authenticate alike. Pure."""
    if declared in ("client_secret_basic", "client_secret_post"):
        return "client_secret_post" if declared == "client_secret_post" else "client_secret_basic"
    if advertised and "client_secret_basic" not in advertised and "client_secret_post" in advertised:
        return "client_secret_post"
    return "client_secret_basic"


def request_inputs(
    fingerprint_key: bytes, *, client: TokenClient, scopes: Sequence[str], resource: str | None, audience: str | None
) -> str:
    """A keyed fingerprint of everything a token request depends on, secret included: the cache key."""
    canonical = json.dumps(
        [
            client.token_url,
            client.client_id,
            client.client_secret or client.private_key,
            client.method,
            sorted(scopes),
            resource,
            audience,
        ]
    )
    return fingerprint(fingerprint_key, canonical)


Grant = Mapping[str, str | Sequence[str]]


def client_credentials_grant(
    *, scopes: Sequence[str] = (), resource: str | None = None, audience: str | None = None
) -> Grant:
    """The form fields of a client-credentials grant (RFC 6749 section 4.4, RFC 8707 `resource`). Pure."""
    form: dict[str, str | Sequence[str]] = {"grant_type": "client_credentials"}
    if scopes:
        form["scope"] = " ".join(scopes)
    if resource:
        form["resource"] = resource
    if audience:
        form["audience"] = audience
    return form


def refresh_grant(refresh_token: str, *, scopes: Sequence[str] = (), resource: str | None = None) -> Grant:
    """The form fields of a refresh-token grant (RFC 6749 section 6). Pure."""
    form: dict[str, str | Sequence[str]] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scopes:
        form["scope"] = " ".join(scopes)
    if resource:
        form["resource"] = resource
    return form


def authorization_code_grant(code: str, *, code_verifier: str, redirect_uri: str, resource: str | None = None) -> Grant:
    """The form fields of an authorization-code grant with PKCE (RFC 7636). Pure."""
    form: dict[str, str | Sequence[str]] = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": code_verifier,
        "redirect_uri": redirect_uri,
    }
    if resource:
        form["resource"] = resource
    return form


def token_request(
    client: TokenClient, grant: Grant, *, purpose: str = "the token request", extra_secrets: Sequence[str] = ()
) -> AuthServerRequest:
    """The token endpoint request for `grant`, the client authenticated with its method. Pure."""
    headers, client_fields = client.authentication()
    return AuthServerRequest(
        method="POST",
        url=client.token_url,
        purpose=purpose,
        form={**grant, **client_fields},
        headers={**headers, "content-type": FORM_CONTENT},
        secrets=(client.client_secret, *_assertion(client_fields), *extra_secrets),
    )


def refresh_grant_steps(
    client: TokenClient,
    refresh_token: str,
    *,
    scopes: Sequence[str] = (),
    resource: str | None = None,
    fingerprint_key: bytes,
    now: dt.datetime,
) -> AuthServerSteps[MintedToken]:
    """The refresh-token grant (RFC 6749 section 6) as pure steps: the one request, then its answer read. A server
    that rotates refresh tokens returns a new one, else the one spent is kept; the refresh token is redacted from
    anything the server echoes back."""
    request = token_request(
        client,
        refresh_grant(refresh_token, scopes=scopes, resource=resource),
        purpose="the refresh request",
        extra_secrets=(refresh_token,),
    )
    answer = yield request
    token = read_token_answer(answer, request=request, client=client, fingerprint_key=fingerprint_key, now=now)
    return token if token.refresh_token else replace(token, refresh_token=refresh_token)


def _assertion(client_fields: Mapping[str, str]) -> tuple[str, ...]:
    """A signed client assertion is a credential too: redacted like a secret."""
    assertion = client_fields.get("client_assertion")
    return (assertion,) if assertion else ()


def read_token_answer(
    answer: AuthServerAnswer,
    *,
    request: AuthServerRequest,
    client: TokenClient,
    fingerprint_key: bytes,
    now: dt.datetime,
) -> MintedToken:
    """The token a token endpoint's answer carries, or the error it stands for (`rejection`), naming the client
    and never its secret. Pure."""
    if not answer.ok:
        raise rejection(
            answer,
            url=request.url,
            purpose=request.purpose,
            client_id=client.client_id,
            method=client.method,
            secrets=request.secrets,
        )
    token = token_of(answer, fingerprint_key=fingerprint_key, now=now)
    logger.debug("%s: an access token from %s", request.purpose, answer.endpoint)
    return token


def token_of(answer: AuthServerAnswer, *, fingerprint_key: bytes, now: dt.datetime) -> MintedToken:
    """The token a successful answer carries; `OAuthRejected` for an answer without a usable Bearer token. Pure."""
    document: Mapping[str, Any] = answer.document or {}
    access_token = document.get("access_token")
    token_type = document.get("token_type")
    where = answer.endpoint
    if not isinstance(access_token, str) or not access_token:
        raise OAuthRejected(f"{where} answered without an access_token", endpoint=where)
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise OAuthRejected(
            f"{where} issued a token of type {str(token_type)[:32]!r}; only Bearer tokens are supported",
            endpoint=where,
        )
    expires_in: Any = document.get("expires_in")
    seconds: float | None = None
    numeric = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if numeric or (isinstance(expires_in, str) and expires_in.isdigit()):
        seconds = float(expires_in)
    refresh = document.get("refresh_token")
    scope = document.get("scope")
    return MintedToken(
        access_token=access_token,
        issued_at=now,
        expires_at=now + dt.timedelta(seconds=seconds) if seconds is not None and seconds > 0 else None,
        fingerprint=fingerprint(fingerprint_key, access_token),
        token_type="Bearer",
        scope=scope if isinstance(scope, str) else None,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
