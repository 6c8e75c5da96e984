"""`examples/06-oauth` end to end, its URLs pointed at local servers: after `apply`, `ops-agent` run for a member of
team `ops` gets every server, and each credential it is handed is one the live server accepts. The two
client-credentials servers carry the token the reconciler minted (one with a spec token URL and
`client_secret_post`, one whose token endpoint and audience come from discovery and the spec), the bearer
server its Secret's token; the two authorization-code servers wait on the member's own connection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.authorization_server import OAuthServers
from tests.integration.cli.test_commands import EXAMPLES, run
from tests.integration.credentials.support import probe

SECRETS = {
    "crm": ("crm-agent", "example-crm-client-secret"),
    "billing": ("billing-agent", "example-billing-client-secret"),
}
STATUS_TOKEN = "example-status-token"


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def local_example(tmp_path: Path, oauth_servers: OAuthServers) -> Path:
    """The example with every server on 127.0.0.1 (and allowed to be there); everything else as committed."""
    folder = tmp_path / "06-oauth"
    shutil.copytree(EXAMPLES / "06-oauth", folder)
    servers = folder / "servers.yaml"
    issuer = oauth_servers.main.issuer
    urls = {
        "crm-mcp": oauth_servers.protected,
        "billing-mcp": oauth_servers.protected_by_audience,
        "docs-mcp": oauth_servers.protected,
        "calendar-mcp": oauth_servers.protected,
        "status-mcp": oauth_servers.echo.url,
    }
    documents: list[dict[str, Any]] = list(yaml.safe_load_all(servers.read_text()))
    for document in documents:
        if document["kind"] != "MCPServer":
            continue
        spec = document["spec"]
        spec["url"] = urls[document["metadata"]["name"]]
        spec["network"] = {"allowPrivate": True}
        auth = spec["auth"]
        for field in ("tokenUrl", "authUrl"):
            if field in auth:
                auth[field] = f"{issuer}/{'token' if field == 'tokenUrl' else 'authorize'}"
        if auth["type"] == "oauthClientCredentials" and "audience" not in auth:
            auth["resource"] = spec["url"]  # the local server takes only tokens bound to it (RFC 8707)
        if "scopes" in auth:
            auth["scopes"] = ["mcp:tools"]  # the scope the local servers know and demand
        if "audience" in auth:
            auth["audience"] = oauth_servers.audience
            auth["tokenUrl"] = f"{issuer}/token"
    servers.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return folder


def test_ops_agent_gets_every_server_of_the_oauth_example(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client(*SECRETS["crm"], method="client_secret_post")  # as the example declares
    oauth_servers.main.add_client(*SECRETS["billing"])
    oauth_servers.main.add_client("docs-agent", "example-docs-client-secret")
    oauth_servers.echo.required = {"Authorization": f"Bearer {STATUS_TOKEN}"}
    folder = local_example(tmp_path, oauth_servers)
    code, out, err = run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)
    assert code == 0, out + err
    applied = out + err

    code, out, err = run(
        "resolve", "-n", "wacht", "--template", "ops-agent", "--user", "dana", "--team", "ops",
        "-o", "json", "--show-secrets", "-f", str(folder), "--allow-private-networks", "--registry", registry_url,
    )  # fmt: skip
    assert code == 0, err
    servers = {server["name"]: server for server in json.loads(out)["servers"]}
    assert sorted(servers) == ["billing-mcp", "calendar-mcp", "crm-mcp", "docs-mcp", "status-mcp"]
    for name in ("crm-mcp", "billing-mcp", "status-mcp"):
        server = servers[name]
        assert server["state"] == "ready", (server.get("reason"), applied, err)
        result = probe(server["url"], server["headers"])
        assert result.ok, (name, result.message)
    assert servers["crm-mcp"]["headers"]["Authorization"] != servers["billing-mcp"]["headers"]["Authorization"]
    for name in ("docs-mcp", "calendar-mcp"):
        assert servers[name]["state"] == "needs_connection", servers[name]
        assert "dana" in servers[name]["reason"]
    assert oauth_servers.main.grant_counts["client_credentials"] == 2
