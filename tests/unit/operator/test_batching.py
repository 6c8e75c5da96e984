"""The engine runs of the operator's passes (`batching.EngineBatches`, driven through `ObjectReconciler`): one
broken object in a namespace's batch never fails its neighbours, and what a pass gathers (Secret values, the labels
they lack) reaches the engine and the status. Real SQLite registry; the API server faked at our own seam."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import conditions, obj, run, server


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


def _in(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["namespace"] = namespace
    body["metadata"]["uid"] = f"uid-{namespace}-{body['metadata']['name']}"
    return body


def _one_lane(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> ObjectReconciler:
    return ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=OperatorConfig(probe=False, registry_threads=1),
    )


def _all_at_once(reconciler: ObjectReconciler, peers: dict[str, list[dict[str, Any]]]) -> list[Any]:
    async def passes() -> list[Any]:
        every = [(body, namespace) for namespace, bodies in peers.items() for body in bodies]
        return await asyncio.gather(
            *(reconciler.reconcile(body, peers=peers[namespace]) for body, namespace in every), return_exceptions=True
        )

    return cast(list[Any], run(passes()))


def test_one_engine_run_spans_namespaces(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> None:
    """A fleet spread over many namespaces still shares transactions: batches per namespace were batches of one
    object, each paying its own transactions and its own read of the tenant's rows."""
    spaces = [f"team-{index}" for index in range(4)]
    peers = {namespace: [_in(namespace, server(f"s{i}")) for i in range(3)] for namespace in spaces}
    transactions = 0
    opened = registry.transaction

    @contextlib.contextmanager
    def counted() -> Iterator[Any]:
        nonlocal transactions
        transactions += 1
        with opened() as transaction:
            yield transaction

    registry.transaction = counted  # type: ignore[method-assign]
    outcomes = _all_at_once(_one_lane(registry, cluster, sink), peers)
    assert outcomes == [None] * 12
    assert {key[1] for key in registry.fetch_state().rows} == set(spaces)
    assert transactions < len(spaces), "the rows of all four namespaces were written in shared transactions"


def test_a_broken_object_sends_only_its_own_namespace_object_by_object(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    spaces = [f"team-{index}" for index in range(4)]
    peers = {namespace: [_in(namespace, server(f"s{i}")) for i in range(3)] for namespace in spaces}
    peers["team-0"].append(_in("team-0", obj("MCPConnection", "broken", {"serverRef": "nope", "scope": "platform"})))
    outcomes = _all_at_once(_one_lane(registry, cluster, sink), peers)
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 3 + ["MissingReference"] + ["NoneType"] * 9
    assert len(registry.fetch_state().rows) == 12


def test_a_key_id_published_from_another_namespace_of_the_tenant_is_a_conflict(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry
) -> None:
    """Two namespaces labelled with one tenant share its JWKS, but each pass plans only its own namespace's objects:
    the incumbent's key must still be seen, from the registry."""
    cluster.tenant_label = "acme"
    for name in ("crm-key", "billing-key"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        cluster.secrets[name] = ({"pem": pem}, True)

    def signing(namespace: str, name: str) -> dict[str, Any]:
        assertion = {"keyId": "platform-key", "privateKey": {"name": f"{name}-key", "key": "pem"}}
        return _in(namespace, server(name, auth={"type": "oauthClientCredentials", "clientAssertion": assertion}))

    incumbent, newcomer = signing("team-a", "crm"), signing("team-b", "billing")
    run(reconciler.reconcile(incumbent, peers=[incumbent]))
    run(reconciler.reconcile(newcomer, peers=[newcomer]))

    assert conditions(cluster.statuses[("MCPServer", "team-a", "crm")])["Synced"] == ("True", "ReconcileSuccess")
    refused = cluster.statuses[("MCPServer", "team-b", "billing")]
    assert conditions(refused)["Synced"] == ("False", "Conflict")
    assert "keyId 'platform-key' already names another key in tenant acme's JWKS (server crm)" in str(refused)
    assert [name for _, _, name in registry.fetch_state().rows] == ["crm"]
