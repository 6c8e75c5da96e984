"""The operator's half of members' OAuth on the real API server: an authorization-code MCPServer, protected by the
project's authorization server, is reconciled from the cluster into the operator's registry; a member connects
through `serve`'s connect service on that same registry (the `connectUrl` a resolution hands out); the operator's
pass rolls the member's token up into `status.oauth` and its sweep refreshes the token before it expires; the API
server's Table (what `kubectl get -o wide` prints) shows the OAuth column; `resolve` hands the member a token the
live protected MCP server accepts; a disconnect brings the counts down again. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.connecting import EngineConnector
from reconciler.engine.inputs import StaticSecrets
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, resolve
from tests.e2e.kube import TABLE_ACCEPT, KubeHttp, custom_path, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import GROUP_VERSION, Ref, create, get, server, wait_ready
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.credentials.support import probe

__all__ = ["oauth_servers", "oauth_servers_session"]

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
PLATFORM_TOKEN = "member-oauth-e2e-platform-token"
LOCAL = ProbeSettings(allow_private_networks=True)
HTTP_TIMEOUT = 30.0
WAIT = 90.0
"""A bound for liveness on a busy 2-core machine, not a speed target."""
TOKEN_SECONDS = 8
"""The fixture's access-token lifetime here: due for refresh at 80% (6.4 s), so the operator's sweep refreshes it
within the test."""


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One store key for the operator, the connect service and `resolve` (one process here, as one Secret in a
    cluster), outside the home directory."""
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


@pytest.fixture
def served(registry: Registry) -> Iterator[str]:
    """`serve` (MCP endpoint, connect service) over the operator's registry, at its public URL."""
    with ServerLoop() as loop:

        def app(url: str) -> Any:
            connector = EngineConnector(registry, secrets=StaticSecrets(), settings=LOCAL, public_url=url)
            return build_serving_app(registry, token=PLATFORM_TOKEN, public_url=url, connector=connector)

        yield loop.serve_asgi(app)


def oauth_of(kube: KubeHttp, ref: Ref) -> dict[str, Any] | None:
    found = get(kube, ref)
    oauth = ((found or {}).get("status") or {}).get("oauth")
    return dict(oauth) if isinstance(oauth, dict) else None


def wait_oauth(kube: KubeHttp, ref: Ref, *, connected: int, summary: str) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        oauth = oauth_of(kube, ref)
        if oauth is not None and oauth.get("connected") == connected and str(oauth.get("summary")) == summary:
            return oauth
        return None

    return wait_for(matches, timeout=WAIT, what=f"{ref} status.oauth: {summary}")


def oauth_cell(kube: KubeHttp, namespace: str, name: str) -> str:
    """The OAuth column of the API server's Table for the object: what `kubectl get mcps -o wide` prints."""
    table = kube.get(custom_path(namespace, "mcpservers"), accept=TABLE_ACCEPT)
    columns = [column["name"] for column in table["columnDefinitions"]]
    (row,) = [row for row in table["rows"] if row["cells"][0] == name]
    return str(dict(zip(columns, row["cells"], strict=True))["OAuth"])


@pytest.mark.timeout(300)
def test_the_operator_rolls_up_a_member_connected_through_serve(
    kube: KubeHttp,
    new_namespace: NewNamespace,
    start_operator: Start,
    registry_url: str,
    registry: Registry,
    served: str,
    oauth_servers: OAuthServers,
) -> None:
    namespace = new_namespace("oauth")
    start_operator(
        [namespace], registry_url, probe=True, allow_private_networks=True, public_url=served, member_token_interval=1.0
    )
    crm = create(
        kube,
        server(
            namespace,
            "crm",
            url=oauth_servers.protected,
            auth={"type": "oauthAuthorizationCode", "pkce": "public"},
            network={"allowPrivate": True},
            discovery={"enabled": True},
        ),
    )
    grant = {
        "apiVersion": GROUP_VERSION,
        "kind": "MCPAccessGrant",
        "metadata": {"name": "everyone", "namespace": namespace},
        "spec": {"target": {"serverRef": "crm"}, "subjects": [{"kind": "Organization"}]},
    }
    everyone = create(kube, grant)

    # Reconciled: the grant in the registry, the client registered (DCR with the public URL's callback), nobody
    # connected yet.
    wait_ready(kube, everyone, timeout=WAIT)
    before = wait_oauth(kube, crm, connected=0, summary="not connected")
    assert before["membersExpected"] is True
    wait_for(lambda: oauth_cell(kube, namespace, "crm") == "not connected", timeout=WAIT, what="the Table's OAuth")

    waiting = resolve(registry, namespace, user="alice", public_url=served).server("crm")
    assert waiting.state == "needs_connection" and waiting.connect_url is not None, waiting.reason

    oauth_servers.main.token_lifetime = TOKEN_SECONDS
    with httpx2.Client(timeout=HTTP_TIMEOUT) as http:
        page = http.get(waiting.connect_url, follow_redirects=True)  # the member's browser
    assert page.status_code == 200 and "Connected" in page.text, page.text

    # The operator's pass counts the member; within 24 h counts as expiring, as the summary says.
    after = wait_oauth(kube, crm, connected=1, summary="1 connected, 1 expiring")
    assert after["needsReauthorization"] == 0 and after["withoutRefreshToken"] == 0
    wait_for(
        lambda: oauth_cell(kube, namespace, "crm") == "1 connected, 1 expiring",
        timeout=WAIT,
        what="the Table's OAuth column to count the member",
    )

    # The operator's sweep refreshes the member's token before it expires (8 s lifetime, due at 80%).
    first_expiry = _expiry(registry)
    wait_for(
        lambda: oauth_servers.main.grant_counts["refresh_token"] >= 1 and _expiry(registry) > first_expiry,
        timeout=WAIT,
        what="the operator's sweep to refresh the member's token",
    )
    resolved = resolve(registry, namespace, user="alice", secrets=StaticSecrets(), show_secrets=True).server("crm")
    assert resolved.state == "ready", resolved.reason
    assert probe(oauth_servers.protected, dict(resolved.headers)).ok, "the live protected server accepts it"
    token = resolved.headers["Authorization"].removeprefix("Bearer ")
    assert token not in json.dumps(get(kube, crm)), "no token in the object or its status"

    with httpx2.Client(timeout=HTTP_TIMEOUT) as http:
        gone = http.request(
            "DELETE",
            f"{served}/oauth/connections",
            headers={"Authorization": f"Bearer {PLATFORM_TOKEN}"},
            json={"namespace": namespace, "server": "crm", "member": "alice"},
        )
    assert gone.status_code == 200 and gone.json()["disconnected"] is True, gone.text
    wait_oauth(kube, crm, connected=0, summary="not connected")
    wait_for(
        lambda: oauth_cell(kube, namespace, "crm") == "not connected",
        timeout=WAIT,
        what="the Table's OAuth column to drop the member",
    )
    assert resolve(registry, namespace, user="alice").server("crm").state == "needs_connection"


def _expiry(registry: Registry) -> dt.datetime:
    """When alice's stored access token expires, as her `user_tokens` row records it."""
    rows = [row for row in registry.dump()["user_tokens"] if row["user_id"] == "alice"]
    assert len(rows) == 1, rows
    expires = rows[0]["expires_at"]
    moment = expires if isinstance(expires, dt.datetime) else dt.datetime.fromisoformat(str(expires))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
