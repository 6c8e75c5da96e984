"""A binding's exported ConfigMap (`exports.BindingExports`, driven through `ObjectReconciler`): the debounced
refresh never outlives the binding. Real SQLite registry; the API server faked at our own seam."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import NOW, obj, run, server


def exporting(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> ObjectReconciler:
    config = OperatorConfig(probe=False, export_debounce=0.05)
    return ObjectReconciler(
        registry=registry, cluster=cluster, events=sink, metrics=OperatorMetrics(), config=config, clock=lambda: NOW
    )


def binding_world(config_map: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    wiki = server("wiki")
    grant = obj("MCPAccessGrant", "org-wiki", {"target": {"serverRef": "wiki"}, "subjects": [{"kind": "Organization"}]})
    spec = {
        "template": "support-agent",
        "servers": [{"serverRef": "wiki"}],
        "export": {"configMap": {"name": config_map}},
    }
    binding = obj("MCPTemplateBinding", "support", spec)
    return binding, [wiki, grant, binding]


@pytest.mark.parametrize("theirs", [False, True], ids=["owned", "conflict"])
def test_an_export_refresh_landing_after_the_binding_is_deleted_writes_and_posts_nothing(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink, theirs: bool
) -> None:
    """The debounced refresh a server's change schedules holds the binding's body from before its wait: it must not
    re-create the ConfigMap the finalizer deleted, nor post the binding's Conflict a second time."""
    if theirs:
        owner = {"uid": "someone-else"}
        cluster.config_maps[("ns", "taken")] = {"metadata": {"ownerReferences": [owner]}, "data": {"k": "theirs"}}
    reconciler = exporting(registry, cluster, sink)
    binding, peers = binding_world("taken")

    async def scenario() -> None:
        for body in peers:
            await reconciler.reconcile(body, peers=peers)
        assert sink.reasons("support") == (["Conflict", "Created"] if theirs else ["Exported", "Created"])
        await reconciler.remove(binding)
        # A server's change scheduled the namespace's refresh with the bodies it saw before the deletion; the
        # refresh lands after the binding's finalizer.
        reconciler._exports.schedule("ns", peers)
        await asyncio.sleep(0.3)
        await reconciler.close()

    run(scenario())
    assert sink.reasons("support") == (["Conflict", "Created"] if theirs else ["Exported", "Created"])
    assert cluster.config_maps.get(("ns", "taken"), {}).get("data") == ({"k": "theirs"} if theirs else None)
    assert not [row for row in registry.fetch_state().rows if row[0] == "template_bindings"]
