"""The operator under operational stress, on PostgreSQL: restarts, two operators sharing one database, and a
registry that goes away and comes back (status says so, passes back off, deletion waits, all converges)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.kube import KubeHttp, wait_for
from tests.e2e.proxy import TcpProxy
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    Ref,
    condition,
    create,
    get,
    registry_at,
    resource_version,
    server,
    settled_versions,
    sleep_through,
    wait_condition,
    wait_gone,
    wait_ready,
)

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
RESYNC = 2.0

pytestmark = pytest.mark.postgres


def _objects(namespace: str) -> list[dict[str, Any]]:
    version = "mcp.reconciler.dev/v1alpha1"
    return [
        server(namespace, "alpha"),
        server(namespace, "beta", deletionPolicy="Orphan"),
        {
            "apiVersion": version,
            "kind": "MCPConnection",
            "metadata": {"name": "alpha-platform", "namespace": namespace},
            "spec": {"serverRef": "alpha", "scope": "platform", "credentialMode": "perMember"},
        },
        {
            "apiVersion": version,
            "kind": "MCPAccessGrant",
            "metadata": {"name": "everyone", "namespace": namespace},
            "spec": {"target": {"serverRef": "alpha"}, "subjects": [{"kind": "Organization"}]},
        },
        {
            "apiVersion": version,
            "kind": "MCPTemplateBinding",
            "metadata": {"name": "assistant", "namespace": namespace},
            "spec": {"template": "assistant", "servers": [{"serverRef": "alpha"}, {"serverRef": "beta"}]},
        },
    ]


def _create_all(kube: KubeHttp, namespace: str) -> list[tuple[str, str]]:
    created = []
    for manifest in _objects(namespace):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        create(kube, manifest)
        created.append((kind, name))
    for kind, name in created:
        wait_ready(kube, Ref(kind, namespace, name))
    return created


def _owned_rows(url: str) -> list[tuple[str, str, str]]:
    with registry_at(url) as registry:
        rows = registry.fetch_state().rows
    return sorted(key for key, row in rows.items() if row.ownership.manager is not None)


@pytest.mark.timeout(180)
def test_a_restarted_operator_converges_without_duplicates_or_writes(
    kube: KubeHttp, new_namespace: NewNamespace, postgres_schema_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    first = start_operator([namespace], postgres_schema_url)
    created = _create_all(kube, namespace)
    rows = _owned_rows(postgres_schema_url)
    assert len(rows) == len(created)
    settled = settled_versions(kube, [Ref(kind, namespace, name) for kind, name in created])
    versions = {(ref.kind, ref.name): version for ref, version in settled.items()}
    first.stop()

    second = start_operator([namespace], postgres_schema_url)
    sleep_through(2 * RESYNC + 2)
    assert _owned_rows(postgres_schema_url) == rows, "no duplicate rows after a restart"
    for kind, name in created:
        obj = get(kube, Ref(kind, namespace, name))
        assert obj is not None and condition(obj, "Synced")["status"] == "True"
        assert obj["metadata"]["resourceVersion"] == versions[(kind, name)], f"{kind} {name} was written on resume"
    assert second.port is not None


def test_two_operators_on_disjoint_namespaces_share_one_database(
    kube: KubeHttp, new_namespace: NewNamespace, postgres_schema_url: str, start_operator: Start
) -> None:
    east, west = new_namespace("east"), new_namespace("west")
    start_operator([east], postgres_schema_url)
    start_operator([west], postgres_schema_url)
    created_east = _create_all(kube, east)
    created_west = _create_all(kube, west)
    rows = _owned_rows(postgres_schema_url)
    assert len(rows) == len(created_east) + len(created_west)
    assert {tenant for _, tenant, _ in rows} == {east, west}

    refs = [
        Ref(kind, namespace, name)
        for namespace, created in ((east, created_east), (west, created_west))
        for kind, name in created
    ]
    versions = {(ref.namespace, ref.kind, ref.name): version for ref, version in settled_versions(kube, refs).items()}
    sleep_through(3 * RESYNC * 1.1 + 1)
    for (namespace, kind, name), version in versions.items():
        assert resource_version(kube, Ref(kind, namespace, name)) == version, "operators do not fight over rows"
    assert _owned_rows(postgres_schema_url) == rows


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)
    netloc = (host[0] + "@" if len(host) == 2 else "") + f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def registry_proxy(postgres_schema_url: str) -> Iterator[tuple[TcpProxy, str]]:
    parts = urlsplit(postgres_schema_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield proxy, _via(postgres_schema_url, proxy.port)
    proxy.close()


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _failed_passes(port: int) -> float:
    """`mcp_reconciler_reconcile_errors_total` of MCPServers failed for the registry (every object's passes)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as response:
        text = response.read().decode()
    prefix = 'mcp_reconciler_reconcile_errors_total{kind="MCPServer",reason="ReconcileError"} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


@pytest.mark.timeout(180)
def test_an_unreachable_registry_shows_in_status_backs_off_and_recovers(
    kube: KubeHttp, new_namespace: NewNamespace, registry_proxy: tuple[TcpProxy, str], start_operator: Start
) -> None:
    proxy, url = registry_proxy
    namespace = new_namespace()
    operator = start_operator([namespace], url, health_cache_seconds=0.0)
    assert operator.port is not None
    steady = create(kube, server(namespace, "steady"))
    wait_ready(kube, steady)
    status, body = _health(operator.port)
    assert (status, body["healthy"], body["registry"]) == (200, True, "registry reachable")

    proxy.cut()
    waiting = create(kube, server(namespace, "waiting"))
    obj = wait_condition(kube, waiting, type_="Synced", status="False", reason="ReconcileError")
    assert "unavailable" in condition(obj, "Synced")["message"]
    status, body = _health(operator.port)
    assert status == 503 and not body["healthy"]

    # The pass is retried, backing off (0.5 s doubling to 4 s here): a few failed passes, not a storm.
    wait_for(lambda: _failed_passes(operator.port) >= 3, timeout=20, what="the failed pass to be retried")
    before = _failed_passes(operator.port)
    sleep_through(4.0)
    assert _failed_passes(operator.port) - before <= 8, "retries back off"

    kube.delete(steady.path)
    blocked = wait_for(
        lambda: (
            (found := get(kube, steady))
            and "deletion waits for the registry" in condition(found, "Synced").get("message", "")
            and found
        ),
        timeout=15,
        what="the status to say that deletion waits for the registry",
    )
    assert condition(blocked, "Synced")["status"] == "False"
    assert blocked["metadata"]["finalizers"] == ["mcp.reconciler.dev/finalizer"]

    proxy.restore()
    wait_ready(kube, waiting, timeout=30)
    wait_gone(kube, steady, timeout=30)
    assert _health(operator.port)[0] == 200
    with registry_at(url) as registry:
        assert ("servers", namespace, "steady") not in registry.fetch_state().rows
