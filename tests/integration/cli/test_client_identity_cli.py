"""`apply --public-url` against the fixture authorization servers, on SQLite and PostgreSQL: where the authorization
server advertises CIMD the reconciler's client id is its published metadata document's URL; elsewhere it registers
with `{public URL}/oauth/callback`; `status.credentials.clientIdentity` says which. When the resource moves to
another authorization server between two applies, the server gets AuthServerChanged naming both issuers and the old
client is never presented to the new one. Real CLI, registry, MCP and authorization servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from reconciler.cli import build_parser
from reconciler.credentials.identity import DEFAULT_REDIRECT_URI, metadata_document_url
from reconciler.registry import open_registry
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import run

CODE_FLOW = {"type": "oauthAuthorizationCode", "pkce": "public"}


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("MCP_RECONCILER_PUBLIC_URL", raising=False)


def write_folder(folder: Path, url: str, *, interval: str = "1h", auth: dict[str, Any] = CODE_FLOW) -> str:
    folder.mkdir(exist_ok=True)
    server = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": "crm", "namespace": "acme"},
        "spec": {
            "url": url,
            "auth": auth,
            "network": {"allowPrivate": True},
            "discovery": {"interval": interval},
        },
    }
    (folder / "objects.yaml").write_text(yaml.safe_dump(server, sort_keys=False))
    return str(folder)


def apply(folder: str, registry_url: str, *extra: str) -> dict[str, Any]:
    code, out, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url, *extra)
    assert code == 0, err + out
    with open_registry(registry_url) as registry:
        (stored,) = registry.fetch_resources(kind="MCPServer", name="crm")
    return dict(stored.status)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status.get("conditions", [])}


def test_cimd_is_the_client_id_where_advertised(tmp_path: Path, registry_url: str, oauth_servers: OAuthServers) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    public_url = oauth_servers.client_metadata.public_url
    status = apply(write_folder(tmp_path / "f", oauth_servers.movable.url), registry_url, "--public-url", public_url)

    credentials = status["credentials"]
    assert credentials["clientIdentity"] == "cimd" and credentials["issuer"] == cimd.issuer
    template = credentials["authorizationUrlTemplate"]
    assert f"client_id={quote(metadata_document_url(public_url), safe='')}" in template, template
    assert cimd.registrations == 0
    assert status["discovery"]["clientIdMetadataDocumentSupported"] is True
    assert "AuthServerChanged" not in conditions(status)


def test_the_environment_sets_the_public_url_for_dcr(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_url = oauth_servers.client_metadata.public_url
    monkeypatch.setenv("MCP_RECONCILER_PUBLIC_URL", public_url)
    status = apply(write_folder(tmp_path / "f", oauth_servers.protected), registry_url)

    assert status["credentials"]["clientIdentity"] == "dynamic"
    (client,) = oauth_servers.main.clients.values()
    # The public callback, and the loopback one an administrator's `connect` at a terminal uses (RFC 8252).
    assert client.redirect_uris == [f"{public_url}/oauth/callback", DEFAULT_REDIRECT_URI]


def test_without_a_public_url_the_loopback_callback_stays(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    status = apply(write_folder(tmp_path / "f", oauth_servers.movable.url), registry_url)
    assert status["credentials"]["clientIdentity"] == "dynamic"
    (client,) = cimd.clients.values()
    assert client.redirect_uris == [DEFAULT_REDIRECT_URI]


def test_a_bad_public_url_is_refused_without_echoing_it(tmp_path: Path, registry_url: str) -> None:
    folder = write_folder(tmp_path / "f", "http://127.0.0.1:9/mcp")
    code, out, err = run(
        "apply", "-f", folder, "--registry", registry_url, "--public-url", "https://me:hunter2@example.com/?x"
    )
    assert code == 1 and "--public-url" in err and "hunter2" not in err + out


def test_an_issuer_change_between_two_applies(tmp_path: Path, registry_url: str, oauth_servers: OAuthServers) -> None:
    movable, main, second = oauth_servers.movable, oauth_servers.main, oauth_servers.second
    public_url = oauth_servers.client_metadata.public_url
    first = apply(write_folder(tmp_path / "f", movable.url), registry_url, "--public-url", public_url)
    assert first["credentials"]["issuer"] == main.issuer
    (old_id,) = main.clients

    movable.move_to("second")
    # A spec change makes the server due for its next probe (the shortest discovery interval is 10s).
    status = apply(write_folder(tmp_path / "f", movable.url, interval="2h"), registry_url, "--public-url", public_url)

    changed = conditions(status).get("AuthServerChanged")
    assert changed is not None, status.get("conditions")
    assert changed["status"] == "True" and changed["reason"] == "IssuerChanged"
    assert main.issuer in changed["message"] and second.issuer in changed["message"]
    credentials = status["credentials"]
    assert credentials["issuer"] == second.issuer and credentials["clientIdentity"] == "dynamic"
    assert "previousIssuer" not in credentials
    assert old_id in main.deregistered and old_id not in second.clients
    assert old_id not in second.seen_client_ids
    assert old_id not in credentials["authorizationUrlTemplate"]
    with open_registry(registry_url) as registry:
        (stored,) = registry.fetch_oauth_clients(tenant="acme", server="crm")
    assert stored.issuer == second.issuer and stored.client_id != old_id
    assert old_id not in json.dumps(status)


def test_a_preset_client_id_is_held_to_its_issuer(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    movable, main, second = oauth_servers.movable, oauth_servers.main, oauth_servers.second
    preset = {**CODE_FLOW, "clientId": {"value": "crm-app"}}
    first = apply(write_folder(tmp_path / "f", movable.url, auth=preset), registry_url)
    assert first["credentials"]["clientIdentity"] == "preregistered"
    assert first["credentials"]["authorizationUrlTemplate"].startswith(f"{main.issuer}/authorize?")

    movable.move_to("second")
    status = apply(write_folder(tmp_path / "f", movable.url, interval="2h", auth=preset), registry_url)
    found = conditions(status)
    changed = found.get("AuthServerChanged")
    assert changed is not None and changed["reason"] == "PreregisteredClientNotUsed", status.get("conditions")
    assert main.issuer in changed["message"] and second.issuer in changed["message"]
    assert found["CredentialsValid"]["status"] == "False" and found["CredentialsValid"]["reason"] == "AuthServerChanged"
    assert "crm-app" not in second.seen_client_ids
    assert second.issuer not in status.get("credentials", {}).get("authorizationUrlTemplate", "")

    renamed = {**CODE_FLOW, "clientId": {"value": "crm-app-at-second"}}
    fixed = apply(write_folder(tmp_path / "f", movable.url, auth=renamed), registry_url)
    assert "AuthServerChanged" not in conditions(fixed)
    assert fixed["credentials"]["authorizationUrlTemplate"].startswith(f"{second.issuer}/authorize?")


@pytest.mark.parametrize("command", ["apply", "test", "run", "serve"])
def test_every_reconciling_command_takes_the_public_url(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    required = {"apply": ["-f", "x"], "test": ["crm", "-f", "x"], "run": [], "serve": []}[command]
    parsed = build_parser().parse_args([command, *required, "--public-url", "https://flag.example"])
    assert parsed.public_url == "https://flag.example"
    monkeypatch.setenv("MCP_RECONCILER_PUBLIC_URL", "https://env.example")
    assert build_parser().parse_args([command, *required]).public_url == "https://env.example"
