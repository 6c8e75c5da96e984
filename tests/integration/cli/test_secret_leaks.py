"""No secret value ever leaves its Secret: every command, every auth mode, all output, logs, status and a full
dump of the registry are searched for distinctive values (and their base64 forms), and none may appear."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.registry import open_registry
from tests.fixtures.authorization_server import OAuthServers
from tests.fixtures.mcp_servers import LocalServers
from tests.integration.cli.test_commands import run

CANARIES = {
    "bearer": "canary-bearer-5c1e6f0a",
    "api-key": "canary-apikey-7d2b9e41",
    "header": "canary-header-0f3a8c77",
    "connection": "canary-connection-b81d2e90",
    "client-secret": "canary-clientsecret-3e9f1a52",
}


def object_(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "acme"},
        "spec": spec,
    }


def manifests(mcp: LocalServers, oauth: OAuthServers) -> list[dict[str, Any]]:
    ref = lambda key: {"name": "canaries", "key": key}  # noqa: E731
    private = {"allowPrivate": True}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "canaries", "namespace": "acme"},
            "stringData": CANARIES,
        },
        object_(
            "MCPServer",
            "bearer",
            {"url": mcp.protected, "network": private, "auth": {"type": "bearer", "secretKeyRef": ref("bearer")}},
        ),
        object_(
            "MCPServer",
            "apikey",
            {
                "url": oauth.echo.url,
                "network": private,
                "auth": {"type": "apiKey", "headerName": "X-Key", "secretKeyRef": ref("api-key")},
                "headers": [{"name": "X-Extra", "valueFrom": {"secretKeyRef": ref("header")}}],
            },
        ),
        object_(
            "MCPServer",
            "cc",
            {
                "url": oauth.protected,
                "network": private,
                "auth": {
                    "type": "oauthClientCredentials",
                    "clientId": {"value": "canary-client"},
                    "clientSecret": {"secretKeyRef": ref("client-secret")},
                },
            },
        ),
        object_(
            "MCPServer",
            "dcr",
            {
                "url": oauth.protected,
                "network": private,
                "auth": {"type": "oauthAuthorizationCode", "pkce": "confidential"},
            },
        ),
        object_(
            "MCPConnection",
            "conn",
            {"serverRef": "bearer", "scope": "user", "subject": "alice", "auth": {"secretKeyRef": ref("connection")}},
        ),
        object_("MCPAccessGrant", "all", {"target": {"serverRef": "bearer"}, "subjects": [{"kind": "Organization"}]}),
        object_(
            "MCPTemplateBinding",
            "agent",
            {"template": "agent", "servers": [{"serverRef": "bearer"}, {"serverRef": "apikey"}]},
        ),
    ]


def test_no_command_ever_shows_a_secret_value(
    tmp_path: Path,
    registry_url: str,
    mcp_servers: LocalServers,
    oauth_servers: OAuthServers,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))
    caplog.set_level(logging.DEBUG)
    oauth_servers.main.add_client("canary-client", CANARIES["client-secret"])
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all(manifests(mcp_servers, oauth_servers), sort_keys=False))
    f, reg, private = ["-f", str(folder)], ["--registry", registry_url], "--allow-private-networks"
    commands = [
        ["validate", *f],
        ["plan", *f, *reg],
        ["plan", *f, "-o", "json", *reg],
        ["apply", *f, private, *reg],
        ["apply", *f, private, *reg],
        ["get", *reg],
        ["get", "-o", "wide", *reg],
        ["get", "-o", "yaml", *reg],
        ["get", "-o", "json", *reg],
        ["test", "bearer", *f, private, *reg],
        ["test", "apikey", *f, private, "-o", "json", *reg],
        ["test", "cc", *f, private, *reg],
        ["resolve", "-n", "acme", "--template", "agent", "--user", "alice", "-o", "json", *f, *reg],
        ["resolve", "-n", "acme", "--template", "agent", "--user", "alice", "-o", "mcp-config", *f, *reg],
        ["resolve", "-n", "acme", "--template", "agent", "--user", "alice", "--explain", *f, *reg],
    ]
    output = []
    for argv in commands:
        code, out, err = run(*argv)
        assert code in (0, 1, 2), argv
        output += [out, err]
    assert "Connected · " in "".join(output)  # the credentials really were used
    assert oauth_servers.main.grant_counts["client_credentials"] >= 1 and oauth_servers.main.registrations >= 1
    with open_registry(registry_url) as registry:
        dump = json.dumps(registry.dump(), default=str)
    haystacks = {"output": "\n".join(output), "logs": caplog.text, "registry": dump}
    minted = oauth_servers.issued_values()
    for value in [*CANARIES.values(), *minted]:
        forms = {value, base64.b64encode(value.encode()).decode()}
        for where, text in haystacks.items():
            for form in forms:
                assert form not in text, f"a secret value appears in {where}"
