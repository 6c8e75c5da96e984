"""Client credentials reach the runtime: `resolve` hands out the token the reconciler minted, and that token is
what the protected MCP server accepts. An expired token is never handed out; `resolve` renews a due one on demand
(and `--no-refresh` does not). Real CLI, real registry (SQLite and PostgreSQL), the project's authorization server
and oidc-provider, and the MCP servers they protect."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.registry import open_registry
from reconciler.runtime import resolve
from reconciler.runtime.resolution import MASK
from tests.fixtures.authorization_server import OAuthServers
from tests.fixtures.oidc_provider import OIDC_SCOPE, OIDCProtectedMCP
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import CLIENT_CREDENTIALS, RIGHT_SECRET, granted_folder
from tests.integration.credentials.support import probe

LIFETIME_SECONDS = 2
LOCAL = ("--allow-private-networks",)


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def resolved(registry_url: str, *extra: str) -> tuple[dict[str, Any], str, str]:
    """`resolve -n acme -o json` with `extra` flags: the one server's entry, stdout and stderr."""
    code, out, err = run("resolve", "-n", "acme", "-o", "json", *extra, "--registry", registry_url)
    assert code == 0, err
    (server,) = json.loads(out)["servers"]
    return server, out, err


def apply(folder: str, registry_url: str) -> None:
    code, _, err = run("apply", "-f", folder, *LOCAL, "--registry", registry_url)
    assert code == 0, err


def bearer(server: dict[str, Any]) -> str:
    scheme, _, token = server["headers"]["Authorization"].partition(" ")
    assert scheme == "Bearer" and token
    return token


def test_resolve_hands_out_the_minted_token_and_the_server_accepts_it(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", RIGHT_SECRET)
    folder = granted_folder(tmp_path, oauth_servers.protected, CLIENT_CREDENTIALS, client_secret=RIGHT_SECRET)
    apply(folder, registry_url)
    assert oauth_servers.main.grant_counts["client_credentials"] == 1

    masked, out, err = resolved(registry_url, *LOCAL)
    assert masked["state"] == "ready", masked
    assert masked["headers"]["Authorization"] == f"Bearer {MASK}"
    shown, shown_out, _ = resolved(registry_url, "--show-secrets", "-f", folder, *LOCAL)
    token = bearer(shown)
    assert token in oauth_servers.main.issued_values()
    # Not due: resolving neither minted again nor printed the token where it was not asked for.
    assert oauth_servers.main.grant_counts["client_credentials"] == 1
    assert token not in out + err and RIGHT_SECRET not in out + err + shown_out

    result = probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"})
    assert result.ok, result.message
    assert result.tools is not None and {tool.name for tool in result.tools} == {"whoami", "fortune"}


def test_an_expired_token_is_never_handed_out_and_resolve_renews_a_due_one(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", RIGHT_SECRET)
    oauth_servers.main.token_lifetime = LIFETIME_SECONDS
    folder = granted_folder(tmp_path, oauth_servers.protected, CLIENT_CREDENTIALS, client_secret=RIGHT_SECRET)
    apply(folder, registry_url)
    (first,) = oauth_servers.main.issued_values()  # the token apply minted (read here, not by a timed resolve)
    time.sleep(LIFETIME_SECONDS + 0.5)

    stale, out, _ = resolved(registry_url, "--no-refresh", "--show-secrets", "-f", folder)
    assert stale["state"] == "blocked" and "expired at" in stale["reason"], stale
    assert stale["headers"] == {} and first not in out
    with open_registry(registry_url) as registry:
        python_api = resolve(registry, "acme")
    (server,) = python_api.servers
    assert server.state == "blocked" and "expired at" in (server.reason or "")
    assert oauth_servers.main.grant_counts["client_credentials"] == 1

    oauth_servers.main.token_lifetime = 3600  # what it mints now stays valid however slow the machine is
    fresh, _, err = resolved(registry_url, "--show-secrets", "-f", folder, *LOCAL)
    assert fresh["state"] == "ready", (fresh, err)
    renewed = bearer(fresh)
    assert renewed != first and oauth_servers.main.grant_counts["client_credentials"] == 2
    result = probe(oauth_servers.protected, {"Authorization": f"Bearer {renewed}"})
    assert result.ok, result.message


def test_apply_with_nothing_to_change_renews_a_due_token(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", RIGHT_SECRET)
    oauth_servers.main.token_lifetime = LIFETIME_SECONDS
    folder = granted_folder(tmp_path, oauth_servers.protected, CLIENT_CREDENTIALS, client_secret=RIGHT_SECRET)
    apply(folder, registry_url)  # (that a token not yet due is reused: the first test)
    time.sleep(LIFETIME_SECONDS + 0.5)
    oauth_servers.main.token_lifetime = 3600
    code, out, err = run("apply", "-f", folder, *LOCAL, "--registry", registry_url)
    assert code == 0 and "No changes" in out, out + err
    assert oauth_servers.main.grant_counts["client_credentials"] == 2
    fresh, _, _ = resolved(registry_url, "--no-refresh")
    assert fresh["state"] == "ready", fresh


def test_a_renewal_the_authorization_server_refuses_is_a_warning_without_the_secret(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", RIGHT_SECRET)
    oauth_servers.main.token_lifetime = LIFETIME_SECONDS
    folder = granted_folder(tmp_path, oauth_servers.protected, CLIENT_CREDENTIALS, client_secret=RIGHT_SECRET)
    apply(folder, registry_url)
    oauth_servers.main.clients.clear()  # the client is gone from the authorization server
    time.sleep(LIFETIME_SECONDS + 0.5)

    stale, out, err = resolved(registry_url, "-f", folder, *LOCAL)
    assert "warning: client-credentials token of acme/crm not renewed" in err and "invalid_client" in err, err
    assert stale["state"] == "blocked" and "expired at" in stale["reason"]
    assert RIGHT_SECRET not in out + err
    assert not any(value in out + err for value in oauth_servers.main.issued_values())


def test_oidc_provider_client_credentials_reach_the_runtime(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    machine = oidc_protected_mcp.provider.static_machine
    auth = {
        "type": "oauthClientCredentials",
        "clientId": {"value": machine.client_id},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": [OIDC_SCOPE],
    }
    folder = granted_folder(tmp_path, oidc_protected_mcp.url, auth, client_secret=machine.client_secret)
    apply(folder, registry_url)
    shown, out, err = resolved(registry_url, "--show-secrets", "-f", folder, *LOCAL)
    assert shown["state"] == "ready", (shown, err)
    result = probe(oidc_protected_mcp.url, {"Authorization": f"Bearer {bearer(shown)}"})
    assert result.ok, result.message
    assert result.tools is not None and {tool.name for tool in result.tools} == {"whoami", "fortune"}
    assert machine.client_secret not in out + err
