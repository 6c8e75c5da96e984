"""The reconciler's own runs renew members' due tokens (`engine.renewing`), on SQLite and PostgreSQL, against the
real fixture authorization server: one refresh per due token, nothing for tokens not due or of other tenants,
and a refused refresh token counted and forgotten; each issuer's metadata and each server's clients are read once
per run; racing runs send one refresh per token, and a run leaves a token another caller is refreshing to it
without waiting. No token value reaches the logs or the registry in clear."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio
import pytest

from reconciler.credentials import (
    KEY_ENV,
    DueMemberToken,
    MemberTokenRenewal,
    MintedSecretStore,
    RenewalOutcome,
)
from reconciler.engine.inputs import StaticSecrets
from reconciler.engine.renewing import RENEWAL_BATCH, renew_member_tokens, renew_member_tokens_in_batches
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeSettings
from reconciler.records import OAuthClientRecord
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord, TenantRecord
from reconciler.runtime import store_member_tokens
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.runtime.test_token_renewal import (
    CLIENT_ID,
    LIFETIME,
    SERVER,
    TENANT,
    TokenRenewal,
    _assert_nowhere,
    _connect_alice,
    _member_server,
)

LOCAL = ProbeSettings(allow_private_networks=True, total_timeout=10)
RACERS = 4
PRESET_ID = "crm-app"
JOIN_SECONDS = 120
_T = TypeVar("_T")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(value).decode())
    return value


def _alice(registry: Registry, oauth_servers: OAuthServers, key: bytes, *, age: float) -> tuple[str, str]:
    _member_server(registry, oauth_servers)
    stored = TokenRenewal(minted=MintedSecretStore(registry, key), fingerprint_key=registry.fingerprint_key())
    return _connect_alice(registry, oauth_servers, stored, issued_at=dt.datetime.now(dt.UTC) - LIFETIME * age)


def test_a_run_renews_the_due_tokens_of_its_tenants(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old = _alice(registry, oauth_servers, key, age=0.85)

    elsewhere = renew_member_tokens(registry, tenants={"other"}, settings=LOCAL)
    first = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)
    second = renew_member_tokens(registry, tenants=None, settings=LOCAL)

    assert (elsewhere.summary(), second.summary()) == (None, None), "nothing due: nothing sent"
    assert first.outcomes == {RenewalOutcome.RENEWED: 1}
    assert first.summary() == "member tokens: 1 renewed"
    assert oauth_servers.main.token_requests == 1
    (new_refresh,) = oauth_servers.main.refresh_tokens
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.refresh_token_ref is not None
    assert MintedSecretStore(registry, key).read(*_split(row.refresh_token_ref)) == new_refresh
    _assert_nowhere([*old, new_refresh], registry, caplog)


def _more_members(registry: Registry, oauth_servers: OAuthServers, key: bytes, members: list[str]) -> dt.datetime:
    """Store due tokens (90% of their lifetime) for `members` beside alice's; returns their issue time."""
    main = oauth_servers.main
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.9
    for member in members:
        token = main.member_token_set(
            CLIENT_ID, resource=oauth_servers.protected, issued_at=issued_at, lifetime=LIFETIME
        )
        store_member_tokens(
            registry,
            MintedSecretStore(registry, key),
            token,
            tenant=TENANT,
            server=SERVER,
            user=member,
            client_id=CLIENT_ID,
            issuer=main.issuer,
        )
    return issued_at


def test_a_run_reads_each_issuers_metadata_and_each_servers_clients_once(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice(registry, oauth_servers, key, age=0.85)
    _more_members(registry, oauth_servers, key, ["bob", "carol", "dave"])
    client_reads: list[tuple[str, str]] = []
    fetch_oauth_clients = registry.fetch_oauth_clients

    def counted(*, tenant: str, server: str) -> list[OAuthClientRecord]:
        client_reads.append((tenant, server))
        return fetch_oauth_clients(tenant=tenant, server=server)

    monkeypatch.setattr(registry, "fetch_oauth_clients", counted)

    started = dt.datetime.now(dt.UTC)
    renewals = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)

    main = oauth_servers.main
    assert renewals.outcomes == {RenewalOutcome.RENEWED: 4}
    assert (main.token_requests, main.metadata_requests) == (4, 1), "one metadata request per issuer and run"
    assert client_reads == [(TENANT, SERVER)], "one read of the server's clients per run"
    rows = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert len(rows) == 4
    assert all(row.issued_at is not None and row.issued_at >= started for row in rows)


@pytest.mark.parametrize("batch_size", [RENEWAL_BATCH, 3])
def test_racing_runs_send_one_refresh_per_token(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, batch_size: int
) -> None:
    _alice(registry, oauth_servers, key, age=0.85)
    _more_members(registry, oauth_servers, key, [f"member-{index}" for index in range(11)])
    started = dt.datetime.now(dt.UTC)

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        runs = [
            pool.submit(renew_member_tokens, registry, tenants={TENANT}, settings=LOCAL, batch_size=batch_size)
            for _ in range(RACERS)
        ]
        outcomes = sum((run.result(timeout=JOIN_SECONDS).outcomes for run in runs), Counter[RenewalOutcome]())

    assert oauth_servers.main.token_requests == 12, "exactly one refresh request per token"
    assert outcomes[RenewalOutcome.RENEWED] == 12
    assert set(outcomes) <= {RenewalOutcome.RENEWED, RenewalOutcome.WAITED}
    rows = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert len(rows) == 12
    assert all(row.issued_at is not None and row.issued_at >= started for row in rows)


def test_a_batch_spends_no_refresh_token_once_its_lease_could_run_out(
    registry: Registry, oauth_servers: OAuthServers, key: bytes
) -> None:
    """A lease is unsafe only if it can run out while its refresh token is spent: a batch whose lease left no
    room for a refresh and the store sends nothing, and gives every lease back for the next run."""
    _alice(registry, oauth_servers, key, age=0.85)
    _more_members(registry, oauth_servers, key, ["bob", "carol"])
    before = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    due = [DueMemberToken(token, oauth_servers.protected, True) for token in before]

    async def renew(http: ProbeHttp) -> Counter[RenewalOutcome]:
        renewal = MemberTokenRenewal(
            registry=registry,
            minted=MintedSecretStore(registry, key),
            authserver=ProbeAuthServer(http, LOCAL),
            fingerprint_key=registry.fingerprint_key(),
            lease=dt.timedelta(0),
            wait=0,
        )
        return await renew_member_tokens_in_batches(due, renewal=renewal)

    outcomes = anyio.run(_with_http, renew)

    assert outcomes == {RenewalOutcome.FAILED: 3}
    assert (oauth_servers.main.token_requests, oauth_servers.main.metadata_requests) == (0, 0)
    after = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert after == before, "every token as it was, every lease given back"
    assert all(row.refresh_lease_until is None for row in after)


async def _with_http(work: Callable[[ProbeHttp], Awaitable[_T]]) -> _T:
    async with ProbeHttp() as http:
        return await work(http)


def test_a_run_leaves_a_token_another_caller_is_refreshing(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    _alice(registry, oauth_servers, key, age=0.85)
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.row_id is not None
    held = registry.claim_token_refresh(
        row.row_id, holder="a-runtime", seen_expires_at=row.expires_at, lease=dt.timedelta(minutes=5)
    )

    renewals = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)

    assert held
    assert renewals.outcomes == {RenewalOutcome.WAITED: 1}
    assert oauth_servers.main.token_requests == 0
    assert "did not finish" not in caplog.text, "a run does not wait for another caller's refresh"


def test_a_refused_refresh_token_is_counted_and_forgotten(
    registry: Registry, oauth_servers: OAuthServers, key: bytes
) -> None:
    _alice(registry, oauth_servers, key, age=0.9)
    oauth_servers.main.refresh_tokens.clear()

    renewals = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)

    assert renewals.summary() == "member tokens: 1 refused (those members must reconnect)"
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.refresh_token_ref is None
    assert renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL).summary() is None


def test_a_run_refreshes_as_the_servers_pre_registered_confidential_client(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The spec's client (clientId + clientSecret, never in `oauth_clients`) authenticates the refresh with its
    secret, read from the Secret the row references: as a public client the issuer refuses it (invalid_client)."""
    caplog.set_level(logging.DEBUG)
    secret = "preset-secret-9c1d"
    main = oauth_servers.main
    main.add_client(PRESET_ID, secret, grant_types=("authorization_code", "refresh_token"))
    with registry.transaction() as tx:
        tx.ensure_tenants([TenantRecord(slug=TENANT, namespace=f"{TENANT}-ns")])
        tx.insert(
            [
                ServerRecord(
                    tenant=TENANT,
                    name=SERVER,
                    url=oauth_servers.protected,
                    auth_type="oauthAuthorizationCode",
                    auth={"pkce": "confidential", "clientId": PRESET_ID, "clientSecretRef": "acme-ns/crm-app#secret"},
                    allow_private=True,
                )
            ]
        )
    token = main.member_token_set(
        PRESET_ID,
        resource=oauth_servers.protected,
        issued_at=dt.datetime.now(dt.UTC) - LIFETIME * 0.9,
        lifetime=LIFETIME,
    )
    store_member_tokens(
        registry, MintedSecretStore(registry, key), token, tenant=TENANT, server=SERVER, user="alice",
        client_id=PRESET_ID, issuer=main.issuer,
    )  # fmt: skip
    secrets = StaticSecrets({("acme-ns", "crm-app"): {"secret": secret}})

    without = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)
    renewed = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL, secrets=secrets)

    assert without.outcomes == {RenewalOutcome.FAILED: 1}, "no secret to read: the client is not authenticated"
    assert renewed.outcomes == {RenewalOutcome.RENEWED: 1}
    assert main.grant_counts["refresh_token"] == 1
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.client_id == PRESET_ID and row.issued_at is not None and row.issued_at > token.issued_at
    assert secret not in caplog.text


def test_without_the_local_stores_key_nothing_is_renewed(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    _alice(registry, oauth_servers, key, age=0.9)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path) + "/absent.key")

    renewals = renew_member_tokens(registry, tenants={TENANT}, settings=LOCAL)

    assert renewals.summary() is not None and renewals.summary().startswith("member tokens: not renewed: no key")  # type: ignore[union-attr]
    assert oauth_servers.main.token_requests == 0


def _split(reference: str) -> tuple[str, str, str]:
    head, _, purpose = reference.partition("#")
    namespace, _, name = head.partition("/")
    return namespace, name, purpose
