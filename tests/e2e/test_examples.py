"""Every folder of `examples/` applied to a real API server reaches Ready/Synced, on SQLite and PostgreSQL,
and `kubectl get mcps` (the server-side Table kubectl prints) shows the real values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.kube import TABLE_ACCEPT, KubeHttp, custom_path, object_path, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    READY_TIMEOUT,
    Ref,
    example_folders,
    example_manifests,
    get,
    is_ready,
    registry_at,
    wait_gone,
)

OWN_GROUP = "mcp.reconciler.dev/v1alpha1"


def _apply_examples(kube: KubeHttp) -> tuple[list[dict[str, Any]], list[str]]:
    documents = [doc for folder in example_folders() for doc in example_manifests(folder)]
    documents.sort(key=lambda doc: {"Namespace": 0, "ConfigMap": 1, "Secret": 1}.get(doc["kind"], 2))
    for doc in documents:
        kube.apply(doc)
    own = [doc for doc in documents if doc["apiVersion"] == OWN_GROUP]
    namespaces = sorted({doc["metadata"]["namespace"] for doc in own})
    return own, namespaces


def _delete_all(kube: KubeHttp, own: list[dict[str, Any]]) -> None:
    for doc in own:
        kube.delete(object_path(doc))
    for doc in own:
        wait_gone(kube, Ref(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]))


@pytest.mark.timeout(240)
def test_every_example_reaches_ready_and_synced(
    kube: KubeHttp, registry_url: str, start_operator: Callable[..., RunningOperator]
) -> None:
    own, namespaces = _apply_examples(kube)
    start_operator(namespaces, registry_url)
    try:

        def not_ready(*, with_conditions: bool = False) -> list[str]:
            waiting = []
            for doc in own:
                obj = get(kube, Ref(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]))
                if not is_ready(obj):
                    said = f" {((obj or {}).get('status') or {}).get('conditions')}" if with_conditions else ""
                    waiting.append(f"{doc['kind']} {doc['metadata']['namespace']}/{doc['metadata']['name']}{said}")
            return waiting

        try:
            wait_for(lambda: not not_ready(), timeout=READY_TIMEOUT * 2, what="every example object to be Ready")
        except AssertionError as error:
            raise AssertionError(f"{error}; still waiting: {not_ready(with_conditions=True)}") from error
        with registry_at(registry_url) as registry:
            rows = registry.fetch_state().rows
        owned = [key for key, row in rows.items() if row.ownership.manager == "mcp-reconciler"]
        assert len(owned) == len(own), "one registry row per object, no more, no less"

        if registry_url.startswith("sqlite"):
            _check_printed_table(kube)
    finally:
        _delete_all(kube, own)


def _check_printed_table(kube: KubeHttp) -> None:
    """What `kubectl get mcps -n demo` prints: the server-side Table from the CRD's printer columns."""
    table = kube.get(custom_path("demo", "mcpservers"), accept=TABLE_ACCEPT)
    columns = [column["name"] for column in table["columnDefinitions"]]
    assert columns[:8] == ["Name", "Transport", "Auth", "Enabled", "Tools", "Ready", "Synced", "Age"]
    rows = {row["cells"][0]: dict(zip(columns, row["cells"], strict=True)) for row in table["rows"]}
    assert set(rows) == {"everything", "notes-sse", "protected"}
    protected = rows["protected"]
    assert protected["Transport"] == "streamable-http"
    assert protected["Auth"] == "bearer"
    assert protected["Ready"] == "True"
    assert protected["Synced"] == "True"
    assert rows["notes-sse"]["Transport"] == "sse"
    # `everything` leaves auth out and no server sets `enabled`: the columns show the values in effect.
    assert (rows["everything"]["Auth"], [row["Enabled"] for row in rows.values()]) == ("none", [True] * 3)
    assert protected["Reason"] == "Available"
    obj = get(kube, Ref("MCPServer", "demo", "protected"))
    assert obj is not None and obj["status"]["registryId"], "the registry id is published in status"
    assert kube.get(Ref("MCPServer", "demo", "protected").path)["status"]["credentials"]["secretRef"] == (
        "demo/protected-mcp-token#token"
    )
