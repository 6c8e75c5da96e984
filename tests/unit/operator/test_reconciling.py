"""The operator's pass around the engine, with the API server faked at our own seam (`ClusterPort`) and a real
SQLite registry: which statuses get written (and how often), Events, pause, errors, periodic passes, deletion.
Batching is in `test_batching.py`, binding exports in `test_exports.py`."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import pytest

from reconciler.engine.inputs import Tenant
from reconciler.engine.statuses import conditions as cond
from reconciler.errors import MissingReference, RetryableError
from reconciler.operator.cluster import SecretsRead
from reconciler.operator.config import OperatorConfig
from reconciler.operator.gathering import index_entry
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler, ObjectView
from reconciler.registry import Registry, RegistryUnavailable
from reconciler.registry.records import UserTokenRecord
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import NOW, conditions, obj, run, server

HOUR = dt.timedelta(hours=1)


def test_a_quick_first_pass_writes_its_result_as_the_first_status_and_a_second_pass_writes_nothing(
    reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink
) -> None:
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    [(_, _, patch)] = cluster.patches
    first = patch["status"]
    assert conditions(first)["Ready"] == ("True", "Available") and conditions(first)["Synced"][0] == "True"
    assert first["observedGeneration"] == 1
    assert sink.reasons("crm") == ["Created"]

    body["status"] = cluster.statuses[("MCPServer", "ns", "crm")]
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 1, "nothing changed: nothing written"
    assert sink.reasons("crm") == ["Created"]


def test_a_slow_first_pass_shows_unknown_while_it_runs_then_its_result(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    """Past `first_status_delay`, a new object says it is being worked on (Ready and Synced Unknown) before the
    pass ends; the result then replaces it."""
    release = asyncio.Event()
    written_while_running: list[int] = []
    original = cluster.fetch_tenant

    async def slow(namespace: str) -> Tenant:
        await release.wait()
        written_while_running.append(len(cluster.patches))
        return await original(namespace)

    cluster.fetch_tenant = slow  # type: ignore[method-assign]
    reconciler = ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=OperatorConfig(probe=False, first_status_delay=0.05),
        clock=lambda: NOW,
    )
    body = server()

    async def scenario() -> None:
        pass_ = asyncio.ensure_future(reconciler.reconcile(body, peers=[body]))
        for _ in range(200):  # bounded: 2 s at most
            if cluster.patches:
                break
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.wait_for(pass_, timeout=30)

    run(scenario())
    assert written_while_running == [1], "Unknown was written while the pass was still waiting"
    first, second = (patch["status"] for _, _, patch in cluster.patches)
    assert conditions(first) == {"Ready": ("Unknown", "Creating"), "Synced": ("Unknown", "Creating")}
    assert conditions(second)["Ready"] == ("True", "Available") and conditions(second)["Synced"][0] == "True"
    assert sink.reasons("crm") == ["Created"]


def test_an_index_entry_reporting_the_status_written_holds_the_operators_copy_and_passes_stay_quiet(
    reconciler: ObjectReconciler, cluster: FakeCluster
) -> None:
    """One status per object in memory: the watch's equal copy gives way to the one the operator wrote."""
    body = server()
    run(reconciler.reconcile(body, peers=[body]))
    written = reconciler._recording.previous(ObjectView.of(body))
    entry = index_entry({**body, "status": copy.deepcopy(cluster.statuses[("MCPServer", "ns", "crm")])})
    other = index_entry({**server("other"), "status": {"observedGeneration": 1}})
    assert entry["status"] == written and entry["status"] is not written

    async def indexed() -> None:  # as the index handler does, on the event loop
        reconciler.track(entry)
        reconciler.track(other)

    run(indexed())
    assert entry["status"] is written
    assert other["status"] == {"observedGeneration": 1}, "another object's status is its own"
    run(reconciler.reconcile(entry, peers=[entry]))
    assert len(cluster.patches) == 1, "nothing changed: nothing written"


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
    assert len(cluster.patches) == 1


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
    assert len(cluster.patches) == 1 and sink.reasons("orphan") == ["MissingReference"], "reported once"


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


def fast(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink, *, first_status_delay: float = 60.0, **kwargs: Any
) -> ObjectReconciler:
    """A reconciler whose resync and back-off run in milliseconds (a first pass writes one status however slow the
    machine, unless `first_status_delay` says otherwise)."""
    config = OperatorConfig(
        resync_interval=0.05,
        min_poll_interval=0.01,
        jitter=0.1,
        retry_base_delay=0.02,
        retry_max_delay=0.16,
        first_status_delay=first_status_delay,
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
    assert len(cluster.patches) == 1, "the first pass's result; every later pass wrote nothing"


def test_a_pass_from_a_watch_event_puts_the_drift_check_an_interval_later(
    registry: Registry, cluster: FakeCluster, sink: RecordingSink
) -> None:
    """A new object's first drift check would come at a random point of its first interval (here 12 ms in, by the
    seed): the pass its creation starts has just checked it, so the next check waits a whole interval."""
    reconciler = ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=OperatorConfig(resync_interval=1.0, min_poll_interval=0.01, jitter=0.1, probe=False),
        clock=lambda: NOW,
        rng=random.Random(31),
    )
    passes = counting_passes(cluster)
    body = server()

    async def created() -> None:
        await reconciler.reconcile(body, peers=[body])

    run_resyncs(reconciler, StaticObjects(body), seconds=0.5, meanwhile=created)
    assert len(passes) == 1, "only the pass the creation started; its drift check is about 1 s away"


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
    run_resyncs(fast(registry, cluster, sink, first_status_delay=0.05), StaticObjects(server()), seconds=0.3)
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


def test_an_authorization_code_server_reports_its_members_tokens_when_they_move(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry
) -> None:
    body = server(auth={"type": "oauthAuthorizationCode", "pkce": "public", "clientId": {"value": "reconciler"}})
    run(reconciler.reconcile(body, peers=[body]))
    status = cluster.statuses[("MCPServer", "ns", "crm")]
    assert status["oauth"]["summary"] == "not connected" and status["oauth"]["membersExpected"] is True
    body["status"] = status
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 1, "the same tally: nothing written"

    tenant = next(iter(registry.fetch_state().tenants))
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(
                tenant=tenant, server="crm", user_id="jordan", secret_ref="ns/jordan#token", expires_at=NOW + HOUR
            )
        )
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == 2
    oauth = cluster.statuses[("MCPServer", "ns", "crm")]["oauth"]
    assert oauth["summary"] == "1 connected, 1 expiring"
    assert oauth["withoutRefreshToken"] == 1 and oauth["needsReauthorization"] == 0


def test_upstream_findings_are_a_condition_written_once_kept_by_passes_and_evented_on_change(
    reconciler: ObjectReconciler, cluster: FakeCluster, sink: RecordingSink
) -> None:
    body = server()
    body["metadata"]["annotations"].update(
        {"mcp.reconciler.dev/upstream-registry": "https://r.example.com", "mcp.reconciler.dev/upstream-name": "a/crm"}
    )
    key = ("MCPServer", "ns", "crm")
    deleted = cond.upstream_deleted("a/crm was deleted from https://r.example.com: withdrawn by its publisher")

    run(reconciler.record_upstream(body, deleted))  # before the first pass: first sight keeps it
    run(reconciler.reconcile(body, peers=[body]))
    assert conditions(cluster.statuses[key])["Upstream"] == ("False", "UpstreamDeleted")
    assert conditions(cluster.statuses[key])["Ready"] == ("True", "Available")
    assert sink.reasons("crm") == ["UpstreamDeleted", "Created"]
    writes = len(cluster.patches)

    body["status"] = cluster.statuses[key]
    run(reconciler.record_upstream(body, deleted))
    run(reconciler.reconcile(body, peers=[body]))
    assert len(cluster.patches) == writes, "the same finding and an idle pass write nothing"

    run(reconciler.record_upstream(body, cond.upstream_active("a/crm is active at https://r.example.com")))
    assert conditions(cluster.statuses[key])["Upstream"] == ("True", "UpstreamActive")
    assert [e.type for _, e in sink.posted if e.reason == "UpstreamActive"] == ["Normal"]

    body["metadata"]["annotations"].pop("mcp.reconciler.dev/upstream-registry")
    body["metadata"]["generation"] = 2
    body["status"] = cluster.statuses[key]
    run(reconciler.reconcile(body, peers=[body]))
    assert "Upstream" not in conditions(cluster.statuses[key]), "no longer imported: the condition goes"


def test_a_per_member_connection_reports_its_connected_members_when_they_move(
    reconciler: ObjectReconciler, cluster: FakeCluster, registry: Registry
) -> None:
    crm = server(auth={"type": "bearer", "secretKeyRef": {"name": "crm", "key": "token"}})
    members = obj(
        "MCPConnection", "crm-members", {"serverRef": "crm", "scope": "platform", "credentialMode": "perMember"}
    )
    shared = obj(
        "MCPConnection",
        "crm-shared",
        {"serverRef": "crm", "scope": "platform", "auth": {"secretKeyRef": {"name": "crm", "key": "token"}}},
    )
    cluster.secrets["crm"] = ({"token": "t"}, True)
    peers = [crm, members, shared]
    run(reconciler.reconcile(crm, peers=peers))
    for body in (members, shared):
        run(reconciler.reconcile(body, peers=peers))
    status = cluster.statuses[("MCPConnection", "ns", "crm-members")]
    assert status["connectedMembers"] == 0, "nobody connected yet: said, not left out"
    assert "connectedMembers" not in cluster.statuses[("MCPConnection", "ns", "crm-shared")]
    members["status"] = status
    patches = len(cluster.patches)
    run(reconciler.reconcile(members, peers=peers))
    assert len(cluster.patches) == patches, "the same count: nothing written"

    tenant = next(iter(registry.fetch_state().tenants))
    with registry.transaction() as tx:
        for user in ("jordan", "sam"):
            tx.insert_user_token(
                UserTokenRecord(
                    tenant=tenant, server="crm", user_id=user, secret_ref=f"ns/{user}#token", connection="crm-members"
                )
            )
    run(reconciler.reconcile(members, peers=peers))

    assert len(cluster.patches) == patches + 1
    assert cluster.statuses[("MCPConnection", "ns", "crm-members")]["connectedMembers"] == 2
