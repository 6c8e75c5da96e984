"""`private_key_jwt` (RFC 7523) against oidc-provider: a client registered with only a public key gets tokens
through `apply`, `test` and `resolve` with assertions signed by the private key from a Secret, and the
provider-protected MCP server accepts them; a key the provider does not know is its `invalid_client`. The key
never reaches output, status or the registry. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from reconciler.registry import open_registry
from tests.fixtures.oidc_provider import OIDC_SCOPE, OIDCProtectedMCP
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import apply_and_test
from tests.integration.credentials.support import probe


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def registered_client(oidc: OIDCProtectedMCP, key: ec.EllipticCurvePrivateKey) -> str:
    """A client-credentials client of the provider that authenticates with private_key_jwt and this public key."""
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    public.update(kid="k1", use="sig", alg="ES256")
    answer = oidc.provider.register_client(
        grant_types=("client_credentials",), token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public]}
    )
    return str(answer["client_id"])


def folder_with_key(tmp_path: Path, url: str, client_id: str, pem: str) -> str:
    folder = tmp_path / "f"
    folder.mkdir()
    auth: dict[str, Any] = {
        "type": "oauthClientCredentials",
        "clientId": {"value": client_id},
        "clientAssertion": {"privateKey": {"name": "creds", "key": "private-key"}, "keyId": "k1"},
        "scopes": [OIDC_SCOPE],
    }
    docs = [
        {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "crm", "namespace": "acme"},
            "spec": {"url": url, "auth": auth, "network": {"allowPrivate": True}},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "acme"},
         "stringData": {"private-key": pem}},
        {"apiVersion": "mcp.reconciler.dev/v1alpha1", "kind": "MCPAccessGrant",
         "metadata": {"name": "everyone", "namespace": "acme"},
         "spec": {"target": {"serverRef": "crm"}, "subjects": [{"kind": "Organization"}]}},
    ]  # fmt: skip
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(folder)


def test_a_private_key_jwt_client_gets_tokens_the_server_accepts(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id = registered_client(oidc_protected_mcp, key)
    pem = private_pem(key)
    folder = folder_with_key(tmp_path, oidc_protected_mcp.url, client_id, pem)

    line, code, document, status = apply_and_test(folder, registry_url)
    assert code == 0 and document["ok"] is True, document
    assert sorted(tool["name"] for tool in document["tools"]) == ["fortune", "whoami"]
    code, out, err = run(
        "resolve", "-n", "acme", "-o", "json", "--show-secrets", "-f", folder, "--allow-private-networks",
        "--registry", registry_url,
    )  # fmt: skip
    assert code == 0, err
    (server,) = json.loads(out)["servers"]
    assert server["state"] == "ready" and probe(oidc_protected_mcp.url, server["headers"]).ok
    body = pem.split("-----")[2].strip().splitlines()[1]
    with open_registry(registry_url) as registry:
        dumped = json.dumps(registry.dump(), default=str)
    for text in (line, json.dumps(document), json.dumps(status), err, dumped):
        assert body not in text


def test_a_key_the_provider_does_not_know_is_its_invalid_client(
    tmp_path: Path, registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    client_id = registered_client(oidc_protected_mcp, ec.generate_private_key(ec.SECP256R1()))
    other = private_pem(ec.generate_private_key(ec.SECP256R1()))
    line, code, document, status = apply_and_test(
        folder_with_key(tmp_path, oidc_protected_mcp.url, client_id, other), registry_url
    )
    assert code == 1 and document["error"]["class"] == "auth", document
    assert "invalid_client" in document["error"]["message"]
    assert other.split("-----")[2].strip().splitlines()[1] not in json.dumps([line, document, status])
