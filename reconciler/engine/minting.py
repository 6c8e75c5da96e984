"""Performs the token exchanges the credentials package decides: a server's client-credentials token read back,
reused, refreshed or minted as `tokens.token_step` says and sealed again as `tokens.token_rows` says (called by
`authorizing.py` when it prepares an `oauthClientCredentials` server or verifies a rotated client), and a member's
grants: the authorization-code exchange (`connecting.py`) and the refresh-token grant. Each request is built by
`tokens.token_request` and its answer read by `tokens.read_token_answer` (the refresh grant's both by
`tokens.refresh_grant_steps`, which a member token's refresh shares); this module only sends them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from reconciler.credentials.authserver import AuthServerAccess, AuthServerRequest
from reconciler.credentials.errors import OAuthRejected
from reconciler.credentials.registration import CredentialStores
from reconciler.credentials.stores import ACCESS_TOKEN, REFRESH_TOKEN
from reconciler.credentials.tokens import (
    DEFAULT_REFRESH_AT,
    MintedToken,
    TokenClient,
    authorization_code_grant,
    client_credentials_grant,
    read_token_answer,
    refresh_grant_steps,
    request_inputs,
    stored_token,
    token_request,
    token_rows,
    token_step,
)

logger = logging.getLogger(__name__)


class TokenCache(Protocol):
    """Where a server's minted token lives between runs. `inputs` identifies the request that minted it."""

    def load(self, inputs: str, *, now: dt.datetime) -> MintedToken | None: ...

    def save(self, token: MintedToken, *, inputs: str) -> MintedToken: ...


class MemoryTokenCache:
    """A cache for one server in memory (a rotation's verification, tests)."""

    def __init__(self) -> None:
        self._entry: tuple[str, MintedToken] | None = None
        self.saves = 0

    def load(self, inputs: str, *, now: dt.datetime) -> MintedToken | None:
        if self._entry is None or self._entry[0] != inputs:
            return None
        return replace(self._entry[1], fresh=False)

    def save(self, token: MintedToken, *, inputs: str) -> MintedToken:
        self._entry = (inputs, token)
        self.saves += 1
        return token


class StoredTokenCache:
    """A server's token in the local encrypted store: read back by `tokens.stored_token`, written as
    `tokens.token_rows` says, in one transaction."""

    def __init__(self, stores: CredentialStores, *, tenant: str, server: str) -> None:
        self._registry = stores.registry
        self._minted = stores.minted
        self._tenant = tenant
        self._server = server

    def __repr__(self) -> str:
        return f"StoredTokenCache({self._tenant}/{self._server})"

    def load(self, inputs: str, *, now: dt.datetime) -> MintedToken | None:
        access = self._minted.get(self._tenant, self._server, ACCESS_TOKEN)
        if access is None or access.meta.get("inputs") != inputs:
            return None
        refresh = self._minted.get(self._tenant, self._server, REFRESH_TOKEN)
        return stored_token(access, refresh, inputs=inputs, now=now)

    def save(self, token: MintedToken, *, inputs: str) -> MintedToken:
        rows = token_rows(token, inputs=inputs, tenant=self._tenant, server=self._server)
        with self._registry.transaction() as transaction:
            self._minted.put_all(rows.seal, transaction=transaction)
            if rows.unseal:
                self._minted.delete(self._tenant, self._server, list(rows.unseal), transaction=transaction)
        return replace(token, reference=rows.reference)


async def client_credentials_token(
    *,
    client: TokenClient,
    scopes: Sequence[str] = (),
    resource: str | None = None,
    audience: str | None = None,
    access: AuthServerAccess,
    cache: TokenCache,
    fingerprint_key: bytes,
    now: dt.datetime | None = None,
    refresh_at: float = DEFAULT_REFRESH_AT,
) -> MintedToken:
    """A usable access token from the client-credentials grant: the cached one, a refreshed one or a new one, as
    `tokens.token_step` says; a refused refresh falls back to minting.

    Raises `InvalidClient` (an `auth`-class error naming the client, never its secret) for `invalid_client`,
    `OAuthRejected` for other OAuth errors, `AuthServerUnavailable` / `AuthServerBlocked` for the network.
    """
    if not 0 < refresh_at <= 1:
        raise ValueError("refresh_at must be a fraction of the token lifetime in (0, 1]")
    now = now or dt.datetime.now(dt.UTC)
    inputs = request_inputs(fingerprint_key, client=client, scopes=scopes, resource=resource, audience=audience)
    cached = cache.load(inputs, now=now)
    step = token_step(cached, now=now, refresh_at=refresh_at)
    if step == "reuse" and cached is not None:
        return cached
    token: MintedToken | None = None
    if step == "refresh" and cached is not None and cached.refresh_token:
        try:
            token = await refresh_access_token(
                client=client,
                refresh_token=cached.refresh_token,
                scopes=scopes,
                resource=resource,
                access=access,
                fingerprint_key=fingerprint_key,
                now=now,
            )
        except OAuthRejected as err:
            logger.debug("refresh at %s refused (%s); minting a new token", err.endpoint, err)
    if token is None:
        grant = client_credentials_grant(scopes=scopes, resource=resource, audience=audience)
        request = token_request(client, grant)
        token = await _exchange(request, client=client, access=access, fingerprint_key=fingerprint_key, now=now)
    return cache.save(token, inputs=inputs)


async def refresh_access_token(
    *,
    client: TokenClient,
    refresh_token: str,
    scopes: Sequence[str] = (),
    resource: str | None = None,
    access: AuthServerAccess,
    fingerprint_key: bytes,
    now: dt.datetime | None = None,
) -> MintedToken:
    """The refresh-token grant (RFC 6749 section 6), as `tokens.refresh_grant_steps` decides it; a server that
    rotates refresh tokens returns a new one, else the one spent is kept."""
    steps = refresh_grant_steps(
        client,
        refresh_token,
        scopes=scopes,
        resource=resource,
        fingerprint_key=fingerprint_key,
        now=now or dt.datetime.now(dt.UTC),
    )
    return await access.run(steps)


async def exchange_authorization_code(
    *,
    client: TokenClient,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    resource: str | None = None,
    access: AuthServerAccess,
    fingerprint_key: bytes,
    now: dt.datetime | None = None,
) -> MintedToken:
    """The authorization-code grant with PKCE (RFC 7636): what follows a member's consent."""
    request = token_request(
        client,
        authorization_code_grant(code, code_verifier=code_verifier, redirect_uri=redirect_uri, resource=resource),
        purpose="the authorization code exchange",
        extra_secrets=(code, code_verifier),
    )
    return await _exchange(
        request, client=client, access=access, fingerprint_key=fingerprint_key, now=now or dt.datetime.now(dt.UTC)
    )


async def _exchange(
    request: AuthServerRequest,
    *,
    client: TokenClient,
    access: AuthServerAccess,
    fingerprint_key: bytes,
    now: dt.datetime,
) -> MintedToken:
    answer = await access.perform(request)
    return read_token_answer(answer, request=request, client=client, fingerprint_key=fingerprint_key, now=now)
