"""The CLI against oidc-provider (a certified OpenID provider) and the MCP server it protects: `apply` and `test`
with client credentials (the provider's static client, and one it refuses), and an authorization-code server that
registers its client and waits for members. The provider's own errors reach the output; its secrets do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.oidc_provider import OIDC_SCOPE, OIDCProtectedMCP
from tests.integration.cli.test_connection_truth import apply_and_test, folder_with


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def client_credentials(client_id: str) -> dict[str, Any]:
    return {
        "type": "oauthClientCredentials",
        "clientId": {"value": client_id},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": [OIDC_SCOPE],
    }


def test_client_credentials_list_the_tools(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    machine = oidc_protected_mcp.provider.static_machine
    folder = folder_with(
        tmp_path, oidc_protected_mcp.url, client_credentials(machine.client_id), client_secret=machine.client_secret
    )
    line, code, document, status = apply_and_test(folder, registry_url)
    assert code == 0 and document["ok"] is True, document
    assert sorted(tool["name"] for tool in document["tools"]) == ["fortune", "whoami"]
    assert status["lastTest"]["ok"] is True
    assert machine.client_secret not in json.dumps([line, document, status])


def test_a_refused_client_secret_is_the_providers_invalid_client(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    machine = oidc_protected_mcp.provider.static_machine
    wrong = "not-" + machine.client_secret
    folder = folder_with(tmp_path, oidc_protected_mcp.url, client_credentials(machine.client_id), client_secret=wrong)
    line, code, document, status = apply_and_test(folder, registry_url)
    assert code == 1 and document["error"]["class"] == "auth", document
    assert "invalid_client" in document["error"]["message"] and "invalid_client" in line
    assert status["lastTest"]["ok"] is False
    assert wrong not in json.dumps([line, document, status])


def test_an_authorization_code_server_registers_and_waits_for_members(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    auth = {"type": "oauthAuthorizationCode", "pkce": "confidential"}
    line, code, document, status = apply_and_test(folder_with(tmp_path, oidc_protected_mcp.url, auth), registry_url)
    assert "Reachable · awaiting user authorization" in line, line
    assert code == 0 and document["ok"] is True and document["tools"] == []
    template = status["credentials"]["authorizationUrlTemplate"]
    assert template.startswith(str(oidc_protected_mcp.provider.metadata["authorization_endpoint"]))
