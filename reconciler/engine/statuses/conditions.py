"""Pure condition setters, one per situation, and the merge that keeps transition times honest.

Every condition the reconciler writes comes from a function here, with its type and reason from the enums in
`reconciler.api.conditions`, so the CLI and the operator word a situation the same way. Called by the status
builders of this package (`building`, `probes`, `lifecycle`) and by the credentials step for rotations.
A setter returns the condition without times; `merge_conditions` stamps `observedGeneration` and
`lastTransitionTime`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.api.conditions import PROBE_FAILURE_REASONS, ConditionType, Reason
from reconciler.api.times import format_time

ConditionDict = dict[str, Any]
"""A condition as written (camelCase keys); `reconciler.api.Condition` is its schema."""

AWAITING_MEMBERS = "each member authorizes their own account"
FIRST_RECONCILE = "waiting for the first reconcile"


def condition(type_: ConditionType, status: str, reason: Reason | str, message: str = "") -> ConditionDict:
    """A condition without timestamps; `merge_conditions` adds them. Prefer a setter below."""
    return {"type": str(type_), "status": status, "reason": str(reason), "message": message}


# Synced


def synced(message: str = "registry is up to date") -> ConditionDict:
    return condition(ConditionType.SYNCED, "True", Reason.RECONCILE_SUCCESS, message)


def sync_failed(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.SYNCED, "False", reason, message)


def observe_only(message: str) -> ConditionDict:
    return condition(ConditionType.SYNCED, "True", Reason.OBSERVE_ONLY, message)


def reconcile_paused(message: str) -> ConditionDict:
    return sync_failed(Reason.RECONCILE_PAUSED, message)


def reconcile_failed(reason: str, message: str) -> ConditionDict:
    """A pass that raised: the error class names the reason (`reconciler.errors`' `reason`)."""
    return condition(ConditionType.SYNCED, "False", reason, message)


# Ready


def ready(message: str = "") -> ConditionDict:
    return condition(ConditionType.READY, "True", Reason.AVAILABLE, message)


def not_ready(reason: Reason | str, message: str) -> ConditionDict:
    return condition(ConditionType.READY, "False", reason, message)


def ready_unknown(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.READY, "Unknown", reason, message)


def conflict(message: str) -> list[ConditionDict]:
    """Another owner holds the row: not synced, and not ready for that reason."""
    return [sync_failed(Reason.CONFLICT, message), not_ready(Reason.CONFLICT, message)]


def no_registry_row() -> ConditionDict:
    return not_ready(Reason.UNAVAILABLE, "no registry row exists for this object")


def secret_missing(message: str) -> ConditionDict:
    return not_ready(Reason.SECRET_NOT_FOUND, message)


def disabled() -> ConditionDict:
    return ready("disabled: registered but not offered to agents")


def connected(tool_count: int) -> ConditionDict:
    return ready(f"Connected · {tool_count} tools")


def probe_failed(error_class: str, message: str) -> ConditionDict:
    """The last probe failed; the reason follows the probe's error class."""
    return not_ready(PROBE_FAILURE_REASONS.get(error_class, Reason.UNAVAILABLE), message)


def tools_not_approved(message: str) -> ConditionDict:
    return not_ready(Reason.TOOLS_NOT_APPROVED, message)


def credential_unusable(message: str) -> ConditionDict:
    """Without its credential the server is of no use to runtimes, whatever an anonymous probe saw."""
    return not_ready(Reason.AUTH_ERROR, f"credentials: {message}")


def failed_pass_not_ready(reason: str, message: str) -> ConditionDict:
    """Ready when a pass failed before anything was known: the failure's reason and message."""
    return not_ready(reason, message)


def paused_before_first_reconcile() -> ConditionDict:
    return ready_unknown(Reason.CREATING, "paused before the first reconcile")


def first_sight() -> list[ConditionDict]:
    """What an object shows before its first reconcile finishes."""
    return [
        condition(ConditionType.READY, "Unknown", Reason.CREATING, FIRST_RECONCILE),
        condition(ConditionType.SYNCED, "Unknown", Reason.CREATING, FIRST_RECONCILE),
    ]


# CredentialsValid


def credentials_valid(message: str = "") -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "True", Reason.CREDENTIALS_RESOLVED, message)


def credentials_invalid(reason: Reason | str, message: str) -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "False", reason, message)


def credentials_unknown(reason: Reason, message: str) -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "Unknown", reason, message)


def no_credentials_needed() -> ConditionDict:
    return condition(ConditionType.CREDENTIALS_VALID, "True", Reason.NO_CREDENTIALS, "none needed")


def awaiting_members() -> ConditionDict:
    return credentials_unknown(Reason.AWAITING_USER_AUTHORIZATION, AWAITING_MEMBERS)


def credentials_refused(reason: str, message: str) -> ConditionDict:
    """The credentials step failed; it names its own reasons (SecretNotFound, InvalidClient, ...)."""
    return credentials_invalid(reason or Reason.AUTH_ERROR, message)


def auth_server_changed(previous: str, current: str) -> ConditionDict:
    """The resource now names another authorization server (SEP-2352): the client bound to the old issuer was
    forgotten, never used against the new one, and the reconciler identified itself to the new one afresh."""
    return condition(
        ConditionType.AUTH_SERVER_CHANGED,
        "True",
        Reason.ISSUER_CHANGED,
        f"the authorization server changed from {previous} to {current}; the client bound to {previous} was "
        f"forgotten and is not used with {current}",
    )


def auth_server_changed_for_preset(message: str) -> ConditionDict:
    """The same move for the spec's pre-registered client: it is not sent to the new issuer, and the spec must
    name a client of the new one (CredentialsValid is False meanwhile)."""
    return condition(ConditionType.AUTH_SERVER_CHANGED, "True", Reason.PREREGISTERED_CLIENT_NOT_USED, message)


def rotation_failed(message: str) -> ConditionDict:
    """A changed Secret was refused by the live server; the last good credential stays in use."""
    return credentials_invalid(Reason.ROTATION_FAILED, message)


# Discovered / ToolsDrifted


def not_probed(*, discovery_enabled: bool) -> list[ConditionDict]:
    """Discovered and ToolsDrifted before any probe: why there is nothing to say yet."""
    if discovery_enabled:
        reason, message = Reason.NOT_PROBED, "not probed yet"
    else:
        reason, message = Reason.DISCOVERY_DISABLED, "spec.discovery.enabled is false"
    return [
        condition(ConditionType.DISCOVERED, "Unknown", reason, message),
        condition(ConditionType.TOOLS_DRIFTED, "Unknown", reason, message),
    ]


def discovered(message: str) -> ConditionDict:
    return condition(ConditionType.DISCOVERED, "True", Reason.DISCOVERY_SUCCEEDED, message)


def discovery_failed(message: str) -> ConditionDict:
    return condition(ConditionType.DISCOVERED, "False", Reason.DISCOVERY_FAILED, message)


def tools_drifted(message: str) -> ConditionDict:
    return condition(ConditionType.TOOLS_DRIFTED, "True", Reason.TOOLS_CHANGED, message)


def tool_risk_changed(message: str) -> ConditionDict:
    """ToolsDrifted with the high-severity reason; `tool_risk_not_ready` says it on Ready."""
    return condition(ConditionType.TOOLS_DRIFTED, "True", Reason.TOOL_RISK_CHANGED, message)


def tool_risk_not_ready(message: str) -> ConditionDict:
    """Ready=False until a probe finds the tools' risk stable again: Argo CD shows the server Degraded, `get` shows
    the reason, and read-only bindings admit none of its tools meanwhile."""
    return not_ready(Reason.TOOL_RISK_CHANGED, message)


def tools_unchanged() -> ConditionDict:
    return condition(ConditionType.TOOLS_DRIFTED, "False", Reason.TOOLS_UNCHANGED, "")


# Upstream


def upstream_active(message: str) -> ConditionDict:
    """The registry a server was imported from lists its entry as active (again)."""
    return condition(ConditionType.UPSTREAM, "True", Reason.UPSTREAM_ACTIVE, message)


def upstream_deprecated(message: str) -> ConditionDict:
    """The publisher deprecated the entry; the server still works, but its replacement should be planned."""
    return condition(ConditionType.UPSTREAM, "False", Reason.UPSTREAM_DEPRECATED, message)


def upstream_deleted(message: str) -> ConditionDict:
    """The entry was deleted upstream (withdrawn, or a security problem): the message says why."""
    return condition(ConditionType.UPSTREAM, "False", Reason.UPSTREAM_DELETED, message)


# Merging and reading


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    current: Iterable[ConditionDict],
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[ConditionDict]:
    """New conditions in a stable order; `lastTransitionTime` moves only when `status` flips.

    Conditions from `previous` whose type is not in `current` are dropped: each reconcile states them all.
    """
    before = {item["type"]: item for item in previous or ()}
    stamp = format_time(now)
    merged: list[ConditionDict] = []
    for item in current:
        old = before.get(item["type"])
        transition = old["lastTransitionTime"] if old is not None and old.get("status") == item["status"] else None
        merged.append({**item, "observedGeneration": generation, "lastTransitionTime": transition or stamp})
    merged.sort(key=lambda item: _CONDITION_ORDER.get(item["type"], len(_CONDITION_ORDER)))
    return merged


_CONDITION_ORDER = {str(kind): index for index, kind in enumerate(ConditionType)}
"""Where each condition type sorts; built once, not per merge (10,000 statuses in a cold apply)."""


def bare(item: Mapping[str, Any]) -> ConditionDict:
    """A written condition without its times, as a setter returns it (to state it again in a merge)."""
    return {key: item[key] for key in ("type", "status", "reason", "message") if key in item}


def find(conditions: Sequence[ConditionDict] | None, type_: ConditionType) -> ConditionDict | None:
    for item in conditions or ():
        if item.get("type") == str(type_):
            return item
    return None
