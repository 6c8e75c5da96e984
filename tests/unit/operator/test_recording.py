"""What a pass leaves behind (`recording.StatusRecorder`), with the API server and the Event sink faked at our own
seams: status is patched only when it changed, the status written is fresher than a stale body, failures say why
in status and in the metrics, and forgetting an object drops what was remembered of it."""

from __future__ import annotations

from reconciler.errors import OwnershipConflict, RetryableError
from reconciler.operator import statuses
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.objects import ObjectView
from reconciler.operator.recording import StatusRecorder
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import NOW, conditions, run, server


def recorder(cluster: FakeCluster, sink: RecordingSink, metrics: OperatorMetrics) -> StatusRecorder:
    return StatusRecorder(cluster=cluster, events=sink, metrics=metrics, clock=lambda: NOW)


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_status_is_patched_once_and_remembered_over_a_stale_body(cluster: FakeCluster, sink: RecordingSink) -> None:
    metrics = OperatorMetrics()
    recording = recorder(cluster, sink, metrics)
    view = ObjectView.of(server())
    first = statuses.first_sight(generation=1, now=NOW)
    assert recording.previous(view) is None
    run(recording.record(view, None, first))
    remembered = recording.previous(view)
    assert remembered is not None and conditions(remembered)["Ready"] == ("Unknown", "Creating")
    run(recording.record(view, remembered, dict(remembered)))
    assert len(cluster.patches) == 1, "the same status again: nothing written"
    assert sample(metrics, "mcp_reconciler_status_writes_total", kind="MCPServer") == 1

    recording.forget(view)
    assert recording.previous(view) is None, "forgotten: the body's own status again"


def test_a_failure_is_recorded_in_status_and_counted(cluster: FakeCluster, sink: RecordingSink) -> None:
    metrics = OperatorMetrics()
    recording = recorder(cluster, sink, metrics)
    view = ObjectView.of(server())
    run(recording.record_failure(view, None, OwnershipConflict("row servers/ns/crm is managed by someone else")))
    status = cluster.statuses[("MCPServer", "ns", "crm")]
    assert conditions(status)["Synced"] == ("False", "Conflict")
    assert sink.reasons("crm") == ["Conflict"]
    assert sample(metrics, "mcp_reconciler_reconciles_total", kind="MCPServer", outcome="error") == 1
    assert sample(metrics, "mcp_reconciler_reconcile_errors_total", kind="MCPServer", reason="Conflict") == 1


def test_a_finalizer_waiting_for_the_registry_says_so(cluster: FakeCluster, sink: RecordingSink) -> None:
    metrics = OperatorMetrics()
    recording = recorder(cluster, sink, metrics)
    view = ObjectView.of(server())
    run(recording.record_removal_failure(view, RetryableError("registry unavailable")))
    synced = next(c for c in cluster.statuses[("MCPServer", "ns", "crm")]["conditions"] if c["type"] == "Synced")
    assert synced["status"] == "False" and synced["message"] == "deletion waits for the registry: registry unavailable"
    assert sample(metrics, "mcp_reconciler_reconcile_errors_total", kind="MCPServer", reason="ReconcileError") == 1
    assert sample(metrics, "mcp_reconciler_reconciles_total", kind="MCPServer", outcome="error") == 0


def test_member_token_gauges_follow_status_oauth_even_without_a_write(
    cluster: FakeCluster, sink: RecordingSink
) -> None:
    metrics = OperatorMetrics()
    recording = recorder(cluster, sink, metrics)
    view = ObjectView.of(server())
    oauth = {
        "connected": 3,
        "expiringWithin24h": 1,
        "needsReauthorization": 1,
        "withoutRefreshToken": 2,
        "membersExpected": True,
        "summary": "3 connected, 1 expiring, 1 reauth",
    }
    status = {**statuses.first_sight(generation=1, now=NOW), "oauth": oauth}
    # The status the object already has (an operator just restarted): nothing is written, the gauges are set.
    run(recording.record(view, status, dict(status)))
    assert cluster.patches == []

    def gauges() -> dict[str, float]:
        states = ("connected", "expiring_24h", "needs_reauthorization", "without_refresh_token")
        return {
            state: sample(metrics, f"mcp_reconciler_member_tokens_{state}", namespace="ns", server="crm")
            for state in states
        }

    assert gauges() == {"connected": 3, "expiring_24h": 1, "needs_reauthorization": 1, "without_refresh_token": 2}
    assert b'mcp_reconciler_member_tokens_connected{namespace="ns",server="crm"} 3.0' in metrics.render()

    run(recording.record(view, status, {**status, "oauth": {**oauth, "connected": 4, "needsReauthorization": 0}}))
    assert gauges()["connected"] == 4 and gauges()["needs_reauthorization"] == 0

    plain = statuses.first_sight(generation=1, now=NOW)
    run(recording.record(view, status, plain))
    assert b'server="crm"' not in metrics.render(), "a status without oauth drops the server's series"
    run(recording.record(view, plain, status))
    assert gauges()["connected"] == 3

    recording.forget(view)
    assert b'server="crm"' not in metrics.render()
