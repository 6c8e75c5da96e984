"""A `private_key_jwt` client without a client id is the reconciler's Client ID Metadata Document client, end to end
on SQLite and PostgreSQL: `serve --public-url` publishes its document (`token_endpoint_auth_method:
private_key_jwt`, `jwks_uri`) and the public half of the key from the registry; the fixture authorization server,
which advertises CIMD, fetches both and verifies the assertions `apply` and `test` sign; the MCP server it protects
accepts the token. The JWKS holds no private parameter, a wrong key is refused, and the key reaches no output,
status or registry row. Real CLI, registry, `serve` app, authorization and MCP servers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.credentials.identity import client_credentials_metadata_url, jwks_url
from reconciler.demo.serving import ServerLoop
from reconciler.registry import open_registry
from reconciler.runtime.endpoint import build_serving_app
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import run

HTTP_TIMEOUT = 30.0
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")
PLATFORM_TOKEN = "cimd-assertion-platform-token"


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("MCP_RECONCILER_PUBLIC_URL", raising=False)


@pytest.fixture
def public_url(registry_url: str, server_loop: ServerLoop) -> Iterator[str]:
    """`serve`'s app over the test's registry, at the URL it is published at: the reconciler's public URL."""
    with open_registry(registry_url) as registry:
        yield server_loop.serve_asgi(lambda url: build_serving_app(registry, token=PLATFORM_TOKEN, public_url=url))


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def folder_with_key(tmp_path: Path, url: str, pem: str) -> str:
    folder = tmp_path / "f"
    folder.mkdir(exist_ok=True)
    auth: dict[str, Any] = {
        "type": "oauthClientCredentials",
        "clientAssertion": {"privateKey": {"name": "creds", "key": "private-key"}},
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
    ]  # fmt: skip
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(folder)


def apply_and_test(folder: str, registry_url: str, public_url: str) -> tuple[str, int, dict[str, Any], dict[str, Any]]:
    common = ("-f", folder, "--allow-private-networks", "--registry", registry_url, "--public-url", public_url)
    code, applied, err = run("apply", *common)
    assert code == 0, err
    code, out, test_err = run("test", "crm", "-o", "json", *common)
    with open_registry(registry_url) as registry:
        (stored,) = registry.fetch_resources(kind="MCPServer", name="crm")
    return applied + err + test_err, code, json.loads(out), dict(stored.status)


def test_a_cimd_client_signs_with_its_published_key_and_the_server_accepts_the_token(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, public_url: str
) -> None:
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    folder = folder_with_key(tmp_path, oauth_servers.protected_cimd, pem)

    output, code, document, status = apply_and_test(folder, registry_url, public_url)

    assert code == 0 and document["ok"] is True, document
    assert document["tools"], "the protected MCP server accepted the token and listed its tools"
    assert status["credentials"]["clientIdentity"] == "cimd"
    cimd = oauth_servers.cimd
    client_id = client_credentials_metadata_url(public_url, tenant="acme")
    assert client_id in cimd.metadata_fetches and jwks_url(public_url, tenant="acme") in cimd.jwks_fetches
    assert cimd.grant_counts["client_credentials"] >= 1 and cimd.registrations == 0
    assert set(cimd.seen_client_ids) == {client_id}
    published = httpx2.get(jwks_url(public_url, tenant="acme"), timeout=HTTP_TIMEOUT).json()
    (key,) = published["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig") and key["kid"]
    assert not set(PRIVATE_MEMBERS) & set(key), "the JWKS holds the public half only"
    document_answer = httpx2.get(client_id, timeout=HTTP_TIMEOUT).json()
    assert document_answer["token_endpoint_auth_method"] == "private_key_jwt"
    assert document_answer["jwks_uri"] == jwks_url(public_url, tenant="acme") and "client_secret" not in document_answer
    body = pem.split("-----")[2].strip().splitlines()[1]
    with open_registry(registry_url) as registry:
        dumped = json.dumps(registry.dump(), default=str)
        (kept,) = registry.fetch_oauth_clients(tenant="acme", server="crm")
    assert (kept.client_id, kept.token_endpoint_auth_method) == (client_id, "private_key_jwt")
    for text in (output, json.dumps(document), json.dumps(status), dumped):
        assert body not in text


def test_an_assertion_signed_by_another_key_is_refused(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, public_url: str
) -> None:
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _, code, document, _ = apply_and_test(
        folder_with_key(tmp_path, oauth_servers.protected_cimd, pem), registry_url, public_url
    )
    assert code == 0, document
    (published,) = httpx2.get(jwks_url(public_url, tenant="acme"), timeout=HTTP_TIMEOUT).json()["keys"]
    client_id = client_credentials_metadata_url(public_url, tenant="acme")
    token_url = f"{oauth_servers.cimd.issuer}/token"

    def token_request(key: rsa.RSAPrivateKey) -> httpx2.Response:
        now = dt.datetime.now(dt.UTC)
        claims = {"iss": client_id, "sub": client_id, "aud": token_url, "jti": str(now.timestamp()),
                  "iat": int(now.timestamp()), "exp": int((now + dt.timedelta(minutes=1)).timestamp())}  # fmt: skip
        assertion = jwt.encode(claims, key, algorithm="RS256", headers={"kid": published["kid"]})
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        return httpx2.post(token_url, data=form, timeout=HTTP_TIMEOUT)

    refusals = oauth_servers.cimd.assertion_refusals
    wrong = token_request(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    right = token_request(serialization.load_pem_private_key(pem.encode(), password=None))  # type: ignore[arg-type]

    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert oauth_servers.cimd.assertion_refusals == refusals + 1
    assert right.status_code == 200 and right.json()["access_token"]


def test_without_a_public_url_the_error_names_the_field_and_what_is_missing(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    folder = folder_with_key(tmp_path, oauth_servers.protected_cimd, pem)

    common = ("-f", folder, "--allow-private-networks", "--registry", registry_url)

    applied, applied_out, applied_err = run("apply", *common)
    code, out, err = run("test", "crm", "-o", "json", *common)

    assert code == 1, out + err
    message = json.loads(out)["error"]["message"]
    assert "spec.auth.clientAssertion without clientId" in message and "public URL" in message, message
    assert oauth_servers.cimd.token_requests == 0
    body = pem.split("-----")[2].strip().splitlines()[1]
    assert body not in applied_out + applied_err + out + err, applied


def test_a_key_that_cannot_sign_is_refused_before_anything_is_written(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    not_a_key = "not-a-private-key-but-a-secret-value"
    folder = folder_with_key(tmp_path, oauth_servers.protected_cimd, not_a_key)

    code, out, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)

    assert code == 1, out + err
    said = out + err
    assert "objects.yaml" in said and "acme/crm" in said and "spec.auth.clientAssertion.privateKey" in said, said
    assert "not an unencrypted PEM private key" in said and not_a_key not in said
    with open_registry(registry_url) as registry:
        assert registry.fetch_resources(kind="MCPServer") == []
    assert oauth_servers.cimd.token_requests == 0


def test_a_second_key_under_a_published_key_id_is_a_conflict_and_the_first_keeps_signing(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, public_url: str
) -> None:
    """An authorization server picks the key by `kid`: a second server of the tenant publishing another key under the
    first one's `keyId` would make one sign as the other, or break it. The newcomer is refused; nothing of it is
    published or written, and the incumbent's token still comes."""
    first = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    second = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    folder = Path(folder_with_key(tmp_path, oauth_servers.protected_cimd, first))
    docs = list(yaml.safe_load_all((folder / "objects.yaml").read_text()))
    docs[0]["spec"]["auth"]["clientAssertion"]["keyId"] = "platform-key"
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    common = ("-f", str(folder), "--allow-private-networks", "--registry", registry_url, "--public-url", public_url)
    code, _, err = run("apply", *common)
    assert code == 0, err
    (published,) = httpx2.get(jwks_url(public_url, tenant="acme"), timeout=HTTP_TIMEOUT).json()["keys"]

    newcomer = json.loads(json.dumps(docs[0]))
    newcomer["metadata"]["name"] = "billing"
    newcomer["spec"]["url"] = oauth_servers.protected_cimd + "?billing"
    newcomer["spec"]["auth"]["clientAssertion"]["privateKey"]["name"] = "billing-creds"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "billing-creds", "namespace": "acme"},
              "stringData": {"private-key": second}}  # fmt: skip
    (folder / "billing.yaml").write_text(yaml.safe_dump_all([newcomer, secret], sort_keys=False))
    code, out, err = run("apply", *common)

    assert code == 1 and "conflicts left unresolved" in err, out + err
    assert "! MCPServer acme/billing: conflict" in out, out
    assert "keyId 'platform-key' already names another key in tenant acme's JWKS (server crm)" in out, out
    assert httpx2.get(jwks_url(public_url, tenant="acme"), timeout=HTTP_TIMEOUT).json()["keys"] == [published]
    with open_registry(registry_url) as registry:
        assert [row["name"] for row in registry.dump()["servers"]] == ["crm"]
        (refused,) = registry.fetch_resources(kind="MCPServer", name="billing")
    assert {"type": "Ready", "status": "False"}.items() <= refused.status["conditions"][0].items(), refused.status
    code, tested, err = run("test", "crm", "-o", "json", *common)
    assert code == 0 and json.loads(tested)["ok"] is True, tested + err
    for pem in (first, second):
        assert pem.split("-----")[2].strip().splitlines()[1] not in out + err + tested
