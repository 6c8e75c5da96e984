"""The operator's pass around the engine, with the API server faked at our own seam (`ClusterPort`) and a real
SQLite registry: which statuses get written (and how often), Events, pause, errors, batching, deletion."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.inputs import Tenant
from reconciler.errors import MissingReference, RetryableError
from reconciler.operator.cluster import SecretsRead
from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler, ObjectView
from reconciler.registry import Registry, RegistryUnavailable, open_registry
from tests.fixtures.operator_seams import FakeCluster, RecordingSink

V = "mcp.reconciler.dev/v1alpha1"
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield opened
    opened.close()


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def reconciler(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> ObjectReconciler:
    config = OperatorConfig(retry_base_delay=2.0, retry_max_delay=60.0, probe=False)
    return ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=config,
        rng=random.Random(0),
        clock=lambda: NOW,
    )


def obj(
    kind: str, name: str, spec: dict[str, Any], *, status: dict[str, Any] | None = None, **annotations: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": V,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def server(name: str = "crm", **spec: Any) -> dict[str, Any]:
    return obj("MCPServer", name, {"url": f"https://{name}.example.com/mcp", **spec})


def conditions(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["type"]: (item["status"], item["reason"]) for item in status["conditions"]}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_first_pass_writes_unknown_then_the_result_and_a_second_pass_writes_nothing(
    reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink
) -> None:
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    first, second = (patch["status"] for _, _, patch in cluster.patches)
    assert conditions(first) == {"Ready": ("Unknown", "Creating"), "Synced": ("Unknown", "Creating")}
    assert conditions(second)["Ready"] == ("True", "Available") and conditions(second)["Synced"][0] == "True"
    assert sink.reasons("crm") == ["Created"]

    body["status"] = cluster.statuses[("MCPServer", "ns", "crm")]
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 2, "nothing changed: nothing written"
    assert sink.reasons("crm") == ["Created"]


def test_a_restarted_operator_writes_nothing_for_a_converged_object(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink, reconciler: ObjectReconciler
) -> None:
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    body["status"] = cluster.statuses[("MCPServer", "ns", "crm")]
    fresh = ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=OperatorConfig(probe=False),
        clock=lambda: NOW + dt.timedelta(hours=1),
    )
    run(fresh.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 2


def test_pause_writes_the_paused_condition_once_and_leaves_the_registry_alone(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry
) -> None:
    body = server(**{})
    body["metadata"]["annotations"]["mcp.reconciler.dev/paused"] = "true"
    run(reconciler.reconcile(body, peers=[body]))
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 1
    assert conditions(cluster.statuses[("MCPServer", "ns", "crm")])["Synced"] == ("False", "ReconcilePaused")
    assert registry.fetch_state().rows == {}


def test_terminal_errors_are_recorded_and_raised(
    reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink
) -> None:
    connection = obj("MCPConnection", "orphan", {"serverRef": "missing", "scope": "platform"})
    with pytest.raises(MissingReference):
        run(reconciler.reconcile(connection, peers=[connection]))
    status = cluster.statuses[("MCPConnection", "ns", "orphan")]
    assert conditions(status)["Synced"] == ("False", "MissingReference")
    assert sink.reasons("orphan") == ["MissingReference"]
    connection["status"] = status
    with pytest.raises(MissingReference):
        run(reconciler.reconcile(connection, peers=[connection]))
    assert len(cluster.patches) == 2 and sink.reasons("orphan") == ["MissingReference"], "reported once"


def test_transient_errors_are_recorded_and_raised(reconciler: ObjectReconciler, cluster: FakeCluster) -> None:
    cluster.unavailable = True
    body = server(auth={"type": "bearer", "secretKeyRef": {"name": "token", "key": "t"}})
    with pytest.raises(RetryableError):
        run(reconciler.reconcile(body, peers=[body]))
    status = cluster.statuses[("MCPServer", "ns", "crm")]
    assert conditions(status)["Synced"] == ("False", "ReconcileError")
    assert "HTTP 503" in next(c["message"] for c in status["conditions"] if c["type"] == "Synced")


def test_retry_delays_grow_exponentially_to_a_cap(reconciler: ObjectReconciler) -> None:
    assert [reconciler.retry_delay(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert reconciler.retry_delay(10_000) == 60


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


def test_reconcile_requests_are_echoed(reconciler: ObjectReconciler, cluster: FakeCluster) -> None:
    body = server()
    body["metadata"]["annotations"]["mcp.reconciler.dev/reconcile-requested-at"] = "now-please"
    run(reconciler.reconcile(body, peers=[body]))
    assert cluster.statuses[("MCPServer", "ns", "crm")]["lastHandledReconcileAt"] == "now-please"


def test_remove_honours_the_policy_and_tolerates_missing_rows(reconciler: ObjectReconciler, registry: Registry) -> None:
    keep = server("keep", deletionPolicy="Orphan")
    drop = server("drop")
    run(reconciler.reconcile(keep, peers=[keep]))
    run(reconciler.reconcile(drop, peers=[drop]))
    run(reconciler.remove(keep))
    run(reconciler.remove(drop))
    run(reconciler.remove(drop))  # already gone: still fine
    rows = registry.fetch_state().rows
    assert list(rows) == [("servers", "ns", "keep")] and rows[("servers", "ns", "keep")].ownership.manager is None


def test_remove_with_an_unreachable_registry_says_so(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = server()
    run(reconciler.reconcile(body, peers=[body]))

    def unavailable(**_: Any) -> None:
        raise RegistryUnavailable("registry sqlite:///x is unavailable: disk on fire")

    monkeypatch.setattr(registry, "fetch_state", unavailable)
    with pytest.raises(RegistryUnavailable):
        run(reconciler.remove(body))
    synced = next(c for c in cluster.statuses[("MCPServer", "ns", "crm")]["conditions"] if c["type"] == "Synced")
    assert synced["status"] == "False" and synced["message"].startswith("deletion waits for the registry")


class StaticObjects:
    """kopf's indexes in miniature: the bodies the periodic passes look up, editable by the test."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.bodies = {body["metadata"]["uid"]: body for body in bodies}

    def body(self, key: str) -> Mapping[str, Any] | None:
        return self.bodies.get(key)

    def peers(self, namespace: str) -> list[Mapping[str, Any]]:
        return [body for body in self.bodies.values() if body["metadata"]["namespace"] == namespace]


class ClosedGate:
    """Another instance is the active peer."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def allows(self, namespace: str) -> bool:
        self.asked.append(namespace)
        return False


def fast(registry: Registry, cluster: FakeCluster, sink: RecordingSink, **kwargs: Any) -> ObjectReconciler:
    """A reconciler whose resync and back-off run in milliseconds."""
    config = OperatorConfig(
        resync_interval=0.05, min_poll_interval=0.01, jitter=0.1, retry_base_delay=0.02, retry_max_delay=0.16
    )
    return ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=config,
        clock=lambda: NOW,
        **kwargs,
    )


def run_resyncs(
    reconciler: ObjectReconciler,
    objects: StaticObjects,
    *,
    seconds: float,
    until: Callable[[], bool] | None = None,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Track `objects` and run the periodic passes for `seconds`, or until `until()` holds (checked every 10 ms,
    `seconds` at most); `meanwhile` runs alongside. Then close the reconciler, as the operator does on exit."""

    async def scenario() -> None:
        for body in objects.bodies.values():
            reconciler.track(body)
        reconciler.start_resyncs(objects)
        if meanwhile is not None:
            await meanwhile()
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline and not (until is not None and until()):
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reconciler.close(), timeout=2)

    run(scenario())


def counting_passes(cluster: FakeCluster) -> list[float]:
    passes: list[float] = []
    original = cluster.fetch_tenant

    async def counting(namespace: str) -> Tenant:
        passes.append(asyncio.get_running_loop().time())
        return await original(namespace)

    cluster.fetch_tenant = counting  # type: ignore[method-assign]
    return passes


def test_resync_passes_repeat_without_writing(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> None:
    passes = counting_passes(cluster)
    run_resyncs(fast(registry, cluster, sink), StaticObjects(server()), seconds=10, until=lambda: len(passes) >= 5)
    assert len(passes) >= 5
    assert len(cluster.patches) == 2, "first sight and the result; every later pass wrote nothing"


def test_resync_backs_off_on_transient_errors(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> None:
    attempts: list[float] = []
    cluster.unavailable = True
    original = cluster.fetch_secrets

    async def counting(namespace: str, names: Collection[str]) -> SecretsRead:
        attempts.append(asyncio.get_running_loop().time())
        return await original(namespace, names)

    cluster.fetch_secrets = counting  # type: ignore[method-assign]
    body = server(auth={"type": "bearer", "secretKeyRef": {"name": "token", "key": "t"}})
    run_resyncs(fast(registry, cluster, sink), StaticObjects(body), seconds=0.8)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(gaps) >= 4
    assert gaps[3] > 2.5 * gaps[0], f"back-off grows: {gaps}"


def test_closing_abandons_a_pass_in_flight_at_once(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    never = asyncio.Event()
    original = cluster.fetch_tenant

    async def hanging(namespace: str) -> Tenant:
        await never.wait()
        return await original(namespace)

    cluster.fetch_tenant = hanging  # type: ignore[method-assign]
    run_resyncs(fast(registry, cluster, sink), StaticObjects(server()), seconds=0.3)
    assert len(cluster.patches) == 1, "only the first-sight status; the abandoned pass wrote nothing else"


def test_a_paused_peer_runs_no_periodic_passes(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> None:
    passes = counting_passes(cluster)
    gate = ClosedGate()
    run_resyncs(fast(registry, cluster, sink, gate=gate), StaticObjects(server()), seconds=0.5)
    assert len(gate.asked) >= 3, "the gate is asked again at the object's pace"
    assert passes == [] and cluster.patches == []


def test_objects_gone_from_the_index_or_being_deleted_are_dropped(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    passes = counting_passes(cluster)
    deleting = server("old")
    deleting["metadata"]["deletionTimestamp"] = "2026-03-01T09:00:00Z"
    objects = StaticObjects(server("gone"), deleting)
    reconciler = fast(registry, cluster, sink)

    async def remove_one() -> None:
        del objects.bodies["uid-gone"]

    run_resyncs(reconciler, objects, seconds=0.3, meanwhile=remove_one)
    assert passes == []
    assert cluster.patches == []


def test_a_periodic_pass_queued_behind_the_finalizer_does_not_recreate_rows(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    reconciler = fast(registry, cluster, sink)
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    assert list(registry.fetch_state().rows) == [("servers", "ns", "crm")]

    async def scenario() -> None:
        async with reconciler._lock(ObjectView.of(body)):
            finalizer = asyncio.create_task(reconciler.remove(body))
            await asyncio.sleep(0.01)  # the finalizer is first in line for the object's lock
            reconciler.track(body)
            reconciler.start_resyncs(StaticObjects(body))
            await asyncio.sleep(0.2)  # the periodic pass has come due and queues behind it
            assert reconciler._resyncs.in_flight == 1
        await finalizer
        await asyncio.sleep(0.2)
        await reconciler.close()

    run(scenario())
    assert registry.fetch_state().rows == {}


def test_secret_users_are_reconciled(reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink) -> None:
    cluster.secrets["token"] = ({"t": "one"}, True)
    auth = {"type": "bearer", "secretKeyRef": {"name": "token", "key": "t"}}
    user, bystander = server("user", auth=auth), server("bystander")
    run(reconciler.reconcile(user, peers=[user, bystander]))
    run(reconciler.reconcile(bystander, peers=[user, bystander]))
    user["status"] = cluster.statuses[("MCPServer", "ns", "user")]
    cluster.secrets["token"] = ({"t": "two"}, True)
    before = len(cluster.patches)
    run(reconciler.reconcile_users([("MCPServer", "user")], namespace="ns", peers=[user, bystander]))
    assert [name for _, name, _ in cluster.patches[before:]] == ["user"]
    assert sink.reasons("user")[-1] == "Rotated"


def test_a_pass_with_a_body_from_before_the_deletion_changes_nothing(
    reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink, registry: Registry
) -> None:
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    run(reconciler.remove(body))
    patches, posted = len(cluster.patches), len(sink.posted)
    run(reconciler.reconcile(body, peers=[body]))  # e.g. a kopf update or a Secret's change, queued behind it
    assert registry.fetch_state().rows == {}
    assert (len(cluster.patches), len(sink.posted)) == (patches, posted)


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
