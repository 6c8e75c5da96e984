"""A server that refuses the token for lack of a scope (403 `insufficient_scope`, SEP-835) says so as its own
class and reason, naming the scopes it challenged for, in `apply`'s table, `test`'s output and exit code, the
recorded `lastTest` (`challengedScopes`, for a later step-up) and the Ready condition. Real CLI, real registry
(SQLite and PostgreSQL), a real bearer-protected MCP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from reconciler.registry import open_registry
from tests.fixtures.mcp_servers import DEMANDED_SCOPES, SCOPE_DEMANDING_TOKEN, LocalServers
from tests.integration.cli.test_commands import run


def scope_folder(tmp_path: Path, url: str) -> str:
    folder = tmp_path / "f"
    folder.mkdir()
    docs = [
        {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "files", "namespace": "acme"},
            "spec": {
                "url": url,
                "auth": {"type": "bearer", "secretKeyRef": {"name": "files-token", "key": "token"}},
                "network": {"allowPrivate": True},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "files-token", "namespace": "acme"},
            "stringData": {"token": SCOPE_DEMANDING_TOKEN},
        },
    ]
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(folder)


def ready_of(status: dict[str, Any]) -> dict[str, Any]:
    (ready,) = [item for item in status["conditions"] if item["type"] == "Ready"]
    return ready


def test_insufficient_scope_is_its_own_reason_naming_the_scopes(
    tmp_path: Path, registry_url: str, mcp_servers: LocalServers
) -> None:
    folder = scope_folder(tmp_path, mcp_servers.scope_demanding)
    code, applied, err = run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 0, err
    (line,) = [row for row in applied.splitlines() if row.startswith("acme ")]
    assert "insufficient_scope error: " in line and "scope(s) mcp:tools files:write" in line, line

    code, out, _ = run(
        "test", "files", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", registry_url
    )
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    assert document["error"]["class"] == "insufficient_scope" and document["error"]["reason"] == "InsufficientScope"
    assert document["error"]["challengedScopes"] == list(DEMANDED_SCOPES)
    assert "HTTP 403" in document["error"]["message"]

    code, text, _ = run("test", "files", "-f", folder, "--allow-private-networks", "--registry", registry_url)
    assert code == 1 and text.startswith("Failed · insufficient_scope: "), text
    assert "reason: InsufficientScope; challenged scopes: mcp:tools files:write" in text

    with open_registry(registry_url) as registry:
        (stored,) = registry.fetch_resources(kind="MCPServer", name="files")
    last_test = stored.status["lastTest"]
    assert last_test["ok"] is False and last_test["errorClass"] == "insufficient_scope"
    assert last_test["challengedScopes"] == list(DEMANDED_SCOPES)
    ready = ready_of(stored.status)
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientScope")
    assert "mcp:tools files:write" in ready["message"]
    assert SCOPE_DEMANDING_TOKEN not in json.dumps([applied, out, text, stored.status])


def test_the_operator_view_shows_the_reason_too(tmp_path: Path, registry_url: str, mcp_servers: LocalServers) -> None:
    folder = scope_folder(tmp_path, mcp_servers.scope_demanding)
    assert run("apply", "-f", folder, "--allow-private-networks", "--registry", registry_url)[0] == 0
    code, out, err = run("get", "mcp", "files", "-n", "acme", "-o", "json", "--registry", registry_url)
    assert code == 0, err
    shown = json.loads(out)
    status = shown["status"] if "status" in shown else shown["items"][0]["status"]
    assert ready_of(status)["reason"] == "InsufficientScope"
    assert status["lastTest"]["challengedScopes"] == list(DEMANDED_SCOPES)
