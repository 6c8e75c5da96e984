"""`test` (Test Connection) and `demo` end to end against real local MCP servers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from reconciler.registry import open_registry
from tests.fixtures.mcp_servers import LocalServers
from tests.integration.cli.test_commands import run


def write(folder: Path, mcp_servers: LocalServers) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [
        {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"url": url, "network": {"allowPrivate": True}},
        }
        for name, url in (("tools", mcp_servers.tools), ("broken", mcp_servers.failing))
    ]
    (folder / "servers.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def test_test_connection_prints_tools_or_the_failure_class(
    tmp_path: Path, sqlite_url: str, mcp_servers: LocalServers
) -> None:
    folder = str(write(tmp_path / "f", mcp_servers))
    code, out, err = run("test", "tools", "-f", folder, "--allow-private-networks", "--registry", sqlite_url)
    assert code == 0 and out.startswith("Connected · 4 tools") and "tools: add, echo" in out
    assert "not recorded" in err
    code, out, _ = run("test", "broken", "-f", folder, "--allow-private-networks", "--registry", sqlite_url)
    assert code == 1 and out.startswith("Failed · transport: ") and "\nhint: " in out
    code, out, _ = run("test", "tools", "-f", folder, "-o", "json", "--registry", sqlite_url)
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and document["error"]["class"] == "blocked"
    assert document["tools"] == []
    code, _, err = run("test", "nope", "-f", folder, "--registry", sqlite_url)
    assert code == 1 and "MCPServer 'nope' not found" in err


def test_test_connection_is_recorded_as_the_last_test(
    tmp_path: Path, sqlite_url: str, mcp_servers: LocalServers
) -> None:
    folder = str(write(tmp_path / "f", mcp_servers))
    assert run("apply", "-f", folder, "--no-probe", "--registry", sqlite_url)[0] == 0
    code, out, err = run(
        "test", "tools", "-n", "acme", "-f", folder, "-o", "json", "--allow-private-networks", "--registry", sqlite_url
    )
    assert code == 0 and json.loads(out)["ok"] is True and "not recorded" not in err
    with open_registry(sqlite_url) as registry:
        (stored,) = registry.fetch_resources(kind="MCPServer", name="tools")
        assert stored.status["lastTest"]["ok"] is True and stored.status["tools"]["count"] == 4
        assert registry.fetch_probe_states()[("acme", "tools")].last_test is not None
    code, out, _ = run("get", "mcps", "tools", "-n", "acme", "--registry", sqlite_url)
    assert out.splitlines()[1].split()[:7] == ["tools", "streamable-http", "none", "true", "4", "True", "True"]


def test_demo_applies_the_quickstart_against_live_servers(tmp_path: Path) -> None:
    registry_url = f"sqlite:///{tmp_path / 'demo.db'}"
    code, out, err = run("demo", "--registry", registry_url)
    assert code == 0, err
    assert "Applied: 5 to create" in out
    table = {line.split()[0]: line.split() for line in out.split("get mcps -n demo -o wide")[1].splitlines()[1:]}
    for name, count in (("everything", "4"), ("notes-sse", "4"), ("protected", "2")):
        assert table[name][3:7] == ["true", count, "True", "True"], out
    assert out.count("Connected · ") == 3
    code, out, _ = run("demo", "--registry", registry_url)
    assert code == 0 and "No changes. 5 objects up to date." in out and "Connected · " not in out


def test_a_url_with_an_invalid_host_is_refused_at_validation_and_nothing_is_written(
    tmp_path: Path, sqlite_url: str, mcp_servers: LocalServers
) -> None:
    for bad, said in (
        ("http://999.0.0.1/mcp", "invalid host: '999.0.0.1' is not an IPv4 address"),
        ("http://0177.0.0.1/mcp", "the URL standard reads as 127.0.0.1; write 127.0.0.1"),
    ):
        folder = write(tmp_path / bad.split("/")[2], mcp_servers)
        (folder / "bad.yaml").write_text(
            "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: octal\n"
            f"  namespace: acme\nspec:\n  url: {bad}\n"
        )
        for argv in (["validate"], ["apply", "--allow-private-networks", "--registry", sqlite_url]):
            code, _, err = run(*argv, "-f", str(folder))
            assert code == 1 and "Traceback" not in err, err
            assert err.startswith("error: bad.yaml:7: MCPServer acme/octal: field spec.url: ") and said in err, err
    # A templated URL is checked once rendered, with the same reading of the host.
    folder = write(tmp_path / "templated", mcp_servers)
    (folder / "bad.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mcp-tenant, namespace: acme}\ndata: {host: 0x7f.1}\n---\n"
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: octal\n"
        "  namespace: acme\nspec:\n  url: 'http://{{ tenant.vars.host }}/mcp'\n"
    )
    code, _, err = run("validate", "-f", str(folder))
    assert code == 1 and "bad.yaml:6: MCPServer acme/octal: field spec.url: rendered URL 'http://0x7f.1/mcp'" in err
    assert "reads as 127.0.0.1; write 127.0.0.1" in err
    with open_registry(sqlite_url) as registry:
        assert registry.fetch_state().rows == {} and registry.fetch_resources() == []
