"""`renew_member_token` against oidc-provider, a certified OpenID provider with rotating refresh tokens: the
member logs in through the provider's real pages with the client the reconciler registered (public, or
confidential with its sealed secret), the runtime stores the token set, and renewing it twice in a row works
only because each rotated refresh token was stored with its access token. The token endpoint is found from the
provider's own metadata. No issued value reaches a log record or the registry in clear."""

from __future__ import annotations

import json
import logging

import pytest

from reconciler.credentials import MemberTokenRenewal, RenewalOutcome
from reconciler.probe import ProbeAuthServer
from reconciler.runtime import store_member_tokens
from reconciler.runtime.renewing import renew_member_token
from tests.fixtures.oidc_provider import OIDCProtectedMCP, oidc_protected_mcp, oidc_provider
from tests.integration.credentials.support import LOCAL, TENANT, World, probe, run, world
from tests.integration.credentials.test_oidc_provider import code_server, member_logs_in, prepare

__all__ = ["oidc_protected_mcp", "oidc_provider"]

pytestmark = pytest.mark.slow


def _renew(w: World, url: str) -> RenewalOutcome:
    (row,) = w.registry.fetch_user_tokens(tenant=TENANT, server="crm")
    return run(
        lambda http: renew_member_token(
            row,
            server_url=url,
            allow_private=True,
            renewal=MemberTokenRenewal(
                registry=w.registry,
                minted=w.store.minted,
                authserver=ProbeAuthServer(http, LOCAL),
                fingerprint_key=w.registry.fingerprint_key(),
                secrets=w.store,
            ),
        )
    )


def _access_token(w: World) -> str:
    (row,) = w.registry.fetch_user_tokens(tenant=TENANT, server="crm")
    namespace, _, rest = row.secret_ref.partition("/")
    name, _, key = rest.partition("#")
    value = w.store.minted.read(namespace, name, key)
    assert value is not None
    return value


@pytest.mark.parametrize("pkce", ["public", "confidential"])
def test_a_members_token_renews_twice_with_rotated_refresh_tokens(
    registry_url: str, oidc_protected_mcp: OIDCProtectedMCP, caplog: pytest.LogCaptureFixture, pkce: str
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    record = code_server("crm", url, pkce)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.client is not None
        token, login = member_logs_in(w, provider, prepared, resource=url, login="alice")
        store_member_tokens(
            w.registry,
            w.store.minted,
            token,
            tenant=TENANT,
            server="crm",
            user="alice",
            client_id=prepared.client.client_id,
            issuer=provider.issuer,
        )

        outcomes = [_renew(w, url), _renew(w, url)]
        renewed = _access_token(w)

        assert outcomes == [RenewalOutcome.RENEWED, RenewalOutcome.RENEWED]
        assert renewed != token.access_token
        assert probe(url, {"Authorization": f"Bearer {renewed}"}).ok, "the renewed token reaches the MCP server"
        (row,) = w.registry.fetch_user_tokens(tenant=TENANT, server="crm")
        assert row.refresh_token_ref is not None and row.refresh_lease_until is None
        logged = caplog.text + "".join(repr(record.args) + str(record.msg) for record in caplog.records)
        dump = json.dumps(w.registry.dump(), default=str)
        secrets = [token.access_token, token.refresh_token or "", renewed, *login.values()]
        if prepared.client.client_secret:
            secrets.append(prepared.client.client_secret)
        for value in secrets:
            assert value not in logged and value not in dump
