"""Which Kubernetes Events a pass emits, and the seam that posts them.

`plan_events` is pure: from the planned action and the status before and after a pass it derives Events for
real changes only (Created, Updated, DriftRepaired, Rotated, RotationFailed, ToolsDrifted, ToolRiskChanged,
Conflict, a Warning when a pass starts failing, and UpstreamDeprecated / UpstreamDeleted / UpstreamActive when
the upstream check moves the `Upstream` condition), so an idle resync posts nothing. Messages name fields, never
values. The reconcile loop calls it and hands the result to an `EventSink`; `KopfEventSink` posts through kopf's
event queue (batched, retried), and tests pass a recording sink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import kopf

from reconciler.api import API_GROUP, API_VERSION
from reconciler.api.conditions import ConditionType, Reason
from reconciler.engine.planning import Action, FieldChange, Verb
from reconciler.engine.statuses import conditions as cond

NORMAL, WARNING = "Normal", "Warning"
MAX_FIELDS_NAMED = 20


@dataclass(frozen=True)
class PlannedEvent:
    type: str
    reason: str
    message: str


class EventSink(Protocol):
    """Where Events go: `post` must not block and must not fail the pass."""

    def post(self, involved: Mapping[str, Any], event: PlannedEvent) -> None: ...


class KopfEventSink:
    """Posts through kopf (only valid inside the operator's tasks, where kopf's event queue lives)."""

    def post(self, involved: Mapping[str, Any], event: PlannedEvent) -> None:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, dict(involved))), type=event.type, reason=event.reason, message=event.message
        )


def involved_object(*, kind: str, namespace: str, name: str, uid: str | None) -> dict[str, Any]:
    """The minimal body kopf needs to build an Event's involvedObject."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": kind, "metadata": metadata}


def is_credential_field(path: str) -> bool:
    """Fingerprint columns stand for Secret values: a change there is a rotation, not an edit."""
    return "fingerprint" in path.lower()


def _fields(changes: Sequence[FieldChange]) -> str:
    paths = [change.path for change in changes]
    shown = ", ".join(paths[:MAX_FIELDS_NAMED])
    return shown + (f" and {len(paths) - MAX_FIELDS_NAMED} more" if len(paths) > MAX_FIELDS_NAMED else "")


def action_events(action: Action | None) -> list[PlannedEvent]:
    """Events for what the pass wrote to the registry."""
    if action is None:
        return []
    table, tenant, name = action.key
    row = f"{table} row {tenant}/{name}"
    if action.verb is Verb.CREATE:
        return [PlannedEvent(NORMAL, "Created", f"registered the {row} in the registry")]
    if action.verb is Verb.ADOPT:
        return [PlannedEvent(NORMAL, "Updated", f"adopted the unmanaged {row}")]
    if action.verb is Verb.REPAIR:
        message = f"the {row} was changed outside mcp-reconciler; repaired fields: {_fields(action.changes)}"
        return [PlannedEvent(NORMAL, "DriftRepaired", message)]
    if action.verb is Verb.UPDATE:
        rotated = [change for change in action.changes if is_credential_field(change.path)]
        edited = [change for change in action.changes if not is_credential_field(change.path)]
        found = []
        if edited:
            found.append(PlannedEvent(NORMAL, "Updated", f"updated the {row}: {_fields(edited)}"))
        if rotated:
            found.append(
                PlannedEvent(NORMAL, "Rotated", f"credential rotated in place in the {row}: {_fields(rotated)}")
            )
        return found
    return []


def _condition(status: Mapping[str, Any] | None, type_: ConditionType) -> Mapping[str, Any]:
    return cond.find((status or {}).get("conditions"), type_) or {}


def _entered(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], *, type_: ConditionType, status: str
) -> Mapping[str, Any] | None:
    """The condition in `after` if it newly has `status`, or kept it with a different reason; else None."""
    new, old = _condition(after, type_), _condition(before, type_)
    if new.get("status") != status:
        return None
    if old.get("status") == status and old.get("reason") == new.get("reason"):
        return None
    return new


def condition_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[PlannedEvent]:
    """Events for conditions that just flipped into a state someone should hear about."""
    found: list[PlannedEvent] = []
    failing = _entered(before, after, type_=ConditionType.SYNCED, status="False")
    if failing is not None and failing.get("reason") != str(Reason.RECONCILE_PAUSED):
        found.append(PlannedEvent(WARNING, str(failing.get("reason")), str(failing.get("message", ""))))
    credentials = _entered(before, after, type_=ConditionType.CREDENTIALS_VALID, status="False")
    if credentials is not None and credentials.get("reason") == str(Reason.ROTATION_FAILED):
        found.append(PlannedEvent(WARNING, "RotationFailed", str(credentials.get("message", ""))))
    drifted = _entered(before, after, type_=ConditionType.TOOLS_DRIFTED, status="True")
    if drifted is not None:
        # High-severity drift keeps its own reason, so an alert on Events can tell it from harmless churn.
        risky = drifted.get("reason") == str(Reason.TOOL_RISK_CHANGED)
        reason = str(Reason.TOOL_RISK_CHANGED) if risky else "ToolsDrifted"
        found.append(PlannedEvent(WARNING, reason, str(drifted.get("message", ""))))
    found.extend(upstream_events(before, after))
    return found


def upstream_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[PlannedEvent]:
    """A Warning when the upstream entry becomes deprecated or deleted (or turns from one to the other), a Normal
    `UpstreamActive` when it comes back; nothing for a server first found active."""
    leaving = _entered(before, after, type_=ConditionType.UPSTREAM, status="False")
    if leaving is not None:
        return [PlannedEvent(WARNING, str(leaving.get("reason")), str(leaving.get("message", "")))]
    back = _entered(before, after, type_=ConditionType.UPSTREAM, status="True")
    if back is not None and _condition(before, ConditionType.UPSTREAM).get("status") == "False":
        return [PlannedEvent(NORMAL, str(back.get("reason")), str(back.get("message", "")))]
    return []


def plan_events(
    action: Action | None, *, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[PlannedEvent]:
    """Every Event one pass should post; empty for a pass that changed nothing."""
    return action_events(action) + condition_events(before, after)
