"""Members' tokens kept usable: storing a member's token set, and refreshing the due ones before a resolution.

Called by `resolving.resolve` when asked to `renew_tokens`, and by whatever completes a member's connect flow
(`store_member_tokens`). A resolution renews only what it is about to hand out (`tokens_handed_out`: the member's
own token for a server or connection, else the organization's it falls back to); client-credentials tokens are the
engine's to mint, so a driver passes their renewal in (`ClientCredentialsRenewal`). A member token is due once
`refresh_at` (0.8) of its lifetime has passed. The refresh is single-flight (`renew_member_token`): the registry's
compare-and-set lease lets exactly one caller send the refresh-token grant, the others wait, bounded, until the row
changes; the holder seals the new token set and updates the row in one transaction, and `invalid_grant` forgets the
refresh token. The refresh itself is the credentials package's pure `member_refresh_steps`, which the engine's
batched runs perform too: this module sends its requests through the probe's authorization-server adapter
(SSRF-guarded, bounded; `AuthServerAccess.run`) and answers its reads from the registry and the stores, from the
synchronous `resolve`.

Values live where the reconciler's minted values live: sealed in the registry's local store (`local:` references on
the row), because the runtime both reads and rewrites them on every refresh and the registry is the store it already
shares with every replica; a Kubernetes Secret would need write access to the cluster from every runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio

from reconciler.credentials import (
    MemberTokenRenewal,
    MintedSecretStore,
    OAuthRejected,
    RenewalOutcome,
    SecretKeyProblem,
    SecretReader,
    is_invalid_grant,
    load_store_key,
    member_token_name,
    renewal_due,
)
from reconciler.credentials.authserver import AuthServerAccess
from reconciler.credentials.local_store import MintedSecrets
from reconciler.credentials.member_tokens import (
    ClientsWanted,
    ValueWanted,
    member_refresh_steps,
    member_token_rows,
    refreshed_token_rows,
)
from reconciler.credentials.storage import MemberTokenStore
from reconciler.credentials.stores import REFRESH_TOKEN, read_stored_value, split_local
from reconciler.credentials.tokens import DEFAULT_REFRESH_AT, MintedToken
from reconciler.errors import ReconcilerError, RetryableError
from reconciler.probe.authserver import ProbeAuthServer
from reconciler.probe.settings import ProbeSettings
from reconciler.probe.transports import ProbeHttp
from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord, UserTokenRecord

_T = TypeVar("_T")
logger = logging.getLogger(__name__)


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
    client_secrets: SecretReader | None = None
    """Where a pre-registered confidential client's `clientSecret` is read for a refresh when the resolution was
    given no `secrets` of its own (`serve --secrets kubernetes`, which hands out no header values)."""

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=3 * self.probe.total_timeout)


class ClientCredentialsRenewal(Protocol):
    """Renews the due client-credentials tokens of one tenant (a slug) before a resolution hands them out; never
    raises for a server that cannot be renewed (its token stays as it is). The CLI and `serve` pass the engine's
    (`engine.refreshing.renew_client_credentials`): the runtime does not mint."""

    def __call__(self, registry: Registry, tenant: str) -> None: ...


@dataclass(frozen=True)
class OnDemandRenewal:
    """What a long-running resolver (`serve`'s MCP endpoint) renews before each resolution, as the CLI's `resolve`
    does by default: the due member and organization tokens it hands out (requests bounded and guarded by `probe`)
    and, through `client_credentials`, the minted client-credentials tokens."""

    probe: ProbeSettings = field(default_factory=ProbeSettings)
    client_credentials: ClientCredentialsRenewal | None = None
    client_secrets: SecretReader | None = None
    """Where pre-registered confidential clients' secrets are read for members' refreshes (None: nowhere, so such
    a refresh is sent without the secret and refused)."""

    def renewal(self, registry: Registry) -> TokenRenewal | None:
        """The member-token renewal over the store key; None while there is no key (nothing was ever sealed)."""
        try:
            renewal = default_renewal(registry, probe=self.probe)
        except SecretKeyProblem:
            return None
        return dataclasses.replace(renewal, client_secrets=self.client_secrets)

    def kept_renewal(self, registry: Registry) -> Callable[[], TokenRenewal | None]:
        """`renewal` for one registry, built by the first call that finds the store key and kept for every later
        one, so an endpoint does not read the key file and build the store on each resolution. Calls before a key
        exists keep looking (a connect flow or an `apply` may create it meanwhile). Once found, the key is kept as
        the CLI and the operator keep theirs from start-up: values sealed under a key only open with that key
        (`SecretSealer` names both key ids otherwise), so replacing it under a running server was never a way to
        change it."""
        kept: TokenRenewal | None = None

        def current() -> TokenRenewal | None:
            nonlocal kept
            if kept is None:
                kept = self.renewal(registry)  # a racing first call builds an equal one: either may be kept
            return kept

        return current


def tokens_handed_out(tokens: Sequence[UserTokenRecord], *, user: str | None) -> list[UserTokenRecord]:
    """The tokens a resolution for `user` would hand out: per server and connection, the member's own, else the
    organization's shared one (the only one without a member). Pure."""
    chosen: dict[tuple[str, str | None], UserTokenRecord] = {}
    for token in tokens:
        where = (token.server, token.connection)
        own = user is not None and token.user_id == user
        if own or (token.user_id == ORGANIZATION_MEMBER and where not in chosen):
            chosen[where] = token
    return list(chosen.values())


def default_renewal(registry: Registry, *, probe: ProbeSettings | None = None) -> TokenRenewal:
    """A renewal with the local store's key (`$MCP_RECONCILER_KEY` or the key file) and the registry's
    fingerprint key. Raises `SecretKeyProblem` when no key exists: nothing sealed could be read anyway."""
    key = load_store_key(environ=os.environ, database_path=registry.database_path(), create=False)
    return TokenRenewal(
        minted=MintedSecretStore(registry, key),
        fingerprint_key=registry.fingerprint_key(),
        probe=probe or ProbeSettings(),
    )


def renew_due_tokens(
    registry: Registry,
    tokens: Sequence[UserTokenRecord],
    servers: dict[str, ServerRecord],
    *,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
    now: dt.datetime,
) -> None:
    """Refresh each due token of `tokens` (one member's), single-flight (`renew_member_token`);
    failures are logged, never raised, so the resolution that follows reports the token's state instead."""
    due = [
        (token, servers[token.server])
        for token in tokens
        if token.server in servers
        and token.row_id is not None
        and renewal_due(token, now=now, refresh_at=renewal.refresh_at)
    ]
    if due:
        _run(_renew_all(registry, due, renewal=renewal, secrets=secrets), timeout=renewal.lease.total_seconds())


async def _renew_all(
    registry: Registry,
    due: Sequence[tuple[UserTokenRecord, ServerRecord]],
    *,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
) -> None:
    async with ProbeHttp() as http:
        ports = MemberTokenRenewal(
            registry=registry,
            minted=renewal.minted,
            authserver=ProbeAuthServer(http, renewal.probe),
            fingerprint_key=renewal.fingerprint_key,
            secrets=secrets,
            refresh_at=renewal.refresh_at,
            lease=renewal.lease,
            wait=renewal.wait,
            poll_interval=renewal.poll_interval,
        )
        for token, server in due:
            await renew_member_token(
                token,
                server_url=server.url,
                allow_private=server.allow_private,
                server_auth=server.auth,
                renewal=ports,
            )


async def renew_member_token(
    token: UserTokenRecord,
    *,
    server_url: str,
    allow_private: bool,
    renewal: MemberTokenRenewal,
    server_auth: Mapping[str, Any] | None = None,
) -> RenewalOutcome:
    """Refresh one member's token, single-flight (see the module docstring); never raises for a failed refresh,
    whose cause is logged without any value. `server_auth` is the server row's `auth` (its pre-registered client,
    if any)."""
    assert token.row_id is not None
    registry = renewal.registry
    holder = uuid.uuid4().hex
    if not registry.claim_token_refresh(
        token.row_id, holder=holder, seen_expires_at=token.expires_at, lease=renewal.lease
    ):
        await _await_refresh(token, renewal=renewal)
        return RenewalOutcome.WAITED
    what = f"member {token.user_id}'s token for {token.tenant}/{token.server}"
    try:
        assert token.refresh_token_ref is not None
        steps = member_refresh_steps(
            token,
            _read(token.refresh_token_ref, renewal=renewal),
            server_url=server_url,
            server_auth=server_auth or {},
            fingerprint_key=renewal.fingerprint_key,
            now=dt.datetime.now(dt.UTC),
            token_endpoints=renewal.token_endpoints,
            oauth_clients=renewal.oauth_clients,
        )
        access = AuthServerAccess(client=renewal.authserver, allow_private=allow_private)
        refreshed = await access.run(steps, answer=functools.partial(_read_for_refresh, renewal=renewal))
    except OAuthRejected as err:
        refused = is_invalid_grant(err)
        _release(token, renewal=renewal, holder=holder, forget=refused)
        if refused:
            logger.info("%s: the refresh token was refused (invalid_grant); the member must reconnect", what)
            return RenewalOutcome.REFUSED
        logger.warning("%s was not refreshed: %s", what, err)
        return RenewalOutcome.FAILED
    except ReconcilerError as err:
        _release(token, renewal=renewal, holder=holder, forget=False)
        logger.warning("%s was not refreshed: %s", what, err)
        return RenewalOutcome.FAILED
    except BaseException:
        _release(token, renewal=renewal, holder=holder, forget=False)
        raise
    try:
        _store(token, refreshed, renewal=renewal, holder=holder)
    except RetryableError as err:
        # The lease ran out mid-refresh and another caller took over: its token set stands, ours is discarded.
        logger.warning("%s: the refresh outlived its lease (%s)", what, err)
        return RenewalOutcome.FAILED
    logger.info("%s refreshed; it expires at %s", what, refreshed.expires_at)
    return RenewalOutcome.RENEWED


def _read_for_refresh(wanted: ValueWanted | ClientsWanted, *, renewal: MemberTokenRenewal) -> object:
    """What a member's refresh steps asked to read. The engine's batches answer them the same way (it may not
    import this module, nor this module it: the few lines are kept in both)."""
    if isinstance(wanted, ClientsWanted):
        return renewal.registry.fetch_oauth_clients(tenant=wanted.tenant, server=wanted.server)
    return _read(wanted.reference, renewal=renewal)


def _read(reference: str, *, renewal: MemberTokenRenewal) -> str | None:
    return read_stored_value(reference, minted=renewal.minted, secrets=renewal.secrets)


def _store(token: UserTokenRecord, refreshed: MintedToken, *, renewal: MemberTokenRenewal, holder: str) -> None:
    assert token.row_id is not None
    record, secrets = refreshed_token_rows(token, refreshed)
    with renewal.registry.transaction() as transaction:
        renewal.minted.put_all(secrets, transaction=transaction)
        transaction.store_refreshed_token(
            token.row_id,
            holder=holder,
            secret_ref=record.secret_ref,
            expires_at=record.expires_at,
            issued_at=refreshed.issued_at,
            refresh_token_ref=record.refresh_token_ref,
            scopes=record.scopes,
        )


def _release(token: UserTokenRecord, *, renewal: MemberTokenRenewal, holder: str, forget: bool) -> None:
    assert token.row_id is not None
    with renewal.registry.transaction() as transaction:
        if transaction.release_token_refresh(token.row_id, holder=holder, forget_refresh_token=forget) and forget:
            name = member_token_name(server=token.server, connection=token.connection, user=token.user_id)
            renewal.minted.delete(token.tenant, name, [REFRESH_TOKEN], transaction=transaction)


async def _await_refresh(token: UserTokenRecord, *, renewal: MemberTokenRenewal) -> None:
    """Wait, bounded, until another caller's refresh of `token` ended (the row changed or the lease is gone)."""
    assert token.row_id is not None
    if renewal.wait <= 0:
        return
    deadline = time.monotonic() + renewal.wait
    while time.monotonic() < deadline:
        found = renewal.registry.fetch_member_token(token.row_id)
        if found is None or found.expires_at != token.expires_at or found.refresh_lease_until is None:
            return
        await anyio.sleep(renewal.poll_interval)
    logger.warning(
        "member %s's token for %s/%s: another refresh did not finish within %.0f s",
        token.user_id,
        token.tenant,
        token.server,
        renewal.wait,
    )


def store_member_tokens(
    registry: MemberTokenStore,
    minted: MintedSecrets,
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
    (what a connect flow's callback does after the code exchange, as `member_token_rows` says); returns the row
    id."""
    rows = member_token_rows(
        token,
        tenant=tenant,
        server=server,
        user=user,
        connection=connection,
        client_id=client_id,
        issuer=issuer,
        scopes=scopes,
    )
    with registry.transaction() as transaction:
        minted.put_all(rows.seal, transaction=transaction)
        if rows.drop_refresh_token:
            minted.delete(tenant, rows.owner, [REFRESH_TOKEN], transaction=transaction)
        return transaction.put_member_token(rows.record)


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
