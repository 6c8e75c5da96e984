"""Upstream lifecycle under the operator: an MCPServer imported from a Registry API (our own `serve` on
127.0.0.1, over a SQLite registry) whose entry was deleted there gets the `Upstream` condition `UpstreamDeleted`
and its Event, from the operator's timer, against a real API server; the timer's next ticks write nothing; when
the entry is published again the condition turns back to `UpstreamActive`, and when it is disabled there (published
`deprecated`) to `UpstreamDeprecated`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import open_registry
from reconciler.runtime import build_serving_app
from tests.e2e.kube import KubeHttp
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    condition,
    create,
    events,
    get,
    resource_version,
    server,
    settled_versions,
    sleep_through,
    wait_condition,
    wait_event,
)

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


@dataclass(frozen=True)
class Upstream:
    url: str
    republish: Callable[[], None]
    disable: Callable[[], None]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    """A registry that published `docs` and then removed it, served by `serve`'s app, and a way to publish it
    again."""
    url = f"sqlite:///{tmp_path / 'upstream.db'}"
    folder = tmp_path / "upstream"
    folder.mkdir()
    with open_registry(url) as registry:

        def publish(world: str) -> None:
            (folder / "world.yaml").write_text(world)
            reconcile(load_folder(folder), registry, settings=EngineSettings())

        publish(UPSTREAM)
        publish(UPSTREAM.split("\n---\n")[0])
        with ServerLoop() as loop:
            base = loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN))
            yield Upstream(
                base, lambda: publish(UPSTREAM), lambda: publish(UPSTREAM.replace('"}', '", enabled: false}'))
            )


def test_an_imported_server_deleted_upstream_reports_it_in_status_until_it_is_back(
    kube: KubeHttp,
    new_namespace: Callable[..., str],
    sqlite_url: str,
    start_operator: Callable[..., RunningOperator],
    upstream: Upstream,
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, allow_private_networks=True, upstream_interval=1.0, upstream_token=TOKEN)
    annotations = {
        "mcp.reconciler.dev/upstream-registry": upstream.url,
        "mcp.reconciler.dev/upstream-name": NAME,
        "mcp.reconciler.dev/upstream-version": "1.0.1",
    }

    docs = create(kube, server(namespace, "docs", annotations=annotations))
    plain = create(kube, server(namespace, "plain"))

    message = f"{NAME} was deleted from {upstream.url}: The server was removed from the registry."
    event = wait_event(kube, namespace, name="docs", reason="UpstreamDeleted")
    assert event["type"] == "Warning"
    assert event["message"] == message
    deleted = wait_condition(kube, docs, type_="Upstream", status="False", reason="UpstreamDeleted")
    assert condition(deleted, "Upstream")["message"] == message
    assert condition(get(kube, plain), "Upstream") == {}

    # The timer ticks every second: with nothing new upstream, no status write and no second Event.
    versions = settled_versions(kube, [docs, plain])
    sleep_through(3.0)
    assert resource_version(kube, docs) == versions[docs]
    assert len(events(kube, namespace, name="docs", reason="UpstreamDeleted")) == 1
    assert condition(get(kube, docs), "Ready")["status"] == "True", "a pass does not drop the condition"
    assert condition(get(kube, docs), "Upstream")["reason"] == "UpstreamDeleted"

    upstream.republish()
    back = wait_condition(kube, docs, type_="Upstream", status="True", reason="UpstreamActive")
    assert condition(back, "Upstream")["message"].startswith(f"{NAME} is active at {upstream.url}")
    assert wait_event(kube, namespace, name="docs", reason="UpstreamActive")["type"] == "Normal"

    upstream.disable()  # published as deprecated, with why
    deprecated = wait_condition(kube, docs, type_="Upstream", status="False", reason="UpstreamDeprecated")
    assert condition(deprecated, "Upstream")["message"] == (
        f"{NAME} is deprecated at {upstream.url}: Disabled in acme-prod: registered but not offered to agents."
    )
    assert wait_event(kube, namespace, name="docs", reason="UpstreamDeprecated")["type"] == "Warning"
    seen = json.dumps([get(kube, docs), events(kube, namespace, name="docs")])
    assert TOKEN not in seen, "the registry's bearer token never reaches status or Events"
