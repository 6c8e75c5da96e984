"""Test Connection tells the truth about credentials: a credential the spec configures and the reconciler could not
obtain fails the test (class `auth`, the OAuth error in the message, exit 1), everywhere it is shown; `Reachable`
only when the credential waits on a person. Real CLI, real registry, real MCP and authorization servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.registry import open_registry
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import run

RIGHT_SECRET = "the-right-client-secret"


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def folder_with(tmp_path: Path, url: str, auth: dict[str, Any], *, client_secret: str = "a-wrong-secret") -> str:
    folder = tmp_path / "f"
    folder.mkdir()
    docs = [
        {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "crm", "namespace": "acme"},
            "spec": {"url": url, "auth": auth, "network": {"allowPrivate": True}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "acme"},
            "stringData": {"client-secret": client_secret},
        },
    ]
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(folder)


def granted_folder(tmp_path: Path, url: str, auth: dict[str, Any], *, client_secret: str = "a-wrong-secret") -> str:
    """`folder_with`, plus a grant of `acme/crm` to the whole organization, so `resolve` offers it to everyone."""
    folder = folder_with(tmp_path, url, auth, client_secret=client_secret)
    grant = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": "everyone", "namespace": "acme"},
        "spec": {"target": {"serverRef": "crm"}, "subjects": [{"kind": "Organization"}]},
    }
    (Path(folder) / "grant.yaml").write_text(yaml.safe_dump(grant, sort_keys=False))
    return folder


CLIENT_CREDENTIALS = {
    "type": "oauthClientCredentials",
    "clientId": {"value": "reconciler"},
    "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
}


def apply_and_test(folder: str, registry_url: str) -> tuple[str, int, dict[str, Any], dict[str, Any]]:
    """The apply table's line for the server, `test -o json`'s exit code and document, and the stored lastTest."""
    code, applied, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0, err
    (line,) = [row for row in applied.splitlines() if row.startswith("acme ")]
    code, out, _ = run(
        "test", "crm", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", registry_url
    )
    with open_registry(registry_url) as registry:
        (stored,) = registry.fetch_resources(kind="MCPServer", name="crm")
    return line, code, json.loads(out), stored.status


@pytest.mark.parametrize(
    ("auth", "said"),
    [
        (CLIENT_CREDENTIALS, "invalid_client"),
        ({**CLIENT_CREDENTIALS, "scopes": ["no-such-scope"]}, "invalid_scope"),
    ],
    ids=["wrong-client-secret", "token-endpoint-error"],
)
def test_a_credential_that_cannot_be_obtained_fails_the_test(
    tmp_path: Path, sqlite_url: str, oauth_servers: OAuthServers, auth: dict[str, Any], said: str
) -> None:
    oauth_servers.main.add_client("reconciler", RIGHT_SECRET)
    secret = "a-wrong-secret" if said == "invalid_client" else RIGHT_SECRET
    line, code, document, status = apply_and_test(
        folder_with(tmp_path, oauth_servers.protected, auth, client_secret=secret), sqlite_url
    )
    assert "Reachable" not in line and "auth error: credentials: " in line and said in line, line
    assert code == 1 and document["ok"] is False, document
    assert document["error"]["class"] == "auth" and said in document["error"]["message"]
    assert status["lastTest"]["ok"] is False and status["lastTest"]["errorClass"] == "auth"
    assert said in status["lastTest"]["message"]
    assert "a-wrong-secret" not in json.dumps([line, document, status])


def test_dynamic_registration_without_a_registration_endpoint_fails_the_test(
    tmp_path: Path, sqlite_url: str, oauth_servers: OAuthServers
) -> None:
    auth = {"type": "oauthClientCredentials", "dynamicRegistration": True}
    line, code, document, status = apply_and_test(
        folder_with(tmp_path, oauth_servers.protected_no_registration, auth), sqlite_url
    )
    assert "Reachable" not in line and "no registration endpoint" in line, line
    assert code == 1 and document["error"]["class"] == "auth"
    assert "no registration endpoint" in document["error"]["message"]
    assert status["lastTest"]["ok"] is False


def test_an_authorization_code_server_without_member_tokens_is_reachable_and_says_why(
    tmp_path: Path, sqlite_url: str, oauth_servers: OAuthServers
) -> None:
    auth = {"type": "oauthAuthorizationCode", "pkce": "public", "scopes": ["mcp:tools"]}
    line, code, document, status = apply_and_test(folder_with(tmp_path, oauth_servers.protected, auth), sqlite_url)
    assert "Reachable · awaiting user authorization" in line, line
    assert code == 0 and document["ok"] is True and document["tools"] == []
    assert status["lastTest"]["ok"] is True and status["lastTest"]["message"] == "awaiting user authorization"
    code, out, _ = run("test", "crm", "-f", str(tmp_path / "f"), "--allow-private-networks", "--registry", sqlite_url)
    assert code == 0 and out.startswith("Reachable · awaiting user authorization"), out


def test_a_missing_secret_fails_the_test_instead_of_reaching_the_server_anonymously(
    tmp_path: Path, sqlite_url: str, oauth_servers: OAuthServers
) -> None:
    auth = {"type": "bearer", "secretKeyRef": {"name": "creds", "key": "no-such-key"}}
    folder = folder_with(tmp_path, oauth_servers.protected, auth)
    code, out, _ = run("test", "crm", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", sqlite_url)
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and document["error"]["class"] == "auth", document
    assert "Secret key not found: acme/creds#no-such-key" in document["error"]["message"]
