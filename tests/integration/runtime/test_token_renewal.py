"""`resolve(..., renew_tokens=True)` refreshes a member's due token against the real fixture authorization server,
on SQLite and PostgreSQL.

Twenty concurrent resolutions of one expiring token send exactly one request to the token endpoint, and all
twenty hand out the rotated token; `invalid_grant` turns into `needs_reauthorization` once the token expires.
Every value the authorization server issued is checked against the logs (DEBUG, every logger), the
resolutions' reprs and a full registry dump: none may appear in clear.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.credentials import KEY_ENV, MintedSecretStore
from reconciler.engine.inputs import StaticSecrets
from reconciler.probe.settings import ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import GrantRecord, GrantSubjectRecord, ServerRecord, TenantRecord
from reconciler.runtime import resolve
from reconciler.runtime.renewing import TokenRenewal, store_member_tokens
from reconciler.runtime.resolution import Resolution, ServerState
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.cli.test_commands import run

__all__ = ["oauth_servers", "oauth_servers_session"]

TENANT = "acme"
SERVER = "notes"
CLIENT_ID = "member-app"
RESOLVERS = 20
JOIN_SECONDS = 120
LIFETIME = dt.timedelta(hours=1)


@pytest.fixture
def renewal(registry: Registry) -> TokenRenewal:
    return TokenRenewal(
        minted=MintedSecretStore(registry, os.urandom(32)),
        fingerprint_key=registry.fingerprint_key(),
        probe=ProbeSettings(allow_private_networks=True, total_timeout=10),
        wait=60,
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx2", "httpcore2", "mcp", "reconciler"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _member_server(registry: Registry, oauth_servers: OAuthServers) -> None:
    with registry.transaction() as tx:
        tx.ensure_tenants([TenantRecord(slug=TENANT, namespace=f"{TENANT}-ns")])
        tx.insert(
            [
                ServerRecord(
                    tenant=TENANT,
                    name=SERVER,
                    url=oauth_servers.protected,
                    auth_type="oauthAuthorizationCode",
                    auth={"pkce": "public", "clientId": CLIENT_ID},
                    allow_private=True,
                ),
                GrantRecord(
                    tenant=TENANT,
                    name="everyone",
                    target_server=SERVER,
                    subjects=(GrantSubjectRecord(kind="Organization"),),
                ),
            ]
        )
    oauth_servers.main.add_client(CLIENT_ID, None, method="none", grant_types=("authorization_code", "refresh_token"))


def _connect_alice(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal, *, issued_at: dt.datetime
) -> tuple[str, str]:
    """What a connect flow's callback stores: alice's first token set, obtained with `member-app`."""
    token = oauth_servers.main.member_token_set(
        CLIENT_ID, resource=oauth_servers.protected, issued_at=issued_at, lifetime=LIFETIME
    )
    store_member_tokens(
        registry,
        renewal.minted,
        token,
        tenant=TENANT,
        server=SERVER,
        user="alice",
        client_id=CLIENT_ID,
        issuer=oauth_servers.main.issuer,
    )
    assert token.refresh_token is not None
    return token.access_token, token.refresh_token


def _resolve(registry: Registry, renewal: TokenRenewal, *, now: dt.datetime) -> Resolution:
    return resolve(
        registry,
        TENANT,
        user="alice",
        secrets=StaticSecrets(),
        show_secrets=True,
        renew_tokens=True,
        renewal=renewal,
        now=now,
    )


def _assert_nowhere(values: list[str], registry: Registry, logs: pytest.LogCaptureFixture, *texts: str) -> None:
    logged = logs.text + "".join(repr(record.args) + str(record.msg) for record in logs.records)
    dump = json.dumps(registry.dump(), default=str)
    for value in values:
        assert value not in logged, "a token value reached a log record"
        assert value not in dump, "a token value is in the registry in clear"
        for text in texts:
            assert value not in text


def test_twenty_concurrent_resolutions_send_one_refresh(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal, logs: pytest.LogCaptureFixture
) -> None:
    _member_server(registry, oauth_servers)
    issued_at = dt.datetime.now(dt.UTC)
    old_access, old_refresh = _connect_alice(registry, oauth_servers, renewal, issued_at=issued_at)
    due = issued_at + LIFETIME * 0.85  # past 80% of the lifetime, not yet expired
    barrier = threading.Barrier(RESOLVERS, timeout=JOIN_SECONDS)

    def one(_: int) -> Resolution:
        barrier.wait()
        return _resolve(registry, renewal, now=due)

    with ThreadPoolExecutor(RESOLVERS) as pool:
        resolutions = list(pool.map(one, range(RESOLVERS), timeout=JOIN_SECONDS))

    main = oauth_servers.main
    assert main.token_requests == 1, "one refresh request reached the authorization server"
    assert main.grant_counts["refresh_token"] == 1
    (new_refresh,) = main.refresh_tokens
    new_access = main.refresh_tokens[new_refresh].token
    assert new_access != old_access and new_refresh != old_refresh
    assert main.verify(new_access, resource=oauth_servers.protected, audience=None) is not None
    for resolution in resolutions:
        resolved = resolution.server(SERVER)
        assert resolved.state is ServerState.READY, resolved.reason
        assert resolved.headers == {"Authorization": f"Bearer {new_access}"}
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.refresh_lease_until is None
    assert row.issued_at is not None and row.issued_at > issued_at
    assert row.refresh_token_ref is not None
    assert renewal.minted.read(*_parts(row.refresh_token_ref)) == new_refresh, "the rotated refresh token is stored"
    masked = resolve(registry, TENANT, user="alice", now=due)
    _assert_nowhere(
        [old_access, old_refresh, new_access, new_refresh], registry, logs, repr(masked), json.dumps(masked.to_json())
    )


def test_a_token_not_yet_due_is_not_refreshed(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal
) -> None:
    _member_server(registry, oauth_servers)
    issued_at = dt.datetime.now(dt.UTC)
    access_token, _ = _connect_alice(registry, oauth_servers, renewal, issued_at=issued_at)

    resolution = _resolve(registry, renewal, now=issued_at + LIFETIME * 0.5)

    assert oauth_servers.main.token_requests == 0
    assert resolution.server(SERVER).headers == {"Authorization": f"Bearer {access_token}"}


def test_invalid_grant_needs_reauthorization(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal, logs: pytest.LogCaptureFixture
) -> None:
    _member_server(registry, oauth_servers)
    issued_at = dt.datetime.now(dt.UTC)
    access_token, refresh_token = _connect_alice(registry, oauth_servers, renewal, issued_at=issued_at)
    oauth_servers.main.refresh_tokens.clear()  # revoked at the authorization server

    due = _resolve(registry, renewal, now=issued_at + LIFETIME * 0.9)
    expired = _resolve(registry, renewal, now=issued_at + LIFETIME)

    assert oauth_servers.main.token_requests == 1, "a refused refresh token is not tried again"
    assert due.server(SERVER).state is ServerState.READY, "still valid until it expires"
    reauthorize = expired.server(SERVER)
    assert reauthorize.state is ServerState.NEEDS_REAUTHORIZATION
    assert reauthorize.action is not None and reauthorize.action.startswith("reconnect your")
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.refresh_token_ref is None and row.refresh_lease_until is None
    assert not [s for s in registry.fetch_local_secrets(TENANT) if s.purpose == "oauth-refresh-token"]
    _assert_nowhere([access_token, refresh_token], registry, logs, repr(expired))


def test_an_unreachable_authorization_server_keeps_the_token_and_releases_the_lease(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal
) -> None:
    _member_server(registry, oauth_servers)
    issued_at = dt.datetime.now(dt.UTC)
    _connect_alice(registry, oauth_servers, renewal, issued_at=issued_at)
    blocked = TokenRenewal(minted=renewal.minted, fingerprint_key=renewal.fingerprint_key)  # no private networks

    resolution = _resolve(registry, blocked, now=issued_at + LIFETIME)

    assert oauth_servers.main.token_requests == 0
    resolved = resolution.server(SERVER)
    assert resolved.state is ServerState.BLOCKED
    assert resolved.reason is not None and "has not been refreshed yet" in resolved.reason
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.refresh_token_ref is not None and row.refresh_lease_until is None


def test_the_cli_resolve_renews_with_the_local_stores_key(
    registry: Registry,
    registry_url: str,
    oauth_servers: OAuthServers,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(key).decode())
    _member_server(registry, oauth_servers)
    stored = TokenRenewal(minted=MintedSecretStore(registry, key), fingerprint_key=registry.fingerprint_key())
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.9  # due by the real clock the CLI reads
    old_access, old_refresh = _connect_alice(registry, oauth_servers, stored, issued_at=issued_at)
    command = ("resolve", "-n", TENANT, "--user", "alice", "-o", "json", "--registry", registry_url)

    code, out, err = run(*command, "--renew-tokens", "--allow-private-networks")
    again, _, _ = run(*command, "--renew-tokens", "--allow-private-networks")

    assert (code, again, err) == (0, 0, "")
    assert oauth_servers.main.token_requests == 1, "the second run finds the token renewed"
    (server,) = json.loads(out)["servers"]
    assert (server["state"], server["headers"]) == ("ready", {"Authorization": "Bearer ***"})
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.issued_at is not None and row.issued_at > issued_at
    (new_refresh,) = oauth_servers.main.refresh_tokens
    _assert_nowhere([old_access, old_refresh, new_refresh], registry, logs, out)


def _parts(reference: str) -> tuple[str, str, str]:
    head, _, key = reference.partition("#")
    namespace, _, name = head.partition("/")
    return namespace, name, key
