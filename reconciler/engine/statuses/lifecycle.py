"""Statuses for the situations outside a pass's own report: first sight, paused, a failed pass, and the notes a
driver adds (the handled reconcile request, unwatched Secrets).

Pure functions over status documents (camelCase, as written), called by the operator before it writes through
the status subresource. They keep whatever else the previous status holds, and their conditions go through
`merge_conditions`, so `lastTransitionTime` moves only when a condition's status flips, exactly as for the
statuses a pass builds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.api.conditions import ConditionType, Reason
from reconciler.engine.statuses import conditions as cond

Status = dict[str, Any]
MAX_MESSAGE_LENGTH = 4096
"""Condition messages are cut here: the CRD allows 32 KiB, but a status should stay readable in `kubectl get`."""


def short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 1] + "…"


def _with_conditions(
    previous: Mapping[str, Any] | None,
    replacements: list[cond.ConditionDict],
    *,
    generation: int | None,
    now: dt.datetime,
) -> Status:
    """`previous` with some conditions replaced and the rest kept (transition times intact)."""
    status: Status = dict(previous or {})
    replaced = {item["type"] for item in replacements}
    kept = [cond.bare(item) for item in status.get("conditions") or () if item.get("type") not in replaced]
    status["conditions"] = cond.merge_conditions(
        status.get("conditions"), [*kept, *replacements], generation=generation, now=now
    )
    status["observedGeneration"] = generation
    return status


def replace_condition(previous: Mapping[str, Any] | None, condition: cond.ConditionDict, *, now: dt.datetime) -> Status:
    """`previous` with one condition set and the rest kept, at the generation it already observed: for what is
    found outside a pass (the upstream check), which says nothing about the spec."""
    generation = (previous or {}).get("observedGeneration")
    status = _with_conditions(previous, [condition], generation=generation, now=now)
    if generation is None:
        status.pop("observedGeneration")
    return status


def has_conditions(status: Mapping[str, Any] | None) -> bool:
    """Whether an object has been seen before: it carries Ready and Synced."""
    found = {item.get("type") for item in (status or {}).get("conditions") or ()}
    return {str(ConditionType.READY), str(ConditionType.SYNCED)} <= found


def first_sight(*, generation: int | None, now: dt.datetime, previous: Mapping[str, Any] | None = None) -> Status:
    """What a new object shows until its first pass ends: Ready and Synced Unknown, and an `Upstream` condition
    the upstream check may have written before the first pass (a pass keeps it too)."""
    found = cond.find((previous or {}).get("conditions"), ConditionType.UPSTREAM)
    kept = [cond.bare(found)] if found is not None else []
    return {
        "observedGeneration": generation,
        "conditions": cond.merge_conditions(
            (previous or {}).get("conditions"), [*cond.first_sight(), *kept], generation=generation, now=now
        ),
    }


def paused(previous: Mapping[str, Any] | None, *, message: str, generation: int | None, now: dt.datetime) -> Status:
    """Synced=False/ReconcilePaused; Ready keeps what the last real pass found (Unknown if there was none)."""
    replacements = [cond.reconcile_paused(message)]
    if not has_conditions(previous):
        replacements.append(cond.paused_before_first_reconcile())
    return _with_conditions(previous, replacements, generation=generation, now=now)


def failed(
    previous: Mapping[str, Any] | None,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> Status:
    """Synced=False with the error's reason; Ready is kept when known (the registry row may still serve)."""
    replacements = [cond.reconcile_failed(reason, short(message))]
    ready = cond.find((previous or {}).get("conditions"), ConditionType.READY)
    if ready is None or ready.get("status") == "Unknown":
        replacements.append(cond.failed_pass_not_ready(reason, short(message)))
    return _with_conditions(previous, replacements, generation=generation, now=now)


def rotation_held_back(status: Mapping[str, Any] | None) -> bool:
    """A changed Secret failed (or could not be given) its check against the live server and the last good
    credential is still in use."""
    found = cond.find((status or {}).get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
    return found.get("status") == "False" and found.get("reason") == str(Reason.ROTATION_FAILED)


def with_reconcile_request(status: Status, token: str | None) -> Status:
    """Echo the handled `reconcile-requested-at` token, as GitOps tools expect."""
    if token is None:
        return status
    return {**status, "lastHandledReconcileAt": token}


def with_unwatched_secrets(status: Status, names: Collection[str], *, label: str) -> Status:
    """Say in the CredentialsValid condition which referenced Secrets lack the watch `label` (read at resync only)."""
    if not names:
        return status
    listed = ", ".join(sorted(names))
    subject = f"Secret {listed} lacks" if len(names) == 1 else f"Secrets {listed} lack"
    note = f"{subject} the label {label}: changes are picked up at the next resync, not at once"
    conditions = []
    noted = False
    for item in status.get("conditions") or ():
        if item.get("type") == str(ConditionType.CREDENTIALS_VALID) and not noted:
            text = item.get("message") or ""
            item = {**item, "message": short(f"{text}; {note}" if text else note)}
            noted = True
        conditions.append(item)
    return {**status, "conditions": conditions}
