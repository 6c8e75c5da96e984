"""`mcp-reconciler apply` renews members' due tokens, with the confidential client it registered itself.

Real CLI, real registries (SQLite and PostgreSQL), the real fixture authorization server: the first apply
registers a confidential client (RFC 7591) for an authorization-code server; a member's token obtained with that
client is stored as a connect flow would; once it is past 80% of its lifetime the next apply refreshes it,
authenticating with the registered client's sealed secret, and says so; the apply after that sends nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest
import yaml

from reconciler.credentials import KEY_ENV, MintedSecretStore
from reconciler.registry import open_registry
from reconciler.runtime import store_member_tokens
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import run

LIFETIME = dt.timedelta(hours=1)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(value).decode())
    return value


def test_apply_renews_a_members_due_token_with_the_registered_client(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, key: bytes
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    server = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": "crm", "namespace": "acme"},
        "spec": {
            "url": oauth_servers.protected,
            "auth": {"type": "oauthAuthorizationCode", "pkce": "confidential", "scopes": ["mcp:tools"]},
            "network": {"allowPrivate": True},
        },
    }
    (folder / "objects.yaml").write_text(yaml.safe_dump(server, sort_keys=False))
    apply = ("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)
    code, first, err = run(*apply)
    assert code == 0, err
    assert "member tokens" not in first

    main = oauth_servers.main
    registry = open_registry(registry_url)
    try:
        (client,) = registry.fetch_oauth_clients(tenant="acme", server="crm")
        assert client.client_secret_ref is not None and client.client_secret_ref.startswith("local:")
        issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.85
        token = main.member_token_set(
            client.client_id, resource=oauth_servers.protected, issued_at=issued_at, lifetime=LIFETIME
        )
        store_member_tokens(
            registry,
            MintedSecretStore(registry, key),
            token,
            tenant="acme",
            server="crm",
            user="alice",
            client_id=client.client_id,
            issuer=main.issuer,
        )
        refreshes_before = main.grant_counts["refresh_token"]

        code, second, err = run(*apply)
        code_again, third, _ = run(*apply)

        assert (code, code_again) == (0, 0), err
        assert "member tokens: 1 renewed" in second
        assert "member tokens" not in third
        assert main.grant_counts["refresh_token"] - refreshes_before == 1
        (row,) = registry.fetch_user_tokens(tenant="acme", server="crm")
        assert row.issued_at is not None and row.issued_at > issued_at
        dump = str(registry.dump())
    finally:
        registry.close()
    for value in main.issued_values():
        for text in (first, second, third, err, dump):
            assert value not in text, "an issued value (token or client secret) was printed or stored in clear"
