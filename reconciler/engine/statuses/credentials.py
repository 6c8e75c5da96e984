"""The `credentials` section of status across rotations: `rotatedAt`/`revision` when a rotation went through,
`failedRotationAttempts` and CredentialsValid=False/RotationFailed while one is held back.

Pure; called by the credentials step's `rotation_status` for every object of a pass, with what that pass's
rotation checks decided. Earlier facts are carried forward, so a status keeps its rotation history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from reconciler.api.times import format_time
from reconciler.engine.statuses import conditions as cond


def rotation_sections(
    previous: Mapping[str, object] | None,
    credentials: object,
    *,
    rotated: bool,
    held_back: str | None,
    now: dt.datetime,
) -> tuple[dict[str, object], list[cond.ConditionDict]]:
    """`credentials` (this pass's facts, camelCase) over the previous status's, updated for a rotation that went
    through (`rotated`) or one held back (`held_back`: the check's message); the count of failures goes once no
    rotation is held back any more (the Secret was fixed or reverted)."""
    before = previous.get("credentials") if previous else None
    carried = dict(before) if isinstance(before, Mapping) else {}
    facts: dict[str, object] = {**carried, **(dict(credentials) if isinstance(credentials, Mapping) else {})}
    conditions: list[cond.ConditionDict] = []
    if rotated:
        facts["rotatedAt"] = format_time(now)
        facts["revision"] = int(str(carried.get("revision", 0) or 0)) + 1
        facts.pop("failedRotationAttempts", None)
    elif held_back is not None:
        facts["failedRotationAttempts"] = int(str(carried.get("failedRotationAttempts", 0) or 0)) + 1
        conditions.append(cond.rotation_failed(held_back))
    else:
        facts.pop("failedRotationAttempts", None)
    if not facts:
        return {}, conditions
    return {"credentials": facts}, conditions
