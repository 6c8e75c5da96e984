"""Status documents for the situations only the operator meets: first sight, paused, failed passes, notes.

Pure functions over status dicts (camelCase, as on the API server), called by the operator's reconcile loop
before it writes through the status subresource. Conditions go through the engine's `merge_conditions`, so
`lastTransitionTime` moves only when a condition's status flips, exactly as for the engine's own statuses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.api.conditions import ConditionType, Reason
from reconciler.engine import conditions as cond
from reconciler.operator.annotations import CREDENTIAL_LABEL, PAUSED_ANNOTATION

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
    kept = [_bare(item) for item in status.get("conditions") or () if item.get("type") not in replaced]
    status["conditions"] = cond.merge_conditions(
        status.get("conditions"), [*kept, *replacements], generation=generation, now=now
    )
    status["observedGeneration"] = generation
    return status


def _bare(item: Mapping[str, Any]) -> cond.ConditionDict:
    return {key: item[key] for key in ("type", "status", "reason", "message") if key in item}


def has_conditions(status: Mapping[str, Any] | None) -> bool:
    """Whether an object has been seen before: it carries Ready and Synced."""
    found = {item.get("type") for item in (status or {}).get("conditions") or ()}
    return {str(ConditionType.READY), str(ConditionType.SYNCED)} <= found


def first_sight(*, generation: int | None, now: dt.datetime) -> Status:
    """What a new object shows until its first pass ends: Ready and Synced Unknown."""
    return {
        "observedGeneration": generation,
        "conditions": cond.merge_conditions(None, cond.first_sight(), generation=generation, now=now),
    }


def paused(previous: Mapping[str, Any] | None, *, generation: int | None, now: dt.datetime) -> Status:
    """Synced=False/ReconcilePaused; Ready keeps what the last real pass found (Unknown if there was none)."""
    message = f'{PAUSED_ANNOTATION} is "true": the registry is not written until it is removed'
    replacements = [cond.sync_failed(Reason.RECONCILE_PAUSED, message)]
    if not has_conditions(previous):
        replacements.append(cond.ready_unknown(Reason.CREATING, "paused before the first reconcile"))
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
    sync = cond.condition(ConditionType.SYNCED, "False", Reason.RECONCILE_ERROR, short(message))
    sync["reason"] = reason
    replacements = [sync]
    ready = cond.find((previous or {}).get("conditions"), ConditionType.READY)
    if ready is None or ready.get("status") == "Unknown":
        not_ready = cond.condition(ConditionType.READY, "False", Reason.UNAVAILABLE, short(message))
        not_ready["reason"] = reason
        replacements.append(not_ready)
    return _with_conditions(previous, replacements, generation=generation, now=now)


def rotation_held_back(status: Mapping[str, Any] | None) -> bool:
    """A changed Secret failed (or could not be given) its check against the live server and the last good
    credential is still in use: the check is retried with back-off, not at the normal resync pace."""
    found = cond.find((status or {}).get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
    return found.get("status") == "False" and found.get("reason") == str(Reason.ROTATION_FAILED)


def with_reconcile_request(status: Status, token: str | None) -> Status:
    """Echo the handled `reconcile-requested-at` token, as GitOps tools expect."""
    if token is None:
        return status
    return {**status, "lastHandledReconcileAt": token}


def with_unlabelled_secrets(status: Status, names: Collection[str]) -> Status:
    """Say in the CredentialsValid condition which referenced Secrets are not watched (read at resync only)."""
    if not names:
        return status
    listed = ", ".join(sorted(names))
    subject = f"Secret {listed} lacks" if len(names) == 1 else f"Secrets {listed} lack"
    note = f"{subject} the label {CREDENTIAL_LABEL}: changes are picked up at the next resync, not at once"
    conditions = []
    noted = False
    for item in status.get("conditions") or ():
        if item.get("type") == str(ConditionType.CREDENTIALS_VALID) and not noted:
            text = item.get("message") or ""
            item = {**item, "message": short(f"{text}; {note}" if text else note)}
            noted = True
        conditions.append(item)
    return {**status, "conditions": conditions}


def merge_patch(previous: Mapping[str, Any] | None, status: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning `previous` into `status`: lists replace wholesale, dropped keys
    become null at every depth (a merge patch would otherwise keep them)."""
    return {"status": _merge_diff(previous or {}, status)}


def _merge_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = _merge_diff(old, value)
        else:
            patch[key] = value
    for key in before:
        if key not in after:
            patch[key] = None
    return patch


def compact(value: Any) -> Any:
    """The status as written: empty strings left out at every depth (Kubernetes' `omitempty` convention).

    Besides being conventional, it sidesteps API servers whose JSON decoder turns `""` into `null` and then
    rejects the status as not a string (observed on the self-built v1.20 server the e2e suite runs).
    """
    if isinstance(value, Mapping):
        return {key: compact(item) for key, item in value.items() if item != ""}
    if isinstance(value, list):
        return [compact(item) for item in value]
    return value
