"""`resolve` and `serve-mcp` through the real command: what an agent invocation gets, and the read-only endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.cli.test_commands import run

EXAMPLES = Path(__file__).parents[3] / "examples"
SCOPED = str(EXAMPLES / "04-scoped-connections")


def test_resolve_prefers_the_most_specific_connection_and_masks_secrets(sqlite_url: str) -> None:
    assert run("apply", "-f", SCOPED, "--no-probe", "--registry", sqlite_url)[0] == 0
    args = ["resolve", "-n", "mentor-ai", "--template", "physics-tutor", "--registry", sqlite_url, "-f", SCOPED]
    code, out, _ = run(*args, "--user", "alice", "--agent", "physics-tutor", "-o", "json")
    servers = {server["name"]: server for server in json.loads(out)["servers"]}
    assert code == 0
    assert servers["google-drive"]["connection"] == "drive-alice" and servers["google-drive"]["scope"] == "user"
    assert servers["google-drive"]["state"] == "ready"
    assert "example-alice-token" not in out and "example-platform-token" not in out
    code, out, _ = run(*args, "--user", "bob", "--agent", "physics-tutor", "-o", "json")
    drive = next(s for s in json.loads(out)["servers"] if s["name"] == "google-drive")
    assert drive["connection"] == "drive-mentor-physics" and drive["scope"] == "agent"
    code, out, _ = run(*args, "--user", "bob", "--agent", "other-tutor", "-o", "json", "--show-secrets")
    drive = next(s for s in json.loads(out)["servers"] if s["name"] == "google-drive")
    assert (
        drive["connection"] == "drive-platform" and drive["headers"]["Authorization"] == "Token example-platform-token"
    )
    code, out, _ = run(*args, "--user", "bob", "-o", "mcp-config")
    assert code == 0 and "google-drive" in json.loads(out)["mcpServers"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _list_tools(url: str, token: str) -> list[str]:
    with anyio.fail_after(30):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as http,
            Client(streamable_http_client(url, http_client=http), read_timeout_seconds=20, cache=None) as client,
        ):
            return sorted(tool.name for tool in (await client.list_tools()).tools)


def test_serve_mcp_requires_its_token_and_lists_read_only_tools(sqlite_url: str) -> None:
    assert run("apply", "-f", SCOPED, "--no-probe", "--registry", sqlite_url)[0] == 0
    token = "a-serve-token-of-enough-length"
    port = _free_port()
    env = {**os.environ, "MCP_RECONCILER_SERVE_TOKEN": token}
    script = Path(sys.executable).parent / "mcp-reconciler"
    process = subprocess.Popen(
        [str(script), "serve-mcp", "--port", str(port), "--registry", sqlite_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx2.post(url, json={}, timeout=2.0)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "serve-mcp did not start"
                time.sleep(0.2)
        assert answer.status_code == 401 and "Bearer" in answer.headers["www-authenticate"]
        tools = anyio.run(_list_tools, url, token)
        assert "resolve_template" in tools and "plan" in tools and "list_servers" in tools
    finally:
        process.terminate()
        _, logs = process.communicate(timeout=20)
    assert token not in logs.decode()


def test_serve_mcp_refuses_to_start_without_a_token(sqlite_url: str) -> None:
    os.environ.pop("MCP_RECONCILER_SERVE_TOKEN", None)
    code, _, err = run("serve-mcp", "--registry", sqlite_url)
    assert code == 1 and "MCP_RECONCILER_SERVE_TOKEN" in err


def test_serve_reads_secrets_from_one_source_only(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_SERVE_TOKEN", "a-platform-token-of-16+")
    code, _, err = run("serve", "--registry", sqlite_url, "--secrets", "kubernetes", "-f", str(tmp_path))
    assert code == 1 and "either --secrets kubernetes or -f/--filename" in err, err


def test_serve_with_kubernetes_secrets_and_no_api_configuration_says_what_to_give(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kubeconfig and no pod service account: refused before listening, naming what to give."""
    monkeypatch.setenv("MCP_RECONCILER_SERVE_TOKEN", "a-platform-token-of-16+")
    missing = tmp_path / "absent.kubeconfig"
    code, _, err = run("serve", "--registry", sqlite_url, "--secrets", "kubernetes", "--kubeconfig", str(missing))
    assert code == 1, err
    assert "no Kubernetes API configuration" in err and "--kubeconfig" in err, err
