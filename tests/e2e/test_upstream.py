"""Upstream lifecycle under the operator: an MCPServer imported from a Registry API (our own `serve` on
127.0.0.1, over a SQLite registry) whose entry was deleted there gets an `UpstreamDeleted` Event, from the
operator's timer, against a real API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import open_registry
from reconciler.runtime import build_serving_app
from tests.e2e.kube import KubeHttp
from tests.e2e.running import RunningOperator
from tests.e2e.support import create, server, wait_event

TOKEN = "e2e-upstream-platform-token"
NAME = "local.mcp-reconciler.acme/docs"
UPSTREAM = """
apiVersion: v1
kind: Namespace
metadata: {name: acme-prod, labels: {mcp.reconciler.dev/tenant: acme}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: docs, namespace: acme-prod}
spec: {url: "https://docs.example.com/mcp"}
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    """A registry that published `docs` and then removed it, served by `serve`'s app; yields its base URL."""
    url = f"sqlite:///{tmp_path / 'upstream.db'}"
    folder = tmp_path / "upstream"
    folder.mkdir()
    with open_registry(url) as registry:
        (folder / "world.yaml").write_text(UPSTREAM)
        reconcile(load_folder(folder), registry, settings=EngineSettings())
        (folder / "world.yaml").write_text(UPSTREAM.split("\n---\n")[0])
        reconcile(load_folder(folder), registry, settings=EngineSettings())
        with ServerLoop() as loop:
            yield loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN))


def test_an_imported_server_deleted_upstream_gets_an_event(
    kube: KubeHttp,
    new_namespace: Callable[..., str],
    sqlite_url: str,
    start_operator: Callable[..., RunningOperator],
    upstream: str,
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, allow_private_networks=True, upstream_interval=1.0, upstream_token=TOKEN)
    annotations = {
        "mcp.reconciler.dev/upstream-registry": upstream,
        "mcp.reconciler.dev/upstream-name": NAME,
        "mcp.reconciler.dev/upstream-version": "1.0.1",
    }

    create(kube, server(namespace, "docs", annotations=annotations))
    create(kube, server(namespace, "plain"))

    event = wait_event(kube, namespace, name="docs", reason="UpstreamDeleted")
    assert event["type"] == "Warning"
    assert event["message"] == f"{NAME} was deleted from {upstream}: The server was removed from the registry."
