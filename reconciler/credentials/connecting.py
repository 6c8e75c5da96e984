"""A member connects their own account: the authorization-code login (PKCE S256, RFC 8707 `resource`) that the
reconciler drives for someone at a browser, and where the tokens it yields are kept.

Pure. `begin_login` fills one login's URL, state and verifier into the authorization-URL template the
credentials step publishes for the server; `code_from_callback` checks what reached the redirect URI (the state
it sent, an error the authorization server reported, the RFC 9207 `iss` when the answer carries one) and
returns the code; `login_token_client` is who exchanges it; `revocation_request`, `revocation_client` and
`sealed_member_values` are what a disconnect and a server's deletion ask the issuer and forget. The engine
performs the exchange, the revocations and the writes (`engine/connecting.py`, `engine/revoking.py`); the CLI's
`connect` is the driver with a loopback callback (RFC 8252).

Tokens are sealed in the registry with the local store key (`local:<tenant>/<server>@<member>#…`) rather than
written to Kubernetes Secrets: the same store already keeps every value the reconciler obtains, it works with
and without a cluster, the `user_tokens` row (the table the runtime owns) points at it like at any Secret, and
a rotated refresh token is replaced in the same transaction as the access token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from reconciler.credentials.authorization import fill_authorization_url, new_pkce
from reconciler.credentials.authserver import AuthServerRequest
from reconciler.credentials.errors import IncompleteAuthSpec, OAuthRejected
from reconciler.credentials.headers import SecretReader
from reconciler.credentials.issuers import IssuerFacts as IssuerFacts
from reconciler.credentials.issuers import metadata_url as metadata_url
from reconciler.credentials.registration import RegisteredClient
from reconciler.credentials.scopes import step_up_scopes
from reconciler.credentials.stores import require_reference
from reconciler.credentials.tokens import MintedToken, TokenAuthMethod, TokenClient, secret_method
from reconciler.errors import ErrorClass, PermanentError
from reconciler.records import ORGANIZATION_MEMBER, UserTokenRecord

MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,199}$")


class LoginFailed(PermanentError):
    """The login did not end with a code this login asked for (denied, a foreign state, another issuer)."""

    reason = "LoginFailed"
    error_class: ErrorClass = "auth"


@dataclass(frozen=True)
class Login:
    """One login in progress. `state` and `code_verifier` are single-use secrets of this login only."""

    authorization_url: str = field(repr=False)
    """Carries the state: kept out of the repr like it."""
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    issuer: str | None = None
    """The authorization server the code must come from (RFC 9207), when known."""
    iss_required: bool = False
    """The issuer advertises `authorization_response_iss_parameter_supported`: a callback without `iss` fails."""


def check_member_id(member: str) -> str:
    """A member id fit to name in a login and a row (or the organization's, `ORGANIZATION_MEMBER`): refused here,
    before anyone logs in."""
    if member == ORGANIZATION_MEMBER:
        return member
    if not MEMBER_ID.match(member):
        raise PermanentError(
            f"member id {member!r} is not usable: use letters, digits and . _ : @ + - "
            "(at most 200 characters, starting with a letter or digit)"
        )
    return member


def begin_login(
    template: str,
    *,
    redirect_uri: str,
    issuer: str | None = None,
    iss_required: bool = False,
    state: str | None = None,
) -> Login:
    """A fresh login from the published template: new state (unless the caller signed one), new PKCE pair, the
    URL to open."""
    verifier, challenge = new_pkce()
    state = state or secrets.token_urlsafe(32)
    url = fill_authorization_url(template, redirect_uri=redirect_uri, state=state, code_challenge=challenge)
    return Login(url, redirect_uri, state=state, code_verifier=verifier, issuer=issuer, iss_required=iss_required)


def with_step_up(template: str, challenged: Sequence[str]) -> str:
    """The authorization-URL template asking for the union of its scopes and those a server challenged for
    (`insufficient_scope`, SEP-835 step-up), in that order; unchanged when nothing was challenged."""
    if not challenged:
        return template
    base, separator, query = template.partition("?")
    params = query.split("&") if separator else []
    current = next((unquote(p.removeprefix("scope=")).split() for p in params if p.startswith("scope=")), [])
    scope = "scope=" + quote(" ".join(step_up_scopes(current, challenged)), safe="")
    if any(p.startswith("scope=") for p in params):
        params = [scope if p.startswith("scope=") else p for p in params]
    else:
        params.insert(min(2, len(params)), scope)
    return f"{base}?{'&'.join(params)}"


def signed_state(key: bytes, *, expires_at: float) -> str:
    """A state that proves it came from this service and until when it holds: `<nonce>.<expiry>.<HMAC>`."""
    body = f"{secrets.token_urlsafe(24)}.{int(expires_at)}"
    return f"{body}.{_state_mac(key, body)}"


def state_holds(key: bytes, state: str, *, now: float) -> bool:
    """The state was signed with `key` and has not expired (single use is the caller's: it forgets the state)."""
    body, _, mac = state.rpartition(".")
    _nonce, _, expiry = body.partition(".")
    if not body or not expiry.isdigit():
        return False
    return hmac.compare_digest(mac, _state_mac(key, body)) and now < int(expiry)


def _state_mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def code_from_callback(login: Login, params: Mapping[str, str]) -> str:
    """The authorization code, once the callback's parameters prove they answer this login.

    Raises `LoginFailed` for a state this login did not send, an error the authorization server reported
    (`access_denied`...), an `iss` naming another issuer (RFC 9207: a mix-up attack), or no code at all.
    """
    if not secrets.compare_digest(params.get("state", ""), login.state):
        raise LoginFailed("the callback's state is not the one this login sent (a stale or forged callback)")
    issuer = params.get("iss")
    if issuer is None and login.iss_required:
        raise LoginFailed("the callback carries no iss although the issuer promises one (RFC 9207)")
    if issuer is not None and login.issuer is not None and issuer.rstrip("/") != login.issuer.rstrip("/"):
        raise LoginFailed(f"the callback came from issuer {issuer}, not {login.issuer} (RFC 9207)")
    error = params.get("error")
    if error:
        described = params.get("error_description")
        raise LoginFailed(f"the authorization server answered {error}" + (f": {described}" if described else ""))
    code = params.get("code")
    if not code:
        raise LoginFailed("the callback carries neither a code nor an error")
    return code


def refusal_message(error: OAuthRejected) -> str:
    """An exchange the token endpoint refused, worded for the member (the OAuth error, never a value)."""
    return f"the authorization server refused the code exchange: {error}"


def expires_in(token: MintedToken, now: dt.datetime | None = None) -> str:
    """`expires in 59m`, or `does not expire`: for the line the CLI prints after connecting."""
    now = now or dt.datetime.now(dt.UTC)
    if token.expires_at is None:
        return "does not expire"
    minutes = max(0, int((token.expires_at - now).total_seconds() // 60))
    return f"expires in {minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"expires in {minutes}m"


# -- requests and what to forget --------------------------------------------------------------------------------


def login_token_client(
    auth: Mapping[str, Any],
    *,
    token_url: str,
    registered: RegisteredClient | None,
    secrets: SecretReader,
    advertised: Sequence[str] = (),
) -> TokenClient:
    """Who exchanges the code: the dynamically registered client, else the spec's client id (and its secret for a
    confidential client, presented as `secret_method` says from the methods the issuer `advertised`, which is how
    its refreshes present it too)."""
    if registered is not None:
        return TokenClient(
            token_url=token_url,
            client_id=registered.client_id,
            client_secret=registered.client_secret,
            method=_registered_method(registered.token_endpoint_auth_method),
        )
    client_id = auth.get("clientId")
    if not isinstance(client_id, str):
        reference = auth.get("clientIdRef")
        if not isinstance(reference, str):
            raise IncompleteAuthSpec("set spec.auth.clientId: no client was registered for this server")
        client_id = require_reference(secrets, reference, purpose="spec.auth.clientId")
    secret_ref = auth.get("clientSecretRef")
    if auth.get("pkce") == "confidential" and isinstance(secret_ref, str):
        secret = require_reference(secrets, secret_ref, purpose="spec.auth.clientSecret")
        method = secret_method(auth.get("tokenEndpointAuthMethod"), advertised)
        return TokenClient(token_url=token_url, client_id=client_id, client_secret=secret, method=method)
    return TokenClient(token_url=token_url, client_id=client_id, client_secret=None, method="none")


def _registered_method(name: str) -> TokenAuthMethod:
    methods: dict[str, TokenAuthMethod] = {"client_secret_post": "client_secret_post", "none": "none"}
    return methods.get(name, "client_secret_basic")


def revocation_request(endpoint: str, token: str, *, hint: str, client: TokenClient) -> AuthServerRequest:
    """RFC 7009 §2.1: the token, its type hint, and the client's authentication as at the token endpoint."""
    headers, form = client.authentication()
    return AuthServerRequest(
        method="POST",
        url=endpoint,
        purpose="the revocation request",
        form={"token": token, "token_type_hint": hint, **form},
        headers=headers,
        secrets=(token, client.client_secret),
    )


def revocation_client(registered: RegisteredClient) -> TokenClient:
    """Who asks the issuer to revoke a member's tokens (RFC 7009 §2.1): the server's kept client, authenticated as at
    the token endpoint. Pure."""
    return TokenClient(
        token_url="",
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        method=_registered_method(registered.token_endpoint_auth_method),
    )


def sealed_member_values(tenant: str, tokens: Sequence[UserTokenRecord]) -> list[tuple[str, str, str]]:
    """The sealed values behind members' token rows of this tenant, as (owner name, purpose, token type hint),
    refresh tokens first: revoking one may end its access tokens. Pure."""
    return sorted(
        {
            (name, purpose, hint)
            for token in tokens
            for reference, hint in ((token.refresh_token_ref, "refresh_token"), (token.secret_ref, "access_token"))
            if reference is not None and (parts := split_reference(reference, tenant)) is not None
            for name, purpose in [parts]
        },
        key=lambda item: (item[0], item[2] != "refresh_token"),
    )


def split_reference(reference: str, tenant: str) -> tuple[str, str] | None:
    """(name, purpose) of a `local:<tenant>/<name>#<purpose>` reference of this tenant; None for any other."""
    if not reference.startswith(f"local:{tenant}/"):
        return None
    name, _, purpose = reference.removeprefix(f"local:{tenant}/").partition("#")
    return (name, purpose) if name and purpose else None
