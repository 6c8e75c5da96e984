"""Connect links end to end: `resolve` (Python, the CLI's `-o json`, the MCP endpoint) hands a member who must log
in a `connectUrl`; the member's browser opens it on `serve`'s connect service, is sent to the real authorization
server with a fresh state and PKCE pair, comes back to the callback, and the member then resolves `ready` with a
token the protected MCP server accepts. Links that are expired, altered or signed with another key are refused
with a page that says so, and nothing is begun or stored. uvicorn on 127.0.0.1, the engine's connector, the
project's authorization server; SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import yaml

from reconciler.credentials.connect_links import LinkTarget, connect_url, link_key, sign_link
from reconciler.demo.serving import ServerLoop
from reconciler.engine.connecting import EngineConnector
from reconciler.engine.inputs import StaticSecrets
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, default_renewal, resolve
from reconciler.runtime.linking import registry_link_key
from reconciler.runtime.resolution import ResolvedServer
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import folder_with, granted_folder
from tests.integration.credentials.support import probe
from tests.integration.runtime.test_endpoint import TOKEN, call, structured

__all__ = ["oauth_servers", "oauth_servers_session"]

TIMEOUT = 30.0
LOCAL = ProbeSettings(allow_private_networks=True)
LATER = dt.timedelta(days=3650)
"""Far enough ahead that every token issued in the test has expired."""


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
    """`serve`'s app (MCP endpoint, connect service) at its public URL, with the engine's connector."""
    connector = EngineConnector(applied, secrets=StaticSecrets(), settings=LOCAL, public_url=None)
    with ServerLoop() as loop:
        yield loop.serve_asgi(lambda url: build_serving_app(applied, token=TOKEN, public_url=url, connector=connector))


def waiting(registry: Registry, public_url: str | None, *, member: str = "alice", **options: Any) -> ResolvedServer:
    (server,) = resolve(registry, "acme", user=member, public_url=public_url, **options).servers
    return server


def open_link(url: str) -> httpx2.Response:
    """The member's browser: the link, the authorization server's consent, the callback's page."""
    with httpx2.Client(timeout=TIMEOUT) as http:
        return http.get(url, follow_redirects=True)


def assert_ready_for(registry: Registry, oauth_servers: OAuthServers, member: str) -> str:
    (server,) = resolve(registry, "acme", user=member, secrets=StaticSecrets(), show_secrets=True).servers
    assert server.state == "ready", server.reason
    assert probe(oauth_servers.protected, dict(server.headers)).ok, "the protected MCP server accepts the token"
    return server.headers["Authorization"].removeprefix("Bearer ")


def stored_tokens(registry: Registry) -> tuple[list[Any], list[Any]]:
    rows = registry.dump()
    return rows["user_tokens"], [row for row in rows["local_secrets"] if "member" in json.dumps(row, default=str)]


def test_a_member_connects_through_the_link_resolve_handed_out(
    served: str, applied: Registry, registry_url: str, oauth_servers: OAuthServers
) -> None:
    server = waiting(applied, served)
    assert server.state == "needs_connection" and server.connect_url is not None
    parts = urlsplit(server.connect_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{served}/oauth/connect"
    assert server.to_json()["connectUrl"] == server.connect_url

    code, out, err = run("resolve", "-n", "acme", "--user", "alice", "-o", "json", "--public-url", served,
                         "--registry", registry_url)  # fmt: skip
    assert code == 0, err
    (document,) = json.loads(out)["servers"]
    assert document["state"] == "needs_connection" and document["connectUrl"].startswith(f"{served}/oauth/connect?")

    with httpx2.Client(timeout=TIMEOUT) as http:
        hop = http.get(document["connectUrl"])
    assert hop.status_code == 302 and hop.headers["referrer-policy"] == "no-referrer"
    query = parse_qs(urlsplit(hop.headers["location"]).query)
    assert query["redirect_uri"] == [f"{served}/oauth/callback"] and query["code_challenge_method"] == ["S256"]

    page = open_link(document["connectUrl"])  # the CLI's link, opened by the member's browser
    assert page.status_code == 200 and "Connected" in page.text, page.text
    token = assert_ready_for(applied, oauth_servers, "alice")
    assert token not in document["connectUrl"] and token not in json.dumps(applied.dump(), default=str)
    assert waiting(applied, served).connect_url is None, "a ready server carries no link"

    again = open_link(document["connectUrl"])  # a link starts a new login each time: alice can reconnect
    assert again.status_code == 200 and "Connected" in again.text
    assert oauth_servers.main.grant_counts["authorization_code"] == 2
    (bob,) = resolve(applied, "acme", user="bob").servers
    assert bob.state == "needs_connection", "alice's link connected alice only"


def test_the_mcp_endpoint_hands_out_links_the_service_opens(
    served: str, applied: Registry, oauth_servers: OAuthServers
) -> None:
    _tools, result = call(f"{served}/mcp", ("resolve_template", {"tenant": "acme", "user": "carol"}))
    (document,) = structured(result)["servers"]
    assert document["state"] == "needs_connection" and "connectUrl" in document

    page = open_link(document["connectUrl"])
    assert page.status_code == 200 and "Connected" in page.text, page.text
    assert_ready_for(applied, oauth_servers, "carol")


def test_only_the_browser_that_opened_a_link_finishes_its_login(
    served: str, applied: Registry, oauth_servers: OAuthServers
) -> None:
    """alice opens her link but hands the authorization URL to someone else: their login must not be stored as
    alice's (the callback wants the cookie her browser got from the link)."""
    link = waiting(applied, served).connect_url
    assert link is not None
    with httpx2.Client(timeout=TIMEOUT) as alices_browser:
        hop = alices_browser.get(link)
    assert hop.status_code == 302
    with httpx2.Client(timeout=TIMEOUT) as another_browser:
        page = another_browser.get(hop.headers["location"], follow_redirects=True)
    assert page.status_code == 400 and "started in another browser" in page.text, page.text
    assert stored_tokens(applied) == ([], [])
    assert waiting(applied, served).state == "needs_connection"


def _forged_for_bob(link: str) -> str:
    """Alice's link with its payload edited to name bob, its MAC kept."""
    token = parse_qs(urlsplit(link).query)["link"][0]
    version, payload, mac = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**document, "mem": "bob"}).encode()).decode().rstrip("=")
    return connect_url(link.split("/oauth/")[0], f"{version}.{edited}.{mac}")


def test_expired_altered_and_foreign_links_are_refused_and_store_nothing(
    served: str, applied: Registry, oauth_servers: OAuthServers
) -> None:
    alices = waiting(applied, served).connect_url
    assert alices is not None
    expired = waiting(applied, served, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).connect_url
    assert expired is not None
    elsewhere = connect_url(
        served,
        sign_link(link_key(bytes(32)), LinkTarget("acme", "crm", "alice"), expires_at=dt.datetime.now(dt.UTC) + LATER),
    )
    logins_before = len(oauth_servers.main.seen_client_ids)
    refusals = {
        expired: "this connect link expired at",
        _forged_for_bob(alices): "not issued by this reconciler or was altered",
        elsewhere: "not issued by this reconciler or was altered",
        f"{served}/oauth/connect": "this connect link is incomplete",
    }
    with httpx2.Client(timeout=TIMEOUT) as http:
        for link, message in refusals.items():
            page = http.get(link, follow_redirects=True)
            assert page.status_code == 400 and message in page.text and "Not connected" in page.text, page.text
            assert page.history == [], "refused on the spot: never sent to the authorization server"
        assert http.post(alices).status_code == 405

    assert len(oauth_servers.main.seen_client_ids) == logins_before, "no login reached the authorization server"
    assert stored_tokens(applied) == ([], [])
    assert waiting(applied, served).state == "needs_connection"
    assert waiting(applied, served, member="bob").state == "needs_connection"


def test_an_expired_token_that_cannot_refresh_gets_a_link_that_reconnects(
    served: str, applied: Registry, oauth_servers: OAuthServers
) -> None:
    first = waiting(applied, served).connect_url
    assert first is not None
    assert open_link(first).status_code == 200
    assert_ready_for(applied, oauth_servers, "alice")

    oauth_servers.main.refresh_tokens.clear()  # the authorization server forgot the grant: invalid_grant
    # Just past the token's hour (the fixture's lifetime): the link issued then still holds when opened now.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61)
    renewal = default_renewal(applied, probe=LOCAL)
    server = waiting(applied, served, now=later, renew_tokens=True, renewal=renewal, secrets=StaticSecrets())
    assert server.state == "needs_reauthorization", server.reason
    assert server.connect_url is not None and server.action is not None and "reconnect" in server.action
    assert waiting(applied, None, now=later).connect_url is None, "no public URL, no link"

    page = open_link(server.connect_url)
    assert page.status_code == 200 and "Connected" in page.text, page.text
    assert_ready_for(applied, oauth_servers, "alice")


def test_without_a_public_url_or_a_store_key_there_is_no_link(
    applied: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = waiting(applied, None)
    assert server.state == "needs_connection" and server.connect_url is None
    assert "connectUrl" not in server.to_json()

    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "never-created.key"))
    keyless = waiting(applied, "https://reconciler.example")
    assert keyless.connect_url is None
    assert keyless.action is not None and "no connect link: no key for the local secret store" in keyless.action
    assert not (tmp_path / "never-created.key").exists(), "resolving never creates the store key"


def test_a_member_connects_through_a_per_member_connection(
    tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers
) -> None:
    """OpenWork's per-member credential mode: the link names the connection, and the token is kept for it."""
    folder = Path(folder_with(tmp_path, oauth_servers.protected, {"type": "oauthAuthorizationCode", "pkce": "public"}))
    objects = [
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
    (folder / "connection.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    code, out, err = run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    connector = EngineConnector(registry, secrets=StaticSecrets(), settings=LOCAL, public_url=None)
    with ServerLoop() as loop:
        served = loop.serve_asgi(
            lambda url: build_serving_app(registry, token=TOKEN, public_url=url, connector=connector)
        )
        server = waiting(registry, served)
        assert (server.state, server.connection) == ("needs_connection", "crm-members"), server.reason
        assert server.connect_url is not None

        # Signed with the right key, but naming a connection that is gone: refused, nothing begun.
        stale = LinkTarget("acme", "crm", "alice", connection="crm-gone")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        refused = open_link(
            connect_url(served, sign_link(registry_link_key(registry, create=False), stale, expires_at=expires))
        )
        assert refused.status_code == 400 and "MCPConnection acme/crm-gone is not in registry" in refused.text

        page = open_link(server.connect_url)
        assert page.status_code == 200 and "Connected" in page.text, page.text

    (resolved,) = resolve(registry, "acme", user="alice", secrets=StaticSecrets(), show_secrets=True).servers
    assert (resolved.state, resolved.connection) == ("ready", "crm-members"), resolved.reason
    assert probe(oauth_servers.protected, dict(resolved.headers)).ok
    (row,) = registry.dump()["user_tokens"]
    assert row["user_id"] == "alice" and row["connection_id"] is not None, "kept for the connection"
