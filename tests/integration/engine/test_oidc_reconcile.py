"""The reconcile loop against oidc-provider (a certified OpenID provider) and the MCP server it protects: a
client-credentials server with a preset client and one with dynamic registration become Ready with their tools,
an authorization-code server registers its client and waits for members, and deleting them deregisters the
clients. Nothing the provider issued is stored in clear. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from reconciler.engine.probing import ProbeOptions
from reconciler.engine.reconciling import EngineSettings, ReconcileReport, reconcile
from reconciler.manifests import load_folder
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from tests.fixtures.oidc_provider import OIDC_SCOPE, OIDCProtectedMCP

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.")
PROBE = ProbeOptions(ProbeSettings(allow_private_networks=True, total_timeout=20))


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def server(name: str, url: str, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"url": url, "auth": auth, "network": {"allowPrivate": True}},
    }


def apply(folder: Path, registry: Registry, docs: list[dict[str, Any]]) -> ReconcileReport:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return reconcile(load_folder(folder), registry, settings=EngineSettings(), probe=PROBE)


def status_of(registry: Registry, name: str) -> dict[str, Any]:
    (stored,) = registry.fetch_resources(kind="MCPServer", name=name)
    return stored.status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_oauth_servers_reconcile_against_oidc_provider(
    tmp_path: Path, registry: Registry, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    machine = provider.static_machine
    docs = [
        server(
            "preset",
            url,
            {
                "type": "oauthClientCredentials",
                "clientId": {"value": machine.client_id},
                "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
                "scopes": [OIDC_SCOPE],
            },
        ),
        server("registered", url, {"type": "oauthClientCredentials", "dynamicRegistration": True}),
        server("members", url, {"type": "oauthAuthorizationCode", "pkce": "public"}),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "acme"},
            "stringData": {"client-secret": machine.client_secret},
        },
    ]
    apply(tmp_path / "f", registry, docs)
    for name in ("preset", "registered"):
        status = status_of(registry, name)
        assert condition(status, "Ready")["status"] == "True", status
        assert status["tools"]["count"] == 2 and status["credentials"]["expiresAt"]
    members = status_of(registry, "members")
    assert condition(members, "CredentialsValid")["reason"] == "AwaitingUserAuthorization"
    template = members["credentials"]["authorizationUrlTemplate"]
    assert template.startswith(str(provider.metadata["authorization_endpoint"]))
    clients = {name: registry.fetch_oauth_clients(tenant="acme", server=name) for name in ("registered", "members")}
    assert all(len(found) == 1 and found[0].issuer == provider.issuer for found in clients.values())

    everything = json.dumps(registry.dump(), default=str)
    assert machine.client_secret not in everything
    assert not JWT.search(everything)  # no access token (a JWT) in clear anywhere in the registry

    apply(tmp_path / "f", registry, [])
    assert all(registry.fetch_oauth_clients(tenant="acme", server=name) == [] for name in clients)
    for (found,) in clients.values():
        answer = httpx2.get(f"{provider.issuer}/auth?client_id={found.client_id}&response_type=code", timeout=15)
        assert answer.status_code == 400 and "invalid_client" in answer.text  # deregistered at the provider
