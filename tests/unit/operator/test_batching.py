"""The engine runs of the operator's passes (`batching.NamespaceBatches`, driven through `ObjectReconciler`): one
broken object in a namespace's batch never fails its neighbours, and what a pass gathers (Secret values, the labels
they lack) reaches the engine and the status. Real SQLite registry; the API server faked at our own seam."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import obj, run, server


def test_a_batch_with_one_broken_object_still_reconciles_the_others(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry
) -> None:
    good = [server(f"s{i}") for i in range(5)]
    broken = obj("MCPConnection", "broken", {"serverRef": "nope", "scope": "platform"})
    peers = [*good, broken]

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(reconciler.reconcile(b, peers=peers) for b in peers), return_exceptions=True)

    outcomes = run(all_at_once())
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 5 + ["MissingReference"]
    assert len(registry.fetch_state().rows) == 5


def test_secrets_are_fingerprinted_and_unlabelled_ones_noted(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry, sink: RecordingSink
) -> None:
    cluster.secrets["token"] = ({"t": "canary-one"}, False)
    body = server(auth={"type": "bearer", "secretKeyRef": {"name": "token", "key": "t"}})
    run(reconciler.reconcile(body, peers=[body]))
    status = cluster.statuses[("MCPServer", "ns", "crm")]
    credentials = next(c for c in status["conditions"] if c["type"] == "CredentialsValid")
    assert "Secret token lacks the label mcp.reconciler.dev/credential" in credentials["message"]
    fingerprint = status["credentials"]["fingerprint"]

    cluster.secrets["token"] = ({"t": "canary-two"}, True)
    body["status"] = status
    run(reconciler.reconcile(body, peers=[body]))
    status = cluster.statuses[("MCPServer", "ns", "crm")]
    assert status["credentials"]["fingerprint"] != fingerprint
    assert "lacks the label" not in next(c for c in status["conditions"] if c["type"] == "CredentialsValid")["message"]
    assert sink.reasons("crm") == ["Created", "Rotated"]
    assert "canary" not in str(cluster.patches) + str(sink.posted)
