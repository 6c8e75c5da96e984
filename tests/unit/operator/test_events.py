"""Events for real changes only: what the pass wrote, and conditions that just flipped; never values."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.engine.planning import Action, FieldChange, Verb
from reconciler.engine.statuses import conditions as cond
from reconciler.operator.events import NORMAL, WARNING, PlannedEvent, action_events, condition_events, plan_events

KEY = ("servers", "acme", "crm")


def _action(verb: Verb, *changes: tuple[str, Any, Any]) -> Action:
    return Action(verb, KEY, None, changes=tuple(FieldChange(path, a, b) for path, a, b in changes))


def _status(**conditions: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    items = []
    for type_, spec in conditions.items():
        status, reason, *message = spec
        items.append({"type": type_, "status": status, "reason": reason, "message": message[0] if message else ""})
    return {"conditions": items}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (_action(Verb.CREATE), [("Created", "registered the servers row acme/crm in the registry")]),
        (_action(Verb.NOOP), []),
        (_action(Verb.CONFLICT), []),  # reported through the Synced condition instead
        (_action(Verb.ADOPT), [("Updated", "adopted the unmanaged servers row acme/crm")]),
        (
            _action(Verb.REPAIR, ("url", "https://evil", "https://good"), ("enabled", False, True)),
            [
                (
                    "DriftRepaired",
                    "the servers row acme/crm was changed outside mcp-reconciler; repaired fields: url, enabled",
                )
            ],
        ),
        (
            _action(Verb.UPDATE, ("auth.secretFingerprint", "f1", "f2")),
            [("Rotated", "credential rotated in place in the servers row acme/crm: auth.secretFingerprint")],
        ),
        (
            _action(Verb.UPDATE, ("url", "a", "b"), ("headers[0].fingerprint", "f1", "f2")),
            [
                ("Updated", "updated the servers row acme/crm: url"),
                ("Rotated", "credential rotated in place in the servers row acme/crm: headers[0].fingerprint"),
            ],
        ),
    ],
)
def test_action_events(action: Action, expected: list[tuple[str, str]]) -> None:
    found = action_events(action)
    assert [(event.reason, event.message) for event in found] == expected
    assert all(event.type == NORMAL for event in found)
    assert not any("evil" in event.message or "good" in event.message for event in found)


def test_many_fields_are_summarised() -> None:
    action = _action(Verb.REPAIR, *((f"f{i}", 1, 2) for i in range(30)))
    assert action_events(action)[0].message.endswith("f19 and 10 more")


def test_failures_are_warned_once_per_reason() -> None:
    ok = _status(Ready=("True", "Available"), Synced=("True", "ReconcileSuccess"))
    missing = _status(Ready=("True", "Available"), Synced=("False", "MissingReference", "MCPServer 'x' does not exist"))
    invalid = _status(Ready=("True", "Available"), Synced=("False", "InvalidSpec", "bad"))
    assert condition_events(ok, missing) == [PlannedEvent(WARNING, "MissingReference", "MCPServer 'x' does not exist")]
    assert condition_events(missing, missing) == [], "not per poll"
    assert condition_events(missing, invalid) == [PlannedEvent(WARNING, "InvalidSpec", "bad")]
    assert condition_events(missing, ok) == []


def test_conflict_and_pause() -> None:
    conflict = _status(Synced=("False", "Conflict", "row is managed by someone else"))
    paused = _status(Synced=("False", "ReconcilePaused"))
    assert condition_events(None, conflict) == [PlannedEvent(WARNING, "Conflict", "row is managed by someone else")]
    assert condition_events(None, paused) == [], "pausing is the user's own doing"


def test_rotation_failures_and_tool_drift() -> None:
    before = _status(CredentialsValid=("True", "CredentialsResolved"), ToolsDrifted=("False", "ToolsUnchanged"))
    after = _status(
        CredentialsValid=("False", "RotationFailed", "new token rejected; keeping the last good one"),
        ToolsDrifted=("True", "ToolsChanged", "added: search"),
    )
    assert condition_events(before, after) == [
        PlannedEvent(WARNING, "RotationFailed", "new token rejected; keeping the last good one"),
        PlannedEvent(WARNING, "ToolsDrifted", "added: search"),
    ]
    assert condition_events(after, after) == []
    risky = _status(ToolsDrifted=("True", "ToolRiskChanged", "risk: readOnlyHint of wipe: false → true"))
    assert condition_events(after, risky) == [
        PlannedEvent(WARNING, "ToolRiskChanged", "risk: readOnlyHint of wipe: false → true")
    ], "high-severity drift keeps its reason, and is heard even right after other drift"
    assert condition_events(risky, risky) == []


def test_plan_events_combines_both() -> None:
    after = _status(Synced=("True", "ReconcileSuccess"))
    assert [e.reason for e in plan_events(_action(Verb.CREATE), before=None, after=after)] == ["Created"]
    assert plan_events(None, before=after, after=after) == []


def _upstream(condition: dict[str, Any] | None) -> dict[str, Any]:
    return {"conditions": [condition] if condition else []}


ACTIVE, DEPRECATED = cond.upstream_active("active"), cond.upstream_deprecated("deprecated: use v2")
DELETED, BACK = cond.upstream_deleted("gone"), cond.upstream_active("back")


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, ACTIVE, []),
        (None, DEPRECATED, [PlannedEvent(WARNING, "UpstreamDeprecated", "deprecated: use v2")]),
        (ACTIVE, DELETED, [PlannedEvent(WARNING, "UpstreamDeleted", "gone")]),
        (DEPRECATED, DELETED, [PlannedEvent(WARNING, "UpstreamDeleted", "gone")]),
        (DELETED, DELETED, []),
        (DELETED, BACK, [PlannedEvent(NORMAL, "UpstreamActive", "back")]),
        (ACTIVE, BACK, []),
    ],
)
def test_upstream_events_follow_the_condition(
    before: dict[str, Any] | None, after: dict[str, Any], expected: list[PlannedEvent]
) -> None:
    assert condition_events(_upstream(before), _upstream(after)) == expected
