"""`connect` / `disconnect` for an administrator at a terminal: a member's own account on an authorization-code
server, through a loopback callback (RFC 8252), PKCE S256, RFC 8707 resource and RFC 9207 `iss`; then `resolve`
hands that member (and only that member) a token the protected server accepts, and `disconnect` revokes it
(RFC 7009) and deletes it. The browser is played by an HTTP client following the real redirects. Real CLI, real
registry (SQLite and PostgreSQL), the project's authorization server and the MCP server it protects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from reconciler.cli import main
from reconciler.credentials import MintedSecretStore, load_store_key
from reconciler.registry import open_registry
from reconciler.runtime import store_member_tokens
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import folder_with, granted_folder
from tests.integration.credentials.support import probe

BOUND_SECONDS = 60.0
CODE_SERVER = {"type": "oauthAuthorizationCode", "pkce": "public"}


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


class Terminal(io.StringIO):
    """What the command prints, with the authorization URL handed over the moment it is written."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: queue.Queue[str] = queue.Queue()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("http"):
                self.urls.put(line.strip())
        return super().write(text)


class Connecting:
    """`connect` running in a thread, as a person at a terminal would run it."""

    def __init__(self, *argv: str) -> None:
        self.terminal = Terminal()
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self.thread.start()

    def _run(self, argv: tuple[str, ...]) -> None:
        try:
            self.code = main(list(argv), out=self.terminal)
        except BaseException as err:  # handed to the test thread
            self.error = err

    def url(self) -> str:
        """The authorization URL once printed; fails at once (with what happened) if the command ends first."""
        deadline = time.monotonic() + BOUND_SECONDS
        while time.monotonic() < deadline:
            try:
                return self.terminal.urls.get(timeout=0.2)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise AssertionError(f"connect ended first: {self.error!r}\n{self.terminal.getvalue()}") from None
        raise AssertionError(f"no authorization URL within {BOUND_SECONDS:.0f}s")

    def result(self) -> tuple[int | None, str]:
        self.thread.join(timeout=BOUND_SECONDS)
        assert not self.thread.is_alive(), "connect did not finish"
        if isinstance(self.error, SystemExit):
            return int(self.error.code or 0), self.terminal.getvalue()
        assert self.error is None, self.error
        return self.code, self.terminal.getvalue()


def code_folder(tmp_path: Path, url: str) -> str:
    return granted_folder(tmp_path, url, CODE_SERVER)


def resolve_for(registry_url: str, member: str, *extra: str) -> tuple[dict[str, Any], str]:
    code, out, err = run("resolve", "-n", "acme", "--user", member, "-o", "json", *extra, "--registry", registry_url)
    assert code == 0, err
    (server,) = json.loads(out)["servers"]
    return server, out + err


def connect(registry_url: str, member: str) -> Connecting:
    return Connecting(
        "connect", "crm", "-n", "acme", "--member", member, "--timeout", str(BOUND_SECONDS),
        "--allow-private-networks", "--registry", registry_url,
    )  # fmt: skip


def test_a_member_connects_resolves_and_disconnects(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    folder = code_folder(tmp_path, oauth_servers.protected)
    code, out, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    before, _ = resolve_for(registry_url, "alice")
    assert before["state"] == "needs_connection"

    running = connect(registry_url, "alice")
    url = running.url()
    assert "code_challenge_method=S256" in url and "resource=" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    page = httpx2.get(url, follow_redirects=True, timeout=BOUND_SECONDS)
    assert page.status_code == 200 and "Connected" in page.text, page.text
    code, printed = running.result()
    assert code == 0 and "Connected: member alice on acme/crm" in printed, printed
    assert oauth_servers.main.grant_counts["authorization_code"] == 1

    alice, _ = resolve_for(registry_url, "alice", "--show-secrets", "-f", folder)
    assert alice["state"] == "ready", alice
    token = alice["headers"]["Authorization"].removeprefix("Bearer ")
    assert probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok
    masked, masked_text = resolve_for(registry_url, "alice")
    assert masked["state"] == "ready" and token not in masked_text and token not in printed
    bob, _ = resolve_for(registry_url, "bob")
    assert bob["state"] == "needs_connection", "alice's token is hers alone"
    with open_registry(registry_url) as registry:
        dumped = json.dumps(registry.dump(), default=str)
    assert token not in dumped and not any(value in dumped for value in oauth_servers.main.issued_values())

    code, out, err = run(
        "disconnect", "crm", "-n", "acme", "--member", "alice", "--allow-private-networks", "--registry", registry_url
    )
    assert code == 0 and "revoked at" in out and "refresh_token" in out, out + err
    assert oauth_servers.main.revoked[0] == "refresh_token"
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok, "revoked at the issuer"
    after, _ = resolve_for(registry_url, "alice")
    assert after["state"] == "needs_connection"
    with open_registry(registry_url) as registry:
        assert registry.count_user_tokens(tenants=["acme"]) == {}


def test_a_refused_login_stores_nothing_and_says_why(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    oauth_servers.main.deny_logins = True

    running = connect(registry_url, "alice")
    page = httpx2.get(running.url(), follow_redirects=True, timeout=BOUND_SECONDS)
    assert page.status_code == 400 and "access_denied" in page.text
    code, _ = running.result()
    assert code == 1
    assert oauth_servers.main.grant_counts["authorization_code"] == 0
    with open_registry(registry_url) as registry:
        assert registry.count_user_tokens(tenants=["acme"]) == {}


def test_a_forged_callback_is_refused(tmp_path: Path, registry_url: str, oauth_servers: OAuthServers) -> None:
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    running = connect(registry_url, "alice")
    url = running.url()
    redirect_uri = httpx2.URL(url).params["redirect_uri"]
    page = httpx2.get(f"{redirect_uri}?code=stolen&state=not-the-state", timeout=BOUND_SECONDS)
    assert page.status_code == 400 and "state" in page.text
    code, _ = running.result()
    assert code == 1 and oauth_servers.main.grant_counts["authorization_code"] == 0


def test_connect_refuses_a_server_that_is_not_an_authorization_code_server(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    folder = folder_with(tmp_path, oauth_servers.protected, {"type": "none"})
    assert run("apply", "-f", folder, "--no-probe", "--registry", registry_url)[0] == 0
    code, _, err = run("connect", "crm", "-n", "acme", "--member", "alice", "--registry", registry_url)
    assert code == 1 and "spec.auth.type is none" in err and "Traceback" not in err
    code, _, err = run("connect", "nope", "-n", "acme", "--member", "alice", "--registry", registry_url)
    assert code == 1 and "acme/nope is not in registry" in err
    code, _, err = run("connect", "crm", "-n", "acme", "--member", "a/b", "--registry", registry_url)
    assert code == 1 and "member id 'a/b'" in err


def test_a_login_asks_for_the_scopes_the_server_challenged_for(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    """Step-up (SEP-835): the last test was refused for `files:write`; the next login asks for it too."""
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    with open_registry(registry_url) as registry:
        state = registry.fetch_probe_states(tenants=["acme"])[("acme", "crm")]
        refused = {**(state.last_test or {}), "ok": False, "errorClass": "insufficient_scope"}
        refused["challengedScopes"] = ["files:write"]
        with registry.transaction() as transaction:
            transaction.put_probe_state(dataclasses.replace(state, last_test=refused))

    running = connect(registry_url, "alice")
    url = httpx2.URL(running.url())
    scopes = url.params["scope"].split()
    assert scopes[-1] == "files:write" and scopes.count("files:write") == 1, scopes
    page = httpx2.get(url, follow_redirects=True, timeout=BOUND_SECONDS)
    assert page.status_code == 200 and running.result()[0] == 0


def test_deleting_the_server_revokes_and_removes_its_members_tokens(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    running = connect(registry_url, "alice")
    assert httpx2.get(running.url(), follow_redirects=True, timeout=BOUND_SECONDS).status_code == 200
    assert running.result()[0] == 0
    alice, _ = resolve_for(registry_url, "alice", "--show-secrets", "-f", folder)
    token = alice["headers"]["Authorization"].removeprefix("Bearer ")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: acme\n")
    code, out, err = run("apply", "-f", str(empty), "--allow-private-networks", "--registry", registry_url)
    assert code == 0 and "MCPServer acme/crm: delete" in out, out + err
    assert oauth_servers.main.revoked[:1] == ["refresh_token"], oauth_servers.main.revoked
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok
    assert oauth_servers.main.deregistered, "the client goes after the members' tokens"
    with open_registry(registry_url) as registry:
        assert registry.fetch_local_secrets("acme") == []
        assert registry.count_user_tokens(tenants=["acme"]) == {}


def test_a_connected_members_token_is_refreshed_with_what_connect_stored(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    """connect records the refresh token, client and issuer; `resolve` refreshes with them (by default)."""
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    oauth_servers.main.token_lifetime = 2
    running = connect(registry_url, "alice")
    assert httpx2.get(running.url(), follow_redirects=True, timeout=BOUND_SECONDS).status_code == 200
    assert running.result()[0] == 0
    first = {f"Bearer {value}" for value in oauth_servers.main.issued_values()}
    time.sleep(2.5)

    expired, _ = resolve_for(registry_url, "alice")
    assert expired["state"] != "ready", expired
    oauth_servers.main.token_lifetime = 3600  # the refreshed token stays valid however slow the machine is
    renewed, text = resolve_for(registry_url, "alice", "--allow-private-networks", "--show-secrets", "-f", folder)
    assert renewed["state"] == "ready", (renewed, text)
    assert renewed["headers"]["Authorization"] not in first
    assert oauth_servers.main.grant_counts["refresh_token"] == 1
    assert probe(oauth_servers.protected, renewed["headers"]).ok


def test_an_organization_connection_serves_every_member_without_their_own(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    """OpenWork: an administrator connects once for the organization; members without their own account (and
    agents run for no member) use it; a member who connects their own uses theirs; disconnect clears it."""
    folder = code_folder(tmp_path, oauth_servers.protected)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    shared = Connecting(
        "connect", "crm", "-n", "acme", "--shared", "--timeout", str(BOUND_SECONDS),
        "--allow-private-networks", "--registry", registry_url,
    )  # fmt: skip
    assert httpx2.get(shared.url(), follow_redirects=True, timeout=BOUND_SECONDS).status_code == 200
    code, printed = shared.result()
    assert code == 0 and "Connected: the organization on acme/crm" in printed, printed

    bob, _ = resolve_for(registry_url, "bob", "--show-secrets", "-f", folder)
    assert bob["state"] == "ready" and bob["scope"] == "platform", bob
    organization_token = bob["headers"]["Authorization"]
    assert probe(oauth_servers.protected, bob["headers"]).ok
    code, out, err = run("resolve", "-n", "acme", "-o", "json", "--registry", registry_url)
    assert code == 0 and json.loads(out)["servers"][0]["state"] == "ready", out + err

    alice_connects = connect(registry_url, "alice")
    assert httpx2.get(alice_connects.url(), follow_redirects=True, timeout=BOUND_SECONDS).status_code == 200
    assert alice_connects.result()[0] == 0
    alice, _ = resolve_for(registry_url, "alice", "--show-secrets", "-f", folder)
    assert alice["scope"] == "user" and alice["headers"]["Authorization"] != organization_token

    code, out, err = run(
        "disconnect", "crm", "-n", "acme", "--shared", "--allow-private-networks", "--registry", registry_url
    )
    assert code == 0 and "Disconnected: the organization" in out, out + err
    after, _ = resolve_for(registry_url, "bob")
    assert after["state"] == "needs_connection"
    still, _ = resolve_for(registry_url, "alice")
    assert still["state"] == "ready", "alice's own connection is hers, not the organization's"


def test_deleting_a_connection_revokes_the_tokens_members_obtained_through_it(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    """A per-member connection goes (its server stays): its members' tokens are revoked at the issuer, then their
    rows and sealed values go with it."""
    folder = Path(code_folder(tmp_path, oauth_servers.protected))
    connection = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPConnection",
        "metadata": {"name": "members", "namespace": "acme"},
        "spec": {"serverRef": "crm", "scope": "platform", "credentialMode": "perMember"},
    }
    (folder / "connection.yaml").write_text(yaml.safe_dump(connection))
    assert run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)[0] == 0
    with open_registry(registry_url) as registry:
        (client,) = registry.fetch_oauth_clients(tenant="acme", server="crm")
        token = oauth_servers.main.member_token_set(
            client.client_id,
            resource=oauth_servers.protected,
            issued_at=dt.datetime.now(dt.UTC),
            lifetime=dt.timedelta(hours=1),
        )
        key = load_store_key(environ=os.environ, database_path=registry.database_path())
        store_member_tokens(
            registry, MintedSecretStore(registry, key), token, tenant="acme", server="crm", user="alice",
            connection="members", client_id=client.client_id, issuer=oauth_servers.main.issuer,
        )  # fmt: skip
    assert probe(oauth_servers.protected, {"Authorization": f"Bearer {token.access_token}"}).ok

    (folder / "connection.yaml").unlink()
    code, out, err = run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)
    assert code == 0 and "MCPConnection acme/members: delete" in out, out + err
    assert oauth_servers.main.revoked[:1] == ["refresh_token"], oauth_servers.main.revoked
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token.access_token}"}).ok
    with open_registry(registry_url) as registry:
        assert registry.count_user_tokens(tenants=["acme"]) == {}
        assert not [s for s in registry.fetch_local_secrets("acme") if s.name.startswith("member_")]
        assert registry.fetch_oauth_clients(tenant="acme", server="crm"), "the server and its client stay"


PRESET_CLIENT_ID = "crm-app"
PRESET_SECRET = "preset-client-secret-7f3a"
PRESET_CONFIDENTIAL = {
    "type": "oauthAuthorizationCode",
    "pkce": "confidential",
    "clientId": {"value": PRESET_CLIENT_ID},
    "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
}


@pytest.mark.parametrize("issuer", ["main", "post_only"])
def test_a_pre_registered_confidential_client_connects_and_refreshes_as_itself(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, caplog: pytest.LogCaptureFixture, issuer: str
) -> None:
    """A client registered at the issuer by hand (spec.auth.clientId + clientSecret, never in `oauth_clients`)
    authenticates with its secret, by the method the issuer advertises, both when the code is exchanged and when
    the member's token is refreshed; a public-client refresh would be refused with invalid_client."""
    server = getattr(oauth_servers, issuer)
    url = oauth_servers.protected if issuer == "main" else oauth_servers.protected_post_only
    method = "client_secret_basic" if issuer == "main" else "client_secret_post"
    server.add_client(
        PRESET_CLIENT_ID, PRESET_SECRET, method=method,
        grant_types=("authorization_code", "refresh_token"), redirect_uris=("http://127.0.0.1/oauth/callback",),
    )  # fmt: skip
    folder = granted_folder(tmp_path, url, PRESET_CONFIDENTIAL, client_secret=PRESET_SECRET)
    code, out, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    with open_registry(registry_url) as registry:
        assert registry.fetch_oauth_clients(tenant="acme", server="crm") == [], "a pre-registered client is not kept"
    server.token_lifetime = 2
    running = Connecting(
        "connect", "crm", "-n", "acme", "--member", "alice", "--timeout", str(BOUND_SECONDS),
        "-f", folder, "--allow-private-networks", "--registry", registry_url,
    )  # fmt: skip
    page = httpx2.get(running.url(), follow_redirects=True, timeout=BOUND_SECONDS)
    assert page.status_code == 200, page.text
    code, printed = running.result()
    assert code == 0, printed
    assert server.grant_counts["authorization_code"] == 1
    first = {f"Bearer {value}" for value in server.issued_values()}
    time.sleep(2.5)
    server.token_lifetime = 3600  # the refreshed token stays valid however slow the machine is

    renewed, text = resolve_for(registry_url, "alice", "--allow-private-networks", "--show-secrets", "-f", folder)

    assert renewed["state"] == "ready", (renewed, text)
    assert server.grant_counts["refresh_token"] == 1
    assert renewed["headers"]["Authorization"] not in first
    assert probe(url, renewed["headers"]).ok
    assert set(server.seen_client_ids) <= {PRESET_CLIENT_ID}
    assert PRESET_SECRET not in printed + text + caplog.text
    with open_registry(registry_url) as registry:
        assert PRESET_SECRET not in json.dumps(registry.dump(), default=str)


def test_a_member_connects_and_disconnects_through_a_per_member_connection(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    """`--connection NAME`: the login goes through the server's perMember MCPConnection, the token is kept for it,
    and `disconnect --connection` revokes and clears exactly that one."""
    folder = Path(code_folder(tmp_path, oauth_servers.protected))
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
    assert run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)[0] == 0
    code, _, err = run("connect", "crm", "-n", "acme", "--shared", "--connection", "crm-members",
                       "--registry", registry_url)  # fmt: skip
    assert code == 1 and "give --member with it" in err, err
    code, _, err = run("connect", "crm", "-n", "acme", "--member", "alice", "--connection", "crm-gone",
                       "--allow-private-networks", "--registry", registry_url)  # fmt: skip
    assert code == 1 and "MCPConnection acme/crm-gone is not in registry" in err, err

    running = Connecting(
        "connect", "crm", "-n", "acme", "--member", "alice", "--connection", "crm-members",
        "--timeout", str(BOUND_SECONDS), "--allow-private-networks", "--registry", registry_url,
    )  # fmt: skip
    assert httpx2.get(running.url(), follow_redirects=True, timeout=BOUND_SECONDS).status_code == 200
    code, printed = running.result()
    assert code == 0 and "Connected: member alice on acme/crm through connection crm-members" in printed, printed
    alice, _ = resolve_for(registry_url, "alice", "--show-secrets", "-f", str(folder))
    assert (alice["state"], alice["connection"]) == ("ready", "crm-members"), alice
    token = alice["headers"]["Authorization"].removeprefix("Bearer ")
    assert probe(oauth_servers.protected, alice["headers"]).ok

    code, out, err = run("disconnect", "crm", "-n", "acme", "--member", "alice", "--connection", "crm-members",
                         "--allow-private-networks", "--registry", registry_url)  # fmt: skip
    assert code == 0 and "through connection crm-members" in out and "revoked at" in out, out + err
    assert oauth_servers.main.revoked[:1] == ["refresh_token"]
    assert not probe(oauth_servers.protected, {"Authorization": f"Bearer {token}"}).ok
    after, _ = resolve_for(registry_url, "alice")
    assert after["state"] == "needs_connection"
    with open_registry(registry_url) as registry:
        assert registry.count_user_tokens(tenants=["acme"]) == {}
        assert not [s for s in registry.fetch_local_secrets("acme") if s.name.startswith("member_")]
