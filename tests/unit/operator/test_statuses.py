"""Operator-only statuses (first sight, paused, failed, notes) and the merge patch that writes them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.operator import statuses

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status["conditions"]}


def _ready_status() -> dict[str, Any]:
    return {
        "observedGeneration": 3,
        "registryId": "7",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": "",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-01T10:00:00Z",
            },
            {
                "type": "Synced",
                "status": "True",
                "reason": "ReconcileSuccess",
                "message": "ok",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-01T10:00:00Z",
            },
            {
                "type": "CredentialsValid",
                "status": "True",
                "reason": "CredentialsResolved",
                "message": "resolved",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-01T10:00:00Z",
            },
        ],
    }


def test_first_sight_is_unknown_ready_and_synced() -> None:
    status = statuses.first_sight(generation=1, now=T0)
    found = _conditions(status)
    assert status["observedGeneration"] == 1
    assert {k: (v["status"], v["reason"]) for k, v in found.items()} == {
        "Ready": ("Unknown", "Creating"),
        "Synced": ("Unknown", "Creating"),
    }
    assert all(item["lastTransitionTime"] == "2026-01-01T12:00:00Z" for item in found.values())
    assert not statuses.has_conditions(None)
    assert statuses.has_conditions(status)


def test_paused_keeps_ready_and_other_conditions_with_their_times() -> None:
    status = statuses.paused(_ready_status(), generation=4, now=T1)
    found = _conditions(status)
    assert (found["Synced"]["status"], found["Synced"]["reason"]) == ("False", "ReconcilePaused")
    assert found["Synced"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert found["Ready"]["status"] == "True"
    assert found["Ready"]["lastTransitionTime"] == "2026-01-01T10:00:00Z", "no flip, no new transition time"
    assert found["CredentialsValid"]["status"] == "True"
    assert status["observedGeneration"] == 4 and status["registryId"] == "7"
    assert statuses.paused(status, generation=4, now=T1 + dt.timedelta(hours=1)) == status, "idempotent"


def test_paused_before_the_first_pass() -> None:
    found = _conditions(statuses.paused(None, generation=1, now=T0))
    assert found["Ready"]["status"] == "Unknown"
    assert found["Synced"]["reason"] == "ReconcilePaused"


def test_failed_keeps_a_known_ready() -> None:
    status = statuses.failed(_ready_status(), reason="MissingReference", message="gone", generation=3, now=T1)
    found = _conditions(status)
    assert (found["Synced"]["status"], found["Synced"]["reason"], found["Synced"]["message"]) == (
        "False",
        "MissingReference",
        "gone",
    )
    assert found["Ready"]["status"] == "True"


def test_failed_on_first_sight_is_not_ready_with_the_reason() -> None:
    first = statuses.first_sight(generation=1, now=T0)
    found = _conditions(statuses.failed(first, reason="InvalidSpec", message="bad", generation=1, now=T1))
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "InvalidSpec")


def test_long_messages_are_cut() -> None:
    status = statuses.failed(None, reason="InvalidSpec", message="x" * 10_000, generation=1, now=T0)
    assert len(_conditions(status)["Synced"]["message"]) == statuses.MAX_MESSAGE_LENGTH


def test_unlabelled_secrets_note_goes_into_credentials_valid() -> None:
    status = statuses.with_unlabelled_secrets(_ready_status(), {"b", "a"})
    message = _conditions(status)["CredentialsValid"]["message"]
    assert message.startswith("resolved; Secrets a, b lack the label mcp.reconciler.dev/credential")
    assert statuses.with_unlabelled_secrets(_ready_status(), set()) == _ready_status()
    one = statuses.with_unlabelled_secrets(_ready_status(), {"token"})
    assert "Secret token lacks the label" in _conditions(one)["CredentialsValid"]["message"]


def test_reconcile_request_echo() -> None:
    assert statuses.with_reconcile_request({"a": 1}, "t1") == {"a": 1, "lastHandledReconcileAt": "t1"}
    assert statuses.with_reconcile_request({"a": 1}, None) == {"a": 1}


def test_merge_patch_nulls_what_disappeared_at_every_depth() -> None:
    before = {"registryId": "1", "credentials": {"secretRef": "ns/s#k", "fingerprint": "f1"}, "conditions": [1, 2]}
    after = {"credentials": {"secretRef": "ns/s#k"}, "conditions": [3]}
    assert statuses.merge_patch(before, after) == {
        "status": {"registryId": None, "credentials": {"secretRef": "ns/s#k", "fingerprint": None}, "conditions": [3]}
    }
    assert statuses.merge_patch(None, after) == {"status": after}


def test_compact_drops_empty_strings() -> None:
    assert statuses.compact({"a": "", "b": {"c": "", "d": 0}, "l": [{"m": ""}, "x"]}) == {"b": {"d": 0}, "l": [{}, "x"]}
