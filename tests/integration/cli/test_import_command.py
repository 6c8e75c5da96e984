"""`mcp-reconciler import`: files, folders, presets and a Registry API served by our own `serve` on 127.0.0.1,
against SQLite and PostgreSQL. Importing what we serve gives back the objects that were applied."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.demo.serving import ServerLoop
from reconciler.manifests.importing import preset_names
from reconciler.registry import open_registry
from reconciler.runtime import build_serving_app
from tests.integration.cli.test_commands import run

TOKEN = "import-test-platform-token"
GOOD = {
    "name": "io.example/docs",
    "description": "Documentation search.",
    "version": "1.0.0",
    "remotes": [
        {
            "type": "sse",
            "url": "https://docs.example.com/sse",
            "headers": [{"name": "X-Docs-Key", "isSecret": True, "isRequired": True}],
        }
    ],
}

APPLIED = """
apiVersion: v1
kind: Namespace
metadata:
  name: acme-prod
  labels: {mcp.reconciler.dev/tenant: acme}
---
apiVersion: v1
kind: Secret
metadata: {name: weather-credentials, namespace: acme-prod}
stringData: {authorization: weather-token-value, x-api-secret: weather-secret-value}
---
apiVersion: v1
kind: Secret
metadata: {name: search-credentials, namespace: acme-prod}
stringData: {x-search-key: search-key-value}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: weather, namespace: acme-prod}
spec:
  displayName: Weather
  description: Forecasts for any city.
  url: https://weather.example.com/mcp
  transport: streamable-http
  headers:
    - name: X-Api-Secret
      valueFrom: {secretKeyRef: {name: weather-credentials, key: x-api-secret}}
  auth: {type: bearer, scheme: Token, secretKeyRef: {name: weather-credentials, key: authorization}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: docs, namespace: acme-prod}
spec:
  description: Docs over SSE.
  url: https://docs.example.com/sse
  transport: sse
  featured: true
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: search, namespace: acme-prod}
spec:
  description: Search.
  url: https://search.example.com/mcp
  transport: streamable-http
  auth: {type: apiKey, headerName: X-Search-Key, secretKeyRef: {name: search-credentials, key: x-search-key}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: legacy, namespace: acme-prod}
spec:
  description: The old search, kept registered while agents move off it.
  url: https://legacy.example.com/mcp
  transport: streamable-http
  enabled: false
"""


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_a_file_imports_to_yaml_that_validates(tmp_path: Path) -> None:
    source = write_json(tmp_path / "docs.json", GOOD)
    out = tmp_path / "out"
    out.mkdir()

    code, _, err = run("import", str(source), "-n", "acme", "-o", str(out / "docs.yaml"))

    assert code == 0, err
    assert "note: io.example/docs: fill in Secret acme/docs-credentials (x-docs-key: the X-Docs-Key header)" in err
    [server, secret] = list(yaml.safe_load_all((out / "docs.yaml").read_text()))
    assert server["spec"]["headers"] == [
        {"name": "X-Docs-Key", "valueFrom": {"secretKeyRef": {"name": "docs-credentials", "key": "x-docs-key"}}}
    ]
    assert secret["stringData"] == {"x-docs-key": ""}
    assert run("validate", "-f", str(out))[0] == 0


def test_a_folder_imports_in_a_fixed_order_with_the_same_bytes_each_time(tmp_path: Path) -> None:
    folder = tmp_path / "servers"
    (folder / "nested").mkdir(parents=True)
    write_json(folder / "b.json", {**GOOD, "name": "io.example/b"})
    write_json(folder / "nested" / "a.json", {**GOOD, "name": "io.example/a"})

    first = run("import", str(folder))
    second = run("import", str(folder))

    assert first[0] == 0
    assert first[1] == second[1]
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(first[1]) if doc["kind"] == "MCPServer"]
    assert names == ["b", "a"]  # b.json sorts before nested/a.json


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "io.example/x",\n "description": ', "bad.json:2: not JSON"),
        (json.dumps({**GOOD, "description": "d" * 101}), "bad.json: server.json io.example/docs: field description"),
        (json.dumps({**GOOD, "remotes": [{"type": "websocket", "url": "wss://x"}]}), "field remotes.0.type"),
    ],
)
def test_bad_input_is_one_located_error_and_nothing_is_written(tmp_path: Path, content: str, message: str) -> None:
    good = write_json(tmp_path / "good.json", GOOD)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "out.yaml"

    code, stdout, err = run("import", str(good), str(bad), "-o", str(out))

    assert code == 1
    assert message in err
    assert stdout == ""
    assert not out.exists()


def test_every_preset_imports_offline_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("the catalog must import without the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    code, listing, _ = run("import", "--list-presets")
    assert code == 0
    assert [line.split()[0] for line in listing.splitlines()] == preset_names()

    for preset in preset_names():
        code, _, err = run("import", "--preset", preset, "-n", "acme", "-o", str(tmp_path / f"{preset}.yaml"))
        assert code == 0, err
    code, out, err = run("validate", "-f", str(tmp_path))
    assert code == 0, err
    assert f"{len(preset_names())} objects valid" in out
    notion = yaml.safe_load((tmp_path / "notion.yaml").read_text())
    assert notion["spec"]["url"] == "https://mcp.notion.com/mcp"
    assert notion["spec"]["auth"] == {"type": "oauthAuthorizationCode", "pkce": "public"}
    assert attempts == []


@pytest.fixture
def served(registry_url: str, tmp_path: Path) -> Iterator[str]:
    """APPLIED in a registry, served by `serve`'s app on 127.0.0.1; yields the base URL."""
    folder = tmp_path / "applied"
    folder.mkdir()
    (folder / "world.yaml").write_text(APPLIED)
    code, _, err = run("apply", "-f", str(folder), "--no-probe", "--registry", registry_url)
    assert code == 0, err
    with open_registry(registry_url) as registry, ServerLoop() as loop:
        yield loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN))


def test_importing_what_serve_publishes_gives_back_the_applied_objects(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    applied = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(APPLIED) if doc["kind"] == "MCPServer"}
    names = [f"local.mcp-reconciler.acme/{name}" for name in applied]
    arguments = [arg for name in names for arg in ("--server", name)]

    code, out, err = run("import", "--from", served, *arguments, "--allow-private-networks")

    assert code == 0, err
    imported = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(out) if doc["kind"] == "MCPServer"}
    for name, doc in imported.items():
        annotations = doc["metadata"].pop("annotations")
        assert annotations["mcp.reconciler.dev/upstream-registry"] == served
        assert annotations["mcp.reconciler.dev/upstream-name"] == f"local.mcp-reconciler.acme/{name}"
    assert imported == applied
    for value in ("weather-token-value", "weather-secret-value", "search-key-value"):
        assert value not in out


def test_import_from_a_registry_is_ssrf_guarded_and_needs_a_known_server(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCP_RECONCILER_IMPORT_TOKEN", raising=False)
    blocked = run("import", "--from", served, "--server", "local.mcp-reconciler.acme/docs")
    missing = run("import", "--from", served, "--server", "local.mcp-reconciler.acme/nope", "--allow-private-networks")

    assert blocked[0] == 1
    assert "blocked: 127.0.0.1 is a loopback address" in blocked[2]
    assert missing[0] == 1
    assert "401 (a token may be needed)" in missing[2]
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    unknown = run("import", "--from", served, "--server", "local.mcp-reconciler.acme/nope", "--allow-private-networks")
    assert unknown[0] == 1
    assert "v0.1/servers/local.mcp-reconciler.acme%2Fnope/versions/latest: not found" in unknown[2]


def test_upstream_reports_a_server_deleted_from_the_registry_it_was_imported_from(
    served: str, registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    folder = tmp_path / "mine"
    folder.mkdir()
    servers = ["--server", "local.mcp-reconciler.acme/weather", "--server", "local.mcp-reconciler.acme/docs"]
    code, _, err = run(
        "import", "--from", served, *servers, "--allow-private-networks", "-o", str(folder / "imported.yaml")
    )
    assert code == 0, err

    code, out, err = run("upstream", "-f", str(folder), "--allow-private-networks")
    assert code == 0, err
    assert "MCPServer acme-prod/docs: UpstreamActive: local.mcp-reconciler.acme/docs is active at" in out

    upstream_folder = tmp_path / "upstream"
    upstream_folder.mkdir()
    kept = [doc for doc in APPLIED.split("\n---\n") if "name: docs," not in doc]
    (upstream_folder / "world.yaml").write_text("\n---\n".join(kept))
    assert run("apply", "-f", str(upstream_folder), "--no-probe", "--registry", registry_url)[0] == 0

    code, out, err = run("upstream", "-f", str(folder), "--allow-private-networks", "-o", "json")
    assert code == 2, err
    reasons = {row["name"]: (row["reason"], row["message"]) for row in json.loads(out)["servers"]}
    assert reasons["docs"] == (
        "UpstreamDeleted",
        f"local.mcp-reconciler.acme/docs was deleted from {served}: The server was removed from the registry.",
    )
    assert reasons["weather"][0] == "UpstreamActive"


def test_upstream_checks_are_ssrf_guarded(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    folder = tmp_path / "mine"
    folder.mkdir()
    run(
        "import",
        "--from",
        served,
        "--server",
        "local.mcp-reconciler.acme/docs",
        "--allow-private-networks",
        "-o",
        str(folder / "imported.yaml"),
    )

    code, _, err = run("upstream", "-f", str(folder))

    assert code == 1
    assert "blocked: 127.0.0.1 is a loopback address" in err


def stored_copies(registry_url: str) -> list[dict[str, Any]]:
    """The `resources` rows of namespace `mine` as stored, `updated_at` included."""
    with open_registry(registry_url) as registry:
        return [row for row in registry.dump()["resources"] if row["namespace"] == "mine"]


def upstream_condition(registry_url: str, name: str) -> dict[str, Any]:
    code, out, err = run("get", "mcpservers", name, "-n", "mine", "-o", "json", "--registry", registry_url)
    assert code == 0, err
    found = [item for item in json.loads(out)["status"]["conditions"] if item["type"] == "Upstream"]
    return found[0] if found else {}


def test_upstream_findings_become_a_condition_in_get_and_clear_when_the_entry_is_back(
    served: str, registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copies `apply` keeps (namespace `mine`, its own manager, in the same registry the upstream serves)
    carry the `Upstream` condition; a check that finds nothing new writes nothing, and `apply` keeps it."""
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    folder = tmp_path / "mine"
    folder.mkdir()
    imported = folder / "imported.yaml"
    servers = ["--server", "local.mcp-reconciler.acme/docs", "--server", "local.mcp-reconciler.acme/search"]
    code, _, err = run(
        "import", "--from", served, *servers, "-n", "mine", "--allow-private-networks", "-o", str(imported)
    )
    assert code == 0, err
    mine = ["--registry", registry_url, "--manager", "mine"]
    code, _, err = run("apply", "-f", str(folder), "--no-probe", *mine)
    assert code == 0, err
    check = ["upstream", "-f", str(folder), "--allow-private-networks", *mine]

    assert run(*check)[0] == 0
    active = upstream_condition(registry_url, "docs")
    assert (active["status"], active["reason"]) == ("True", "UpstreamActive")

    upstream_folder = tmp_path / "upstream"
    upstream_folder.mkdir()
    (upstream_folder / "world.yaml").write_text(
        "\n---\n".join(d for d in APPLIED.split("\n---\n") if "name: docs," not in d)
    )
    assert run("apply", "-f", str(upstream_folder), "--no-probe", "--registry", registry_url)[0] == 0

    assert run(*check)[0] == 2
    deleted = upstream_condition(registry_url, "docs")
    assert deleted["status"] == "False"
    assert deleted["reason"] == "UpstreamDeleted"
    assert deleted["message"] == (
        f"local.mcp-reconciler.acme/docs was deleted from {served}: The server was removed from the registry."
    )
    assert upstream_condition(registry_url, "search")["reason"] == "UpstreamActive"
    code, wide, _ = run("get", "mcpservers", "-n", "mine", "-o", "wide", "--registry", registry_url)
    assert code == 0
    header, *rows = wide.splitlines()
    assert "UPSTREAM" in header.split()
    assert any(row.split()[0] == "docs" and "UpstreamDeleted" in row.split() for row in rows)

    before = stored_copies(registry_url)
    assert TOKEN not in json.dumps(before, default=str)  # the registry's token never reaches a status
    assert run(*check)[0] == 2
    code, _, err = run("apply", "-f", str(folder), "--no-probe", *mine)
    assert code == 0, err
    assert stored_copies(registry_url) == before  # nothing new upstream or here: no write; apply kept it
    imported.write_text(imported.read_text().replace("description: Docs over SSE.", "description: Our docs."))
    code, _, err = run("apply", "-f", str(folder), "--no-probe", *mine)
    assert code == 0, err
    assert upstream_condition(registry_url, "docs") == {**deleted, "observedGeneration": 2}  # a pass keeps it

    (upstream_folder / "world.yaml").write_text(APPLIED)
    assert run("apply", "-f", str(upstream_folder), "--no-probe", "--registry", registry_url)[0] == 0
    assert run(*check)[0] == 0
    back = upstream_condition(registry_url, "docs")
    assert (back["status"], back["reason"]) == ("True", "UpstreamActive")
    assert back["lastTransitionTime"] >= deleted["lastTransitionTime"]

    # Disabled upstream (registered, not offered to agents) is published as deprecated, with why.
    (upstream_folder / "world.yaml").write_text(
        APPLIED.replace("  featured: true\n", "  featured: true\n  enabled: false\n")
    )
    assert run("apply", "-f", str(upstream_folder), "--no-probe", "--registry", registry_url)[0] == 0
    assert run(*check)[0] == 2
    deprecated = upstream_condition(registry_url, "docs")
    assert (deprecated["status"], deprecated["reason"]) == ("False", "UpstreamDeprecated")
    assert deprecated["message"] == (
        f"local.mcp-reconciler.acme/docs is deprecated at {served}: "
        "Disabled in acme-prod: registered but not offered to agents."
    )


def test_upstream_without_a_registry_only_prints(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_IMPORT_TOKEN", TOKEN)
    folder = tmp_path / "mine"
    folder.mkdir()
    code, _, err = run(
        "import",
        "--from",
        served,
        "--server",
        "local.mcp-reconciler.acme/docs",
        "--allow-private-networks",
        "-o",
        str(folder / "imported.yaml"),
    )
    assert code == 0, err
    absent = tmp_path / "absent.db"

    code, out, err = run("upstream", "-f", str(folder), "--allow-private-networks", "--registry", f"sqlite:///{absent}")

    assert code == 0, err
    assert "UpstreamActive" in out
    assert "no registry to record the findings in" in err
    assert not absent.exists()
