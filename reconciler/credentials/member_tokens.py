"""Refreshing a member's own token: what is decided, as pure steps the runtime and the engine both perform.

The runtime (`runtime/renewing.py`, `renew_member_token`: behind `resolve(..., renew_tokens=True)`) and the engine's
bulk runs (`engine/renewing.py`, `renew_member_tokens_in_batches`) renew a member's token that is due
(`renewal_due`: past `refresh_at` of its lifetime), single-flight under the registry's compare-and-set lease, and
store what `refreshed_token_rows` says; a connect flow keeps what `member_token_rows` says.

A member token is bound to the issuer and client it was obtained with (SEP-2352): the token endpoint is read from
that issuer's own metadata (RFC 8414, else OpenID Connect Discovery; once per issuer and `MemberTokenRenewal`, so a
bulk run does not double its requests), whose `issuer` must be the stored one, and the refresh names the stored
client, authenticated as `refresh_client` decides: like the server's registered client for that issuer, else like
the spec's pre-registered client when the token was obtained with it (its secret, presented as the code exchange
presented it), else as a public client. All of it is pure (`renewal_due`, `refresh_client`, `is_invalid_grant`,
`member_token_name`, `member_token_secrets`, `refreshed_token_rows`, `member_token_rows`; the issuer's metadata:
`issuers.py`; the grant itself: `tokens.refresh_grant_steps`). The refresh is sans-IO (`member_refresh_steps`, with
`token_endpoint_steps`): a generator that yields each authorization-server request and each value it needs read (a
server's registered clients, a client's id or secret), is sent the answers, and returns the new token set. The
callers perform it with `AuthServerAccess.run`, answering the reads through the registry and their secret stores
(`MemberTokenRenewal` holds those ports and the caches). Token values never reach a log line or an error.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Generator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.credentials.authserver import (
    AuthServerClient,
    AuthServerRequest,
    AuthServerSteps,
    rejection,
)
from reconciler.credentials.errors import OAuthRejected
from reconciler.credentials.headers import SecretReader
from reconciler.credentials.issuers import IssuerTokenEndpoint, issuer_token_endpoint, metadata_requests
from reconciler.credentials.local_store import MintedSecrets, NewSecret
from reconciler.credentials.storage import MemberTokenRegistry
from reconciler.credentials.stores import ACCESS_TOKEN, REFRESH_TOKEN, local_reference
from reconciler.credentials.tokens import (
    DEFAULT_REFRESH_AT,
    MintedToken,
    TokenAuthMethod,
    TokenClient,
    refresh_grant_steps,
    secret_method,
)
from reconciler.records import OAuthClientRecord, UserTokenRecord

INVALID_GRANT = "invalid_grant"
_METHODS: dict[str | None, TokenAuthMethod] = {
    "client_secret_basic": "client_secret_basic",
    "client_secret_post": "client_secret_post",
    "none": "none",
}


class RenewalOutcome(enum.StrEnum):
    """What one `renew_member_token` call did."""

    RENEWED = "renewed"
    WAITED = "waited"
    """Another caller held the lease (or had just renewed the token); this one waited, at most `wait` seconds, for
    its refresh to end."""
    REFUSED = "refused"
    """`invalid_grant`: the refresh token is forgotten and the member must reconnect."""
    FAILED = "failed"
    """Anything else (the server unreachable, the client refused, the lease lost): the token is as it was."""


@dataclass(frozen=True)
class RefreshClient:
    """How the client a member's token was obtained with authenticates its refresh: the reference of its secret
    (None: no secret) and the method. Holds no value."""

    secret_ref: str | None
    method: TokenAuthMethod


PUBLIC_CLIENT = RefreshClient(secret_ref=None, method="none")


@dataclass(frozen=True)
class MemberTokenRenewal:
    """What renewing members' tokens needs: the ports its callers perform `member_refresh_steps` through (the
    authorization server; the registry and the stores for what the steps ask to read), the bounds, and the caches
    the steps consult. Credentials only names the ports. `lease` outlives one refresh's own bound, so
    a refresher that dies holds the others up for at most `lease`; `wait` bounds how long a caller waits for
    another's refresh (0: not at all, for a caller that hands no token out and only wants the token renewed by
    someone, as the engine's runs)."""

    registry: MemberTokenRegistry
    minted: MintedSecrets
    authserver: AuthServerClient
    fingerprint_key: bytes = field(repr=False)
    secrets: SecretReader | None = None
    """Where client secrets behind non-`local:` references are read (a pre-registered confidential client)."""
    refresh_at: float = DEFAULT_REFRESH_AT
    lease: dt.timedelta = dt.timedelta(seconds=90)
    wait: float = 20.0
    poll_interval: float = 0.05
    token_endpoints: dict[str, IssuerTokenEndpoint] = field(default_factory=dict, repr=False, compare=False)
    """The token endpoint each issuer's metadata named, read once per renewal: a bulk run renews thousands of
    tokens of a handful of issuers, and one metadata request per token doubled its requests."""
    oauth_clients: dict[tuple[str, str], Sequence[OAuthClientRecord]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """Each (tenant, server)'s registered clients, read once per renewal: a bulk run renews many members' tokens
    for one server. A client re-registered meanwhile fails that run's refreshes (FAILED: the tokens stay as they
    are) until the next run reads it again."""


def renewal_due(token: UserTokenRecord, *, now: dt.datetime, refresh_at: float = DEFAULT_REFRESH_AT) -> bool:
    """Whether a member's token should be refreshed now: refreshable, and past `refresh_at` of its lifetime (or
    its expiry, when its issue time is unknown). Pure."""
    if token.expires_at is None or token.refresh_token_ref is None or not (token.client_id and token.issuer):
        return False
    if now >= token.expires_at:
        return True
    if token.issued_at is None:
        return False
    return now >= token.issued_at + (token.expires_at - token.issued_at) * refresh_at


@dataclass(frozen=True)
class DueMemberToken:
    """A member token to renew, with what its refresh needs from its server's row."""

    token: UserTokenRecord
    server_url: str
    allow_private: bool
    server_auth: Mapping[str, Any] = field(default_factory=dict)
    """The server row's `auth`: names its pre-registered client, if it has one."""


@dataclass(frozen=True)
class ValueWanted:
    """A step asks for the value behind a reference (the spec's `clientIdRef`, a client's secret): the caller reads
    it (`stores.read_stored_value`: a sealed one from the minted store, any other from its secret reader) and sends
    back the value, or None when there is none."""

    reference: str


@dataclass(frozen=True)
class ClientsWanted:
    """A step asks for a server's registered OAuth clients: the caller reads them from the registry
    (`fetch_oauth_clients`) and sends them back."""

    tenant: str
    server: str


MemberRefreshStep = AuthServerRequest | ValueWanted | ClientsWanted
MemberRefreshSteps = Generator[MemberRefreshStep, object, MintedToken]
"""A member token's refresh as pure steps: each request yielded is sent its answer, each value or clients asked
for is sent what the caller read; what they return is the new token set. `AuthServerAccess.run` performs them,
with the caller's `answer` for what is not a request."""


def member_refresh_steps(
    token: UserTokenRecord,
    refresh_token: str | None,
    *,
    server_url: str,
    server_auth: Mapping[str, Any],
    fingerprint_key: bytes,
    now: dt.datetime,
    token_endpoints: MutableMapping[str, IssuerTokenEndpoint],
    oauth_clients: MutableMapping[tuple[str, str], Sequence[OAuthClientRecord]],
) -> MemberRefreshSteps:
    """The refresh of one member's token set (see the module docstring), as steps in the order they were always
    taken: the server's registered clients (unless `oauth_clients` has them), the issuer's token endpoint (unless
    `token_endpoints` has it), the spec's client id when a Secret holds it, the client's secret when it has one,
    then the refresh-token grant. `token_endpoints` and `oauth_clients` are the renewal's caches
    (`MemberTokenRenewal`): they learn what was read. Raises `OAuthRejected` (`is_invalid_grant` when the refresh
    token is gone or refused)."""
    assert token.issuer is not None and token.client_id is not None
    if refresh_token is None:
        raise OAuthRejected("the stored refresh token is gone", oauth_error=INVALID_GRANT)
    clients = oauth_clients.get((token.tenant, token.server))
    if clients is None:
        clients = _clients((yield ClientsWanted(tenant=token.tenant, server=token.server)))
        oauth_clients[(token.tenant, token.server)] = clients
    endpoint = yield from token_endpoint_steps(token.issuer, known=token_endpoints)
    preset_client_id = server_auth.get("clientId")
    if not isinstance(preset_client_id, str):
        reference = server_auth.get("clientIdRef")
        preset_client_id = _value((yield ValueWanted(reference))) if isinstance(reference, str) else None
    chosen = refresh_client(
        token,
        clients,
        server_auth=server_auth,
        preset_client_id=preset_client_id,
        advertised=endpoint.auth_methods,
    )
    client = TokenClient(
        token_url=endpoint.url,
        client_id=token.client_id,
        client_secret=None if chosen.secret_ref is None else _value((yield ValueWanted(chosen.secret_ref))),
        method=chosen.method,
    )
    grant = refresh_grant_steps(
        client, refresh_token, scopes=token.scopes, resource=server_url, fingerprint_key=fingerprint_key, now=now
    )
    return (yield from grant)


def _value(sent: object) -> str | None:
    if sent is not None and not isinstance(sent, str):
        raise TypeError(f"a value asked for was answered with {type(sent).__name__}")
    return sent


def _clients(sent: object) -> Sequence[OAuthClientRecord]:
    if not isinstance(sent, Sequence) or not all(isinstance(client, OAuthClientRecord) for client in sent):
        raise TypeError(f"the OAuth clients asked for were answered with {type(sent).__name__}")
    return sent


def refresh_client(
    token: UserTokenRecord,
    registered: Sequence[OAuthClientRecord],
    *,
    server_auth: Mapping[str, Any],
    preset_client_id: str | None,
    advertised: Sequence[str] = (),
) -> RefreshClient:
    """How the client the token was obtained with authenticates the refresh. Pure.

    The server's registered client for the token's issuer, when it is that client; else the spec's pre-registered
    client (`preset_client_id`, the value of `clientId` or of the Secret `clientIdRef` names) when the token names
    it: a confidential one with its `clientSecret`, presented as `secret_method` says (the code exchange presented
    it the same way); else a public client. A refresh that skips a confidential client's authentication is refused
    with `invalid_client`, and the member would have to reconnect for nothing."""
    for client in registered:
        if client.client_id != token.client_id or client.issuer != token.issuer:
            continue
        method = _METHODS.get(client.token_endpoint_auth_method, "client_secret_basic")
        if client.client_secret_ref is None or method == "none":
            return PUBLIC_CLIENT
        return RefreshClient(secret_ref=client.client_secret_ref, method=method)
    secret_ref = server_auth.get("clientSecretRef")
    if (
        preset_client_id is not None
        and preset_client_id == token.client_id
        and server_auth.get("pkce") == "confidential"
        and isinstance(secret_ref, str)
    ):
        return RefreshClient(
            secret_ref=secret_ref, method=secret_method(server_auth.get("tokenEndpointAuthMethod"), advertised)
        )
    return PUBLIC_CLIENT


def token_endpoint_steps(
    issuer: str, *, known: MutableMapping[str, IssuerTokenEndpoint]
) -> AuthServerSteps[IssuerTokenEndpoint]:
    """The issuer's token endpoint from its metadata (RFC 8414, else OpenID Connect Discovery), as pure steps;
    `known` (issuer → endpoint) spares the requests for an issuer already read, and learns the one that was not."""
    found = known.get(issuer)
    if found is not None:
        return found
    for request in metadata_requests(issuer):
        answer = yield request
        if answer.status >= 500 or answer.status == 429:
            raise rejection(answer, url=request.url, purpose=request.purpose)
        if answer.ok:
            break
    found = issuer_token_endpoint(answer, issuer=issuer)
    known[issuer] = found
    return found


def is_invalid_grant(error: OAuthRejected) -> bool:
    """Whether the server refused the refresh token itself (expired, revoked, already rotated): only the member
    can fix that, by connecting again."""
    return error.oauth_error == INVALID_GRANT


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


def refreshed_token_rows(token: UserTokenRecord, refreshed: MintedToken) -> tuple[UserTokenRecord, list[NewSecret]]:
    """A member's row as its refresh leaves it, and what to seal for it. Pure."""
    assert token.issuer is not None and token.client_id is not None
    name = member_token_name(server=token.server, connection=token.connection, user=token.user_id)
    secrets, access_ref, refresh_ref = member_token_secrets(
        refreshed, tenant=token.tenant, name=name, issuer=token.issuer, client_id=token.client_id
    )
    record = replace(
        token,
        secret_ref=access_ref,
        expires_at=refreshed.expires_at,
        issued_at=refreshed.issued_at,
        refresh_token_ref=refresh_ref,
        scopes=tuple((refreshed.scope or "").split()) or token.scopes,
    )
    return record, secrets


@dataclass(frozen=True)
class MemberTokenRows:
    """What keeping a member's new token set writes: the row, the values to seal, and whether an earlier refresh
    token must go (the new set has none)."""

    record: UserTokenRecord
    seal: tuple[NewSecret, ...]
    owner: str
    """The local-store owner name of the sealed values (`member_token_name`)."""
    drop_refresh_token: bool


def member_token_rows(
    token: MintedToken,
    *,
    tenant: str,
    server: str,
    user: str,
    connection: str | None = None,
    client_id: str,
    issuer: str,
    scopes: Sequence[str] = (),
) -> MemberTokenRows:
    """The row and sealed values of a member's token set after a code exchange (what a connect flow's callback
    keeps). Pure."""
    name = member_token_name(server=server, connection=connection, user=user)
    secrets, access_ref, refresh_ref = member_token_secrets(
        token, tenant=tenant, name=name, issuer=issuer, client_id=client_id
    )
    record = UserTokenRecord(
        tenant=tenant,
        server=server,
        user_id=user,
        connection=connection,
        secret_ref=access_ref,
        refresh_token_ref=refresh_ref,
        issued_at=token.issued_at,
        expires_at=token.expires_at,
        client_id=client_id,
        issuer=issuer,
        scopes=tuple(scopes) or tuple((token.scope or "").split()),
    )
    return MemberTokenRows(record=record, seal=tuple(secrets), owner=name, drop_refresh_token=refresh_ref is None)
