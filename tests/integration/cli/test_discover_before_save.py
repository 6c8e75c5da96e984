"""`test` on a server nobody applied yet discovers before save (as Wacht does): it prints what auth discovery
found (requires auth, recommended mode, authorization/token/registration URLs, resource, scopes, token-endpoint
auth methods, CIMD) in text and `-o json`, and writes nothing: no registry is created, an existing one is left
byte-for-byte as it was, and no client is registered or token minted at the authorization server. Real CLI, real
registries (SQLite and PostgreSQL), the real fixture authorization server and MCP servers it protects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from reconciler.registry import open_registry
from tests.fixtures.authorization_server import ALL_METHODS, SCOPE, AuthorizationServer, OAuthServers
from tests.fixtures.mcp_servers import LocalServers
from tests.integration.cli.test_commands import run

CLIENT_CREDENTIALS = {
    "type": "oauthClientCredentials",
    "clientId": {"value": "reconciler"},
    "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
}


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def folder_with(tmp_path: Path, servers: dict[str, tuple[str, dict[str, Any]]]) -> str:
    folder = tmp_path / "f"
    folder.mkdir(exist_ok=True)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"url": url, "auth": auth, "network": {"allowPrivate": True}},
        }
        for name, (url, auth) in servers.items()
    ]
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "acme"},
            "stringData": {"client-secret": "never-sent-before-save"},
        }
    )
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(folder)


def registry_tables(registry_url: str) -> list[str]:
    """The tables the registry database holds; none when the test created nothing (SQLite: no file at all)."""
    url = sa.make_url(registry_url)
    if url.get_backend_name() == "sqlite":
        return ["<file exists>"] if url.database and Path(url.database).exists() else []
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            return sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()


def expected_discovery(server: AuthorizationServer, resource: str, *, cimd: bool) -> dict[str, Any]:
    return {
        "requiresAuth": True,
        "recommendedAuthMode": "oauthAuthorizationCode",
        "authUrl": f"{server.issuer}/authorize",
        "tokenUrl": f"{server.issuer}/token",
        "registerUrl": f"{server.issuer}/register",
        "resource": resource,
        "scopesSupported": [SCOPE],
        "tokenEndpointAuthMethodsSupported": list(ALL_METHODS),
        "clientIdMetadataDocumentSupported": cimd,
    }


def test_an_unapplied_server_is_discovered_and_nothing_is_written(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    folder = folder_with(tmp_path, {"crm": (oauth_servers.protected, CLIENT_CREDENTIALS)})
    code, out, err = run(
        "test", "crm", "-n", "acme", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", registry_url
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["ok"] is True and document["applied"] is False and document["recorded"] is False
    assert document["tools"] == [] and document["error"] is None
    found = {key: document["discovery"][key] for key in expected_discovery(oauth_servers.main, "", cimd=False)}
    assert found == expected_discovery(oauth_servers.main, oauth_servers.protected, cimd=False)
    assert document["discovery"]["authorizationServers"] == [oauth_servers.main.issuer]
    assert "not applied yet: discovery only, nothing written" in err
    assert registry_tables(registry_url) == []
    assert oauth_servers.main.registrations == 0 and not oauth_servers.main.grant_counts
    assert "never-sent-before-save" not in out + err

    code, text, _ = run("test", "crm", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0 and text.startswith("Reachable · auth discovery done"), text
    for line in (
        "requires auth: yes",
        "recommended auth mode: oauthAuthorizationCode",
        f"authorization URL: {oauth_servers.main.issuer}/authorize",
        f"token URL: {oauth_servers.main.issuer}/token",
        f"registration URL: {oauth_servers.main.issuer}/register",
        f"resource: {oauth_servers.protected}",
        f"scopes: {SCOPE}",
        "token endpoint auth methods: client_secret_basic, client_secret_post, none",
        "client ID metadata documents (CIMD): not advertised",
    ):
        assert line in text.splitlines(), text
    assert registry_tables(registry_url) == []


def test_discovery_says_when_the_authorization_server_takes_client_id_metadata_documents(
    tmp_path: Path, sqlite_url: str, oauth_servers: OAuthServers
) -> None:
    folder = folder_with(tmp_path, {"docs": (oauth_servers.protected_cimd, CLIENT_CREDENTIALS)})
    code, out, err = run(
        "test", "docs", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", sqlite_url
    )
    assert code == 0, err
    discovery = json.loads(out)["discovery"]
    assert {key: discovery[key] for key in expected_discovery(oauth_servers.cimd, "", cimd=True)} == (
        expected_discovery(oauth_servers.cimd, oauth_servers.protected_cimd, cimd=True)
    )
    code, text, _ = run("test", "docs", "-f", folder, "--allow-private-networks", "--registry", sqlite_url)
    assert "client ID metadata documents (CIMD): supported" in text.splitlines(), text
    assert oauth_servers.cimd.registrations == 0 and registry_tables(sqlite_url) == []


def test_an_existing_registry_is_left_as_it_was(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, mcp_servers: LocalServers
) -> None:
    applied = folder_with(tmp_path, {"tools": (mcp_servers.tools, {"type": "none"})})
    assert run("apply", "-f", applied, "--allow-private-networks", "--registry", registry_url)[0] == 0
    with open_registry(registry_url) as registry:
        before = registry.dump()
    later = folder_with(
        tmp_path,
        {"tools": (mcp_servers.tools, {"type": "none"}), "crm": (oauth_servers.protected, CLIENT_CREDENTIALS)},
    )
    code, out, err = run(
        "test", "crm", "-f", later, "-o", "json", "--allow-private-networks", "--registry", registry_url
    )
    assert code == 0 and json.loads(out)["discovery"]["requiresAuth"] is True, err
    with open_registry(registry_url) as registry:
        assert registry.dump() == before
    assert oauth_servers.main.registrations == 0 and not oauth_servers.main.grant_counts


def test_an_open_server_is_listed_anonymously_before_save(
    tmp_path: Path, sqlite_url: str, mcp_servers: LocalServers
) -> None:
    folder = folder_with(tmp_path, {"tools": (mcp_servers.tools, {"type": "none"})})
    code, out, err = run(
        "test", "tools", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", sqlite_url
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["applied"] is False and len(document["tools"]) == 4
    assert document["discovery"]["requiresAuth"] is False and document["discovery"]["recommendedAuthMode"] == "none"
    code, text, _ = run("test", "tools", "-f", folder, "--allow-private-networks", "--registry", sqlite_url)
    assert text.startswith("Connected · 4 tools") and "requires auth: no" in text.splitlines()
    assert registry_tables(sqlite_url) == []
