"""The operator's side of status: its notes on the engine's documents and the merge patch that writes them.

The documents themselves (first sight, paused, a failed pass) are built by `reconciler.engine.statuses.lifecycle`;
this module names the operator's annotation and label in them, and turns a status into the JSON merge patch the
reconcile loop sends through the status subresource.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.engine.statuses.lifecycle import (
    MAX_MESSAGE_LENGTH,
    Status,
    failed,
    first_sight,
    has_conditions,
    rotation_held_back,
    short,
    with_reconcile_request,
    with_unwatched_secrets,
)
from reconciler.engine.statuses.lifecycle import paused as paused_status
from reconciler.operator.annotations import CREDENTIAL_LABEL, PAUSED_ANNOTATION

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "Status",
    "compact",
    "failed",
    "first_sight",
    "has_conditions",
    "merge_patch",
    "paused",
    "rotation_held_back",
    "short",
    "with_reconcile_request",
    "with_unlabelled_secrets",
]


def paused(previous: Mapping[str, Any] | None, *, generation: int | None, now: dt.datetime) -> Status:
    """Synced=False/ReconcilePaused, naming the annotation that pauses the object."""
    message = f'{PAUSED_ANNOTATION} is "true": the registry is not written until it is removed'
    return paused_status(previous, message=message, generation=generation, now=now)


def with_unlabelled_secrets(status: Status, names: Collection[str]) -> Status:
    """Say in the CredentialsValid condition which referenced Secrets are not watched (read at resync only)."""
    return with_unwatched_secrets(status, names, label=CREDENTIAL_LABEL)


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
