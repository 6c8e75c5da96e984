"""Members' tokens kept usable: storing a member's token set, and refreshing the due ones before a resolution.

Called by `resolving.resolve` when asked to `renew_tokens`, and by whatever completes a member's connect flow
(`store_member_tokens`). A member token is due once `refresh_at` (0.8) of its lifetime has passed. Refresh is
single-flight across threads and processes: the registry's compare-and-set lease (`Registry.claim_token_refresh`)
lets exactly one caller send the refresh-token grant; the others wait, bounded by `TokenRenewal.wait`, and re-read
the row. The holder stores the rotated refresh token with the new access token in one registry transaction.
`invalid_grant` forgets the refresh token (row and sealed value together), so that resolution and every later one
decide `needs_reauthorization` once the token expires. Any other failure releases the lease and leaves the token
as it was. The request goes through the probe's authorization-server adapter (SSRF-guarded, bounded).

Values live where the reconciler's minted values live: sealed in the registry's local store (`local:` references
on the row), because the runtime both reads and rewrites them on every refresh and the registry is the store it
already shares with every replica; a Kubernetes Secret would need write access to the cluster from every runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.credentials import (
    AuthServerAccess,
    MintedSecretStore,
    MintedToken,
    OAuthRejected,
    SecretReader,
    is_invalid_grant,
    load_store_key,
    member_token_name,
    member_token_secrets,
    parse_reference,
    refresh_member_token,
)
from reconciler.credentials.stores import REFRESH_TOKEN, split_local
from reconciler.credentials.tokens import DEFAULT_REFRESH_AT, TokenAuthMethod
from reconciler.errors import ReconcilerError
from reconciler.probe.authserver import ProbeAuthServer
from reconciler.probe.settings import ProbeSettings
from reconciler.probe.transports import ProbeHttp
from reconciler.records import OAuthClientRecord
from reconciler.registry import ConcurrentChange, Registry
from reconciler.registry.records import ServerRecord, UserTokenRecord

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_METHODS: dict[str | None, TokenAuthMethod] = {
    "client_secret_basic": "client_secret_basic",
    "client_secret_post": "client_secret_post",
    "none": "none",
}


@dataclass(frozen=True)
class TokenRenewal:
    """What refreshing members' tokens needs, passed in by the caller (`default_renewal` builds one).

    `probe` bounds and guards the two requests of a refresh like every probe request; `wait` bounds how long a
    resolution waits for another one's refresh; the lease outlives the refresh's own bound, so a refresher that
    dies blocks others for at most `lease`."""

    minted: MintedSecretStore
    fingerprint_key: bytes = field(repr=False)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    refresh_at: float = DEFAULT_REFRESH_AT
    wait: float = 20.0
    poll_interval: float = 0.05

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=3 * self.probe.total_timeout)


def default_renewal(registry: Registry, *, probe: ProbeSettings | None = None) -> TokenRenewal:
    """A renewal with the local store's key (`$MCP_RECONCILER_KEY` or the key file) and the registry's
    fingerprint key. Raises `SecretKeyProblem` when no key exists: nothing sealed could be read anyway."""
    key = load_store_key(environ=os.environ, database_path=registry.database_path(), create=False)
    return TokenRenewal(
        minted=MintedSecretStore(registry, key),
        fingerprint_key=registry.fingerprint_key(),
        probe=probe or ProbeSettings(),
    )


def store_member_tokens(
    registry: Registry,
    minted: MintedSecretStore,
    token: MintedToken,
    *,
    tenant: str,
    server: str,
    user: str,
    connection: str | None = None,
    client_id: str,
    issuer: str,
    scopes: Sequence[str] = (),
) -> int:
    """Seal a member's access and refresh token and record the row that references them, in one transaction
    (what a connect flow's callback does after the code exchange); returns the row id."""
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
    with registry.transaction() as transaction:
        minted.put_all(secrets, transaction=transaction)
        if refresh_ref is None:
            minted.delete(tenant, name, [REFRESH_TOKEN], transaction=transaction)
        return transaction.put_member_token(record)


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


def renew_due_tokens(
    registry: Registry,
    tokens: Sequence[UserTokenRecord],
    servers: dict[str, ServerRecord],
    *,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
    now: dt.datetime,
) -> None:
    """Refresh each due token of `tokens` (one member's), single-flight; failures are logged, never raised, so
    the resolution that follows reports the token's state instead."""
    for token in tokens:
        server = servers.get(token.server)
        if server is None or token.row_id is None or not renewal_due(token, now=now, refresh_at=renewal.refresh_at):
            continue
        _renew(registry, token, server, renewal=renewal, secrets=secrets)


def _renew(
    registry: Registry,
    token: UserTokenRecord,
    server: ServerRecord,
    *,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
) -> None:
    assert token.row_id is not None
    holder = uuid.uuid4().hex
    claimed = registry.claim_token_refresh(
        token.row_id, holder=holder, seen_expires_at=token.expires_at, lease=renewal.lease
    )
    if not claimed:
        _await_refresh(registry, token, renewal=renewal)
        return
    what = f"member {token.user_id}'s token for {token.tenant}/{token.server}"
    try:
        clients = registry.fetch_oauth_clients(tenant=token.tenant, server=token.server)
        client_secret, method = _client_authentication(token, clients, renewal=renewal, secrets=secrets)
        refreshed = _run(
            _refresh(token, server, client_secret=client_secret, method=method, renewal=renewal),
            timeout=renewal.lease.total_seconds(),
        )
    except OAuthRejected as err:
        forget = is_invalid_grant(err)
        _release(registry, token, renewal=renewal, holder=holder, forget=forget)
        if forget:
            logger.info("%s: the refresh token was refused (invalid_grant); the member must reconnect", what)
        else:
            logger.warning("%s was not refreshed: %s", what, err)
        return
    except ReconcilerError as err:
        _release(registry, token, renewal=renewal, holder=holder, forget=False)
        logger.warning("%s was not refreshed: %s", what, err)
        return
    except BaseException:
        _release(registry, token, renewal=renewal, holder=holder, forget=False)
        raise
    try:
        _store(registry, token, refreshed, renewal=renewal, holder=holder)
    except ConcurrentChange:
        # The lease ran out mid-refresh and another caller took over: its token set stands, ours is discarded.
        logger.warning("%s: the refresh outlived its lease; another refresh took over", what)
        return
    logger.info("%s refreshed; it expires at %s", what, refreshed.expires_at)


async def _refresh(
    token: UserTokenRecord,
    server: ServerRecord,
    *,
    client_secret: str | None,
    method: TokenAuthMethod,
    renewal: TokenRenewal,
) -> MintedToken:
    assert token.refresh_token_ref is not None and token.issuer is not None and token.client_id is not None
    refresh_token = _read(token.refresh_token_ref, renewal=renewal, secrets=None)
    if refresh_token is None:
        raise OAuthRejected("the stored refresh token is gone", oauth_error="invalid_grant")
    async with ProbeHttp() as http:
        access = AuthServerAccess(client=ProbeAuthServer(http, renewal.probe), allow_private=server.allow_private)
        return await refresh_member_token(
            issuer=token.issuer,
            client_id=token.client_id,
            client_secret=client_secret,
            method=method,
            refresh_token=refresh_token,
            scopes=token.scopes,
            resource=server.url,
            access=access,
            fingerprint_key=renewal.fingerprint_key,
        )


def _client_authentication(
    token: UserTokenRecord,
    clients: Sequence[OAuthClientRecord],
    *,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
) -> tuple[str | None, TokenAuthMethod]:
    """The secret and method of the client the token was obtained with: the server's registered client for that
    issuer when it is the same client, else a public client (`none`)."""
    for client in clients:
        if client.client_id != token.client_id or client.issuer != token.issuer:
            continue
        method = _METHODS.get(client.token_endpoint_auth_method, "client_secret_basic")
        if client.client_secret_ref is None or method == "none":
            return None, "none"
        return _read(client.client_secret_ref, renewal=renewal, secrets=secrets), method
    return None, "none"


def _read(reference: str, *, renewal: TokenRenewal, secrets: SecretReader | None) -> str | None:
    try:
        namespace, name, key = parse_reference(reference)
    except ValueError:
        return None
    if split_local(namespace) is not None:
        return renewal.minted.read(namespace, name, key)
    return None if secrets is None else secrets.read(namespace, name, key)


def _store(
    registry: Registry, token: UserTokenRecord, refreshed: MintedToken, *, renewal: TokenRenewal, holder: str
) -> None:
    assert token.row_id is not None and token.issuer is not None and token.client_id is not None
    name = member_token_name(server=token.server, connection=token.connection, user=token.user_id)
    secrets, access_ref, refresh_ref = member_token_secrets(
        refreshed, tenant=token.tenant, name=name, issuer=token.issuer, client_id=token.client_id
    )
    with registry.transaction() as transaction:
        renewal.minted.put_all(secrets, transaction=transaction)
        transaction.store_refreshed_token(
            token.row_id,
            holder=holder,
            secret_ref=access_ref,
            expires_at=refreshed.expires_at,
            issued_at=refreshed.issued_at,
            refresh_token_ref=refresh_ref,
            scopes=tuple((refreshed.scope or "").split()) or token.scopes,
        )


def _release(registry: Registry, token: UserTokenRecord, *, renewal: TokenRenewal, holder: str, forget: bool) -> None:
    assert token.row_id is not None
    with registry.transaction() as transaction:
        if transaction.release_token_refresh(token.row_id, holder=holder, forget_refresh_token=forget) and forget:
            name = member_token_name(server=token.server, connection=token.connection, user=token.user_id)
            renewal.minted.delete(token.tenant, name, [REFRESH_TOKEN], transaction=transaction)


def _await_refresh(registry: Registry, token: UserTokenRecord, *, renewal: TokenRenewal) -> None:
    """Wait, bounded, until another caller's refresh of `token` ended (the row changed or the lease is gone)."""
    assert token.row_id is not None
    deadline = time.monotonic() + renewal.wait
    while time.monotonic() < deadline:
        found = registry.fetch_member_token(token.row_id)
        if found is None or found.expires_at != token.expires_at or found.refresh_lease_until is None:
            return
        time.sleep(renewal.poll_interval)
    logger.warning(
        "member %s's token for %s/%s: another refresh did not finish within %.0f s",
        token.user_id,
        token.tenant,
        token.server,
        renewal.wait,
    )


def _run(coroutine: Coroutine[Any, Any, _T], *, timeout: float) -> _T:
    """Run a coroutine to completion from synchronous code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=timeout)


class MemberTokenValues:
    """A `SecretReader` that reads `local:` references (members' sealed tokens) from the local store and every
    other reference from the caller's reader, so a resolution renders a refreshed token like any other value."""

    def __init__(self, secrets: SecretReader, minted: MintedSecretStore) -> None:
        self._secrets = secrets
        self._minted = minted

    def __repr__(self) -> str:
        return f"MemberTokenValues({self._secrets!r}, {self._minted!r})"

    def read(self, namespace: str, name: str, key: str) -> str | None:
        if split_local(namespace) is not None:
            found = self._minted.read(namespace, name, key)
            return found if found is not None else self._secrets.read(namespace, name, key)
        return self._secrets.read(namespace, name, key)
