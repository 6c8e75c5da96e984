"""`resolve(..., renew_tokens=True)` refreshes the due tokens it hands out (a member's own, else the organization's)
against the real fixture authorization server, on SQLite and PostgreSQL; the CLI's `resolve` does so unless
`--no-refresh`, and a library call only when asked.

Twenty concurrent resolutions of one expiring token send exactly one request to the token endpoint, and all
twenty hand out the rotated token; `invalid_grant` turns into `needs_reauthorization` once the token expires.
Every value the authorization server issued is checked against the logs (DEBUG, every logger), the
resolutions' reprs and a full registry dump: none may appear in clear.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

from reconciler.credentials import KEY_ENV, KEY_FILE_ENV, MintedSecretStore, load_store_key
from reconciler.demo.serving import ServerLoop
from reconciler.engine.inputs import StaticSecrets
from reconciler.engine.refreshing import renew_client_credentials
from reconciler.probe.settings import ProbeSettings
from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import Registry
from reconciler.registry.records import GrantRecord, GrantSubjectRecord, ServerRecord, TenantRecord
from reconciler.runtime import build_mcp_app, resolve
from reconciler.runtime.renewing import OnDemandRenewal, TokenRenewal, store_member_tokens
from reconciler.runtime.resolution import Resolution, ServerState
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.cli.test_commands import run
from tests.integration.runtime.test_endpoint import _call, structured

__all__ = ["oauth_servers", "oauth_servers_session"]

TENANT = "acme"
SERVER = "notes"
CLIENT_ID = "member-app"
RESOLVERS = 20
JOIN_SECONDS = 120
LIFETIME = dt.timedelta(hours=1)
LOCAL_PROBE = ProbeSettings(allow_private_networks=True, total_timeout=10)
ENDPOINT_TOKEN = "endpoint-renewal-token"


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
    registry: Registry,
    oauth_servers: OAuthServers,
    renewal: TokenRenewal,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _member_server(registry, oauth_servers)
    # The resolutions judge at `due`, 51 minutes ahead of the real clock; the renewed token is issued by the real
    # clock, so with the same lifetime it would be due again at `due`, and a resolver the machine's scheduler
    # starts after the first refresh stored it would rightly renew it once more. A renewed token that outlives
    # `due` by far keeps the test about concurrency, not about when each thread happens to run.
    monkeypatch.setattr(oauth_servers.main, "token_lifetime", 10 * LIFETIME.total_seconds())
    issued_at = dt.datetime.now(dt.UTC)
    old_access, old_refresh = _connect_alice(registry, oauth_servers, renewal, issued_at=issued_at)
    due = issued_at + LIFETIME * 0.85  # past 80% of the lifetime, not yet expired
    barrier = threading.Barrier(RESOLVERS, timeout=JOIN_SECONDS)

    def one(_: int) -> Resolution:
        barrier.wait()
        return _resolve(registry, renewal, now=due)

    with ThreadPoolExecutor(RESOLVERS) as pool:
        resolutions = list(pool.map(one, range(RESOLVERS), timeout=JOIN_SECONDS))

    late = _resolve(registry, renewal, now=due)  # a resolver that starts after the refresh was stored
    main = oauth_servers.main
    assert main.token_requests == 1, "one refresh request reached the authorization server"
    assert main.grant_counts["refresh_token"] == 1
    (new_refresh,) = main.refresh_tokens
    new_access = main.refresh_tokens[new_refresh].token
    assert new_access != old_access and new_refresh != old_refresh
    assert main.verify(new_access, resource=oauth_servers.protected, audience=None) is not None
    for resolution in [*resolutions, late]:
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


@pytest.mark.parametrize(
    ("flags", "renewed", "warned"),
    [((), True, False), (("--no-refresh",), False, False), (("--renew-tokens",), True, True)],
    ids=["by-default", "no-refresh", "deprecated-renew-tokens"],
)
def test_the_cli_resolve_renews_with_the_local_stores_key(
    registry: Registry,
    registry_url: str,
    oauth_servers: OAuthServers,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    flags: tuple[str, ...],
    renewed: bool,
    warned: bool,
) -> None:
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(key).decode())
    _member_server(registry, oauth_servers)
    stored = TokenRenewal(minted=MintedSecretStore(registry, key), fingerprint_key=registry.fingerprint_key())
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.9  # due by the real clock the CLI reads
    old_access, old_refresh = _connect_alice(registry, oauth_servers, stored, issued_at=issued_at)
    command = ("resolve", "-n", TENANT, "--user", "alice", "-o", "json", "--registry", registry_url)

    code, out, err = run(*command, *flags, "--allow-private-networks")
    again, _, _ = run(*command, *flags, "--allow-private-networks")

    assert (code, again) == (0, 0), err
    assert ("--renew-tokens is deprecated and does nothing" in err) is warned, err
    assert oauth_servers.main.token_requests == (1 if renewed else 0), "the second run finds the token renewed"
    (server,) = json.loads(out)["servers"]
    assert (server["state"], server["headers"]) == ("ready", {"Authorization": "Bearer ***"})
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.issued_at is not None and (row.issued_at > issued_at) is renewed
    _assert_nowhere([old_access, old_refresh, *oauth_servers.main.refresh_tokens], registry, logs, out, err)


def _connect_organization(registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal) -> str:
    """The organization's shared token set (what `connect --shared` stores), issued 90% of a lifetime ago."""
    token = oauth_servers.main.member_token_set(
        CLIENT_ID,
        resource=oauth_servers.protected,
        issued_at=dt.datetime.now(dt.UTC) - LIFETIME * 0.9,
        lifetime=LIFETIME,
    )
    store_member_tokens(
        registry, renewal.minted, token, tenant=TENANT, server=SERVER, user=ORGANIZATION_MEMBER,
        client_id=CLIENT_ID, issuer=oauth_servers.main.issuer,
    )  # fmt: skip
    return token.access_token


@pytest.mark.parametrize("user", ["bob", None], ids=["member-without-own", "no-member"])
def test_resolve_renews_the_organizations_token_it_falls_back_to(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal, user: str | None
) -> None:
    _member_server(registry, oauth_servers)
    old_access = _connect_organization(registry, oauth_servers, renewal)

    untouched = resolve(registry, TENANT, user=user, secrets=StaticSecrets(), show_secrets=True, renewal=renewal)
    assert oauth_servers.main.token_requests == 0, "a library call renews only when asked"
    assert untouched.server(SERVER).headers == {"Authorization": f"Bearer {old_access}"}

    resolution = resolve(
        registry, TENANT, user=user, secrets=StaticSecrets(), show_secrets=True, renew_tokens=True, renewal=renewal
    )

    assert oauth_servers.main.grant_counts["refresh_token"] == 1
    resolved = resolution.server(SERVER)
    assert resolved.state is ServerState.READY and resolved.scope == "platform", resolved
    (new_refresh,) = oauth_servers.main.refresh_tokens
    assert resolved.headers == {"Authorization": f"Bearer {oauth_servers.main.refresh_tokens[new_refresh].token}"}


def test_a_members_own_token_is_renewed_not_the_organizations_beside_it(
    registry: Registry, oauth_servers: OAuthServers, renewal: TokenRenewal
) -> None:
    """Only what is handed out is renewed: alice has her own token, so the organization's stays as it is."""
    _member_server(registry, oauth_servers)
    _connect_organization(registry, oauth_servers, renewal)
    _connect_alice(registry, oauth_servers, renewal, issued_at=dt.datetime.now(dt.UTC) - LIFETIME * 0.9)

    resolution = _resolve(registry, renewal, now=dt.datetime.now(dt.UTC))

    assert resolution.server(SERVER).scope == "user"
    assert oauth_servers.main.grant_counts["refresh_token"] == 1
    tokens = {row.user_id: row for row in registry.fetch_user_tokens(tenant=TENANT, server=SERVER)}
    organization = tokens[ORGANIZATION_MEMBER]
    assert organization.issued_at is not None and organization.issued_at < dt.datetime.now(dt.UTC) - LIFETIME * 0.8


def _parts(reference: str) -> tuple[str, str, str]:
    head, _, key = reference.partition("#")
    namespace, _, name = head.partition("/")
    return namespace, name, key


def test_the_endpoints_renewal_is_built_once_the_store_key_exists(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve`'s endpoint keeps its member-token renewal instead of reading the key file on every resolution; until
    a key exists (a connect flow or an `apply` creates it) each resolution looks again."""
    key_file = tmp_path / "store.key"
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    kept = OnDemandRenewal(probe=LOCAL_PROBE).kept_renewal(registry)

    assert kept() is None, "no key yet: nothing was ever sealed"
    key = load_store_key(environ={}, key_file=key_file)
    first = kept()

    assert first is not None and first.minted.key_id == MintedSecretStore(registry, key).key_id
    assert kept() is first


@pytest.mark.parametrize("renews", [True, False], ids=["serve-default", "serve-no-refresh"])
def test_the_endpoints_resolve_template_renews_like_the_cli(
    registry: Registry, oauth_servers: OAuthServers, monkeypatch: pytest.MonkeyPatch, renews: bool
) -> None:
    """`serve`'s MCP endpoint renews the due tokens it resolves (the member's, and through the engine's function the
    tenant's client-credentials tokens) unless it runs with `--no-refresh`."""
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(key).decode())
    _member_server(registry, oauth_servers)
    stored = TokenRenewal(minted=MintedSecretStore(registry, key), fingerprint_key=registry.fingerprint_key())
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.9
    _connect_alice(registry, oauth_servers, stored, issued_at=issued_at)
    minting: list[str] = []

    def client_credentials(registry: Registry, tenant: str) -> None:
        minting.append(tenant)
        renew_client_credentials(registry, StaticSecrets(), tenants=[tenant], settings=LOCAL_PROBE)

    renewing = OnDemandRenewal(probe=LOCAL_PROBE, client_credentials=client_credentials) if renews else None
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_mcp_app(registry, token=ENDPOINT_TOKEN, renewing=renewing))
        _, result = anyio.run(
            functools.partial(_call, token=ENDPOINT_TOKEN),
            f"{base}/mcp",
            [("resolve_template", {"tenant": TENANT, "user": "alice"})],
        )

    (server,) = structured(result)["servers"]
    assert server["state"] == "ready"
    assert oauth_servers.main.grant_counts["refresh_token"] == (1 if renews else 0)
    assert minting == ([TENANT] if renews else [])
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.issued_at is not None and (row.issued_at > issued_at) is renews
