"""`serve`'s connect service: a platform starts a member's login with its bearer token, the member's browser goes
through the real authorization server and lands on `{public URL}/oauth/callback`, the UI polls the status, and
`resolve` then hands the member a token the protected MCP server accepts; `DELETE` disconnects (RFC 7009). The
callback's state is signed, single-use and expiring. uvicorn on 127.0.0.1, the engine's connector, the project's
authorization server; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import yaml

from reconciler.demo.serving import ServerLoop
from reconciler.engine.connecting import EngineConnector
from reconciler.engine.inputs import StaticSecrets
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, resolve
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import granted_folder
from tests.integration.credentials.support import probe

__all__ = ["oauth_servers", "oauth_servers_session"]

TOKEN = "connect-service-platform-token"
PLATFORM = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 30.0
LOCAL = ProbeSettings(allow_private_networks=True)


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


@pytest.fixture
def applied(tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers) -> Registry:
    """`acme/crm`, an authorization-code server (public PKCE, DCR) protected by the fixture, granted to all."""
    folder = granted_folder(tmp_path, oauth_servers.protected, {"type": "oauthAuthorizationCode", "pkce": "public"})
    code, out, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    return registry


@pytest.fixture
def served(applied: Registry) -> Iterator[str]:
    """`serve`'s app, its public URL where it listens, with the engine's connector."""
    connector = EngineConnector(applied, secrets=StaticSecrets(), settings=LOCAL, public_url=None)
    with ServerLoop() as loop:
        yield loop.serve_asgi(lambda url: build_serving_app(applied, token=TOKEN, public_url=url, connector=connector))


def start(http: httpx2.Client, base: str, member: str = "alice") -> dict[str, object]:
    answer = http.post(
        f"{base}/oauth/connections", headers=PLATFORM, json={"namespace": "acme", "server": "crm", "member": member}
    )
    assert answer.status_code == 201, answer.text
    document: dict[str, object] = answer.json()
    return document


def test_a_platform_connects_a_member_through_the_service(
    served: str, applied: Registry, oauth_servers: OAuthServers
) -> None:
    with httpx2.Client(timeout=TIMEOUT) as http:
        started = start(http, served)
        assert started["status"] == "pending"
        url = str(started["authorizationUrl"])
        query = parse_qs(urlsplit(url).query)
        assert query["redirect_uri"] == [f"{served}/oauth/callback"] and query["code_challenge_method"] == ["S256"]
        status_url = str(started["statusUrl"])
        assert http.get(status_url, headers=PLATFORM).json()["status"] == "pending"
        assert http.get(status_url).status_code == 401, "the status needs the platform's token"

        page = http.get(url, follow_redirects=True)  # the member's browser: consent, then the callback
        assert page.status_code == 200 and "Connected" in page.text, page.text
        assert http.get(status_url, headers=PLATFORM).json()["status"] == "connected"

        again = http.get(str(page.url))  # the same callback a second time: its state is spent
        assert again.status_code == 400 and "already used" in again.text

    resolution = resolve(applied, "acme", user="alice", secrets=StaticSecrets(), show_secrets=True)
    (server,) = resolution.servers
    assert server.state == "ready", server.reason
    assert probe(oauth_servers.protected, dict(server.headers)).ok
    token = server.headers["Authorization"].removeprefix("Bearer ")
    assert token not in json.dumps(applied.dump(), default=str)

    with httpx2.Client(timeout=TIMEOUT) as http:
        gone = http.request(
            "DELETE",
            f"{served}/oauth/connections",
            headers=PLATFORM,
            json={"namespace": "acme", "server": "crm", "member": "alice"},
        )
    assert gone.status_code == 200 and "revoked at" in gone.json()["revocation"], gone.text
    assert oauth_servers.main.registrations == 1, "one client, registered at apply, served the whole flow"
    assert oauth_servers.main.revoked == ["refresh_token"], gone.text
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok
    (after,) = resolve(applied, "acme", user="alice").servers
    assert after.state == "needs_connection"


def test_the_service_refuses_what_it_should(served: str, oauth_servers: OAuthServers) -> None:
    with httpx2.Client(timeout=TIMEOUT) as http:
        body = {"namespace": "acme", "server": "crm", "member": "alice"}
        assert http.post(f"{served}/oauth/connections", json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert http.post(f"{served}/oauth/connections", headers=wrong, json=body).status_code == 401
        missing = http.post(f"{served}/oauth/connections", headers=PLATFORM, json={"server": "crm"})
        assert missing.status_code == 400 and "namespace" in missing.text
        unknown = http.post(f"{served}/oauth/connections", headers=PLATFORM, json={**body, "server": "nope"})
        assert unknown.status_code == 400 and "acme/nope is not in registry" in unknown.text

        started = start(http, served)
        state = parse_qs(urlsplit(str(started["authorizationUrl"])).query)["state"][0]
        nonce, expiry, mac = state.split(".")
        forged = f"{nonce}.{int(expiry) + 3600}.{mac}"
        page = http.get(f"{served}/oauth/callback", params={"code": "x", "state": forged})
        assert page.status_code == 400 and "unknown, already used or expired" in page.text
        assert oauth_servers.main.grant_counts["authorization_code"] == 0

        oauth_servers.main.deny_logins = True
        page = http.get(str(started["authorizationUrl"]), follow_redirects=True)
        assert page.status_code == 400 and "access_denied" in page.text
        status = http.get(str(started["statusUrl"]), headers=PLATFORM).json()
        assert status["status"] == "failed" and "access_denied" in status["error"]


CONNECTION_OBJECTS = [
    {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPConnection",
        "metadata": {"name": "crm-members", "namespace": "acme"},
        "spec": {"serverRef": "crm", "scope": "platform", "credentialMode": "perMember"},
    },
    {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": "members", "namespace": "acme"},
        "spec": {"target": {"connectionRef": "crm-members"}, "subjects": [{"kind": "Organization"}]},
    },
]


def test_a_platform_connects_and_disconnects_a_member_through_a_per_member_connection(
    tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers
) -> None:
    """`connection` in the body: the login goes through the server's perMember MCPConnection and the tokens are
    kept for it; a DELETE on the server itself leaves them, one naming the connection revokes and clears them."""
    folder = Path(
        granted_folder(tmp_path, oauth_servers.protected, {"type": "oauthAuthorizationCode", "pkce": "public"})
    )
    (folder / "connection.yaml").write_text(yaml.safe_dump_all(CONNECTION_OBJECTS, sort_keys=False))
    code, out, err = run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    connector = EngineConnector(registry, secrets=StaticSecrets(), settings=LOCAL, public_url=None)
    alice = {"namespace": "acme", "server": "crm", "member": "alice", "connection": "crm-members"}
    with ServerLoop() as loop:
        served = loop.serve_asgi(
            lambda url: build_serving_app(registry, token=TOKEN, public_url=url, connector=connector)
        )
        with httpx2.Client(timeout=TIMEOUT) as http:
            gone = http.post(f"{served}/oauth/connections", headers=PLATFORM, json={**alice, "connection": "crm-gone"})
            assert gone.status_code == 400 and "MCPConnection acme/crm-gone is not in registry" in gone.text
            shared = {"namespace": "acme", "server": "crm", "shared": True, "connection": "crm-members"}
            both = http.post(f"{served}/oauth/connections", headers=PLATFORM, json=shared)
            assert both.status_code == 400 and "perMember connection is for members" in both.text
            assert (
                http.post(f"{served}/oauth/connections", headers=PLATFORM, json={**alice, "connection": 7}).status_code
                == 400
            )

            started = http.post(f"{served}/oauth/connections", headers=PLATFORM, json=alice)
            assert started.status_code == 201, started.text
            assert started.json()["connection"] == "crm-members"
            page = http.get(started.json()["authorizationUrl"], follow_redirects=True)
            assert page.status_code == 200 and "Connected" in page.text, page.text

            (resolved,) = resolve(registry, "acme", user="alice", secrets=StaticSecrets(), show_secrets=True).servers
            assert (resolved.state, resolved.connection) == ("ready", "crm-members"), resolved.reason
            token = resolved.headers["Authorization"].removeprefix("Bearer ")
            (row,) = registry.dump()["user_tokens"]
            assert row["connection_id"] is not None, "kept for the connection"

            on_server = {key: value for key, value in alice.items() if key != "connection"}
            kept = http.request("DELETE", f"{served}/oauth/connections", headers=PLATFORM, json=on_server)
            assert kept.status_code == 200 and "nothing to revoke" in kept.json()["revocation"], kept.text
            assert len(registry.dump()["user_tokens"]) == 1, "the server's own disconnect leaves the connection's"

            cleared = http.request("DELETE", f"{served}/oauth/connections", headers=PLATFORM, json=alice)
            assert cleared.status_code == 200 and "revoked at" in cleared.json()["revocation"], cleared.text

    assert oauth_servers.main.revoked[:1] == ["refresh_token"]
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok
    dumped = registry.dump()
    assert dumped["user_tokens"] == [] and not [s for s in dumped["local_secrets"] if s["name"].startswith("member_")]
    (after,) = resolve(registry, "acme", user="alice").servers
    assert after.state == "needs_connection"
