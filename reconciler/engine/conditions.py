"""Pure condition builders: one function per situation, and the merge that keeps transition times honest.

Called by the status builder for every kind, by the CLI and the operator alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.api.conditions import ConditionType, Reason

ConditionDict = dict[str, Any]


def condition(type_: ConditionType, status: str, reason: Reason, message: str = "") -> ConditionDict:
    """A condition without timestamps; `merge_conditions` adds them."""
    return {"type": str(type_), "status": status, "reason": str(reason), "message": message}


def synced(message: str = "registry is up to date") -> ConditionDict:
    return condition(ConditionType.SYNCED, "True", Reason.RECONCILE_SUCCESS, message)


def sync_failed(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.SYNCED, "False", reason, message)


def observe_only(message: str) -> ConditionDict:
    return condition(ConditionType.SYNCED, "True", Reason.OBSERVE_ONLY, message)


def ready(message: str = "") -> ConditionDict:
    return condition(ConditionType.READY, "True", Reason.AVAILABLE, message)


def not_ready(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.READY, "False", reason, message)


def ready_unknown(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.READY, "Unknown", reason, message)


def credentials_valid(message: str = "") -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "True", Reason.CREDENTIALS_RESOLVED, message)


def credentials_invalid(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "False", reason, message)


def credentials_unknown(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "Unknown", reason, message)


def first_sight() -> list[ConditionDict]:
    """What an object shows before its first reconcile finishes."""
    return [
        condition(ConditionType.READY, "Unknown", Reason.CREATING, "waiting for the first reconcile"),
        condition(ConditionType.SYNCED, "Unknown", Reason.CREATING, "waiting for the first reconcile"),
    ]


def merge_conditions(
    previous: Sequence[ConditionDict] | None,
    current: Iterable[ConditionDict],
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[ConditionDict]:
    """New conditions in a stable order; `lastTransitionTime` moves only when `status` flips.

    Conditions from `previous` whose type is not in `current` are dropped: each reconcile states them all.
    """
    before = {item["type"]: item for item in previous or ()}
    merged: list[ConditionDict] = []
    for item in current:
        old = before.get(item["type"])
        transition = old["lastTransitionTime"] if old is not None and old.get("status") == item["status"] else None
        merged.append(
            {
                **item,
                "observedGeneration": generation,
                "lastTransitionTime": transition or now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    order = {str(kind): index for index, kind in enumerate(ConditionType)}
    merged.sort(key=lambda item: order.get(item["type"], len(order)))
    return merged


def find(conditions: Sequence[ConditionDict] | None, type_: ConditionType) -> ConditionDict | None:
    for item in conditions or ():
        if item.get("type") == str(type_):
            return item
    return None
