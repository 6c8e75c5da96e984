"""Build each object's status from what reconciling found: conditions, registry id, generation, sync time.

Pure; used by the CLI (status kept in the registry) and the operator (status subresource). A status is
only written when it differs from the previous one, so repeated no-op reconciles write nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.conditions import ConditionType, Reason
from reconciler.api.server import OAuthAuthorizationCodeAuth
from reconciler.engine import conditions as cond
from reconciler.engine.desired import DesiredObject, MissingSecret
from reconciler.engine.planning import Action, Verb

SYNC_MESSAGES = {
    Verb.NOOP: "registry row matches the spec",
}


@dataclass(frozen=True)
class StatusInputs:
    """Everything one object's status depends on."""

    obj: DesiredObject
    action: Action
    generation: int | None
    registry_id: int | None
    previous: Mapping[str, Any] | None
    now: dt.datetime
    extra: Mapping[str, Any] | None = None
    """Kind-specific sections computed elsewhere (probe results, credential facts)."""
    extra_conditions: Sequence[cond.ConditionDict] = ()


def _missing_text(missing: Sequence[MissingSecret]) -> str:
    parts = [f"{item.reference} ({item.field})" for item in missing]
    return "Secret key not found: " + ", ".join(parts)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_conditions(obj: DesiredObject, action: Action) -> list[cond.ConditionDict]:
    """Ready and Synced (and CredentialsValid for kinds holding credentials) from the planned action."""
    found: list[cond.ConditionDict] = []
    if action.verb is Verb.CONFLICT:
        found += [cond.sync_failed(Reason.CONFLICT, action.message), cond.not_ready(Reason.CONFLICT, action.message)]
    elif action.message.startswith("ObserveOnly"):
        found.append(cond.observe_only(action.message))
        if action.observed is None:
            found.append(cond.not_ready(Reason.UNAVAILABLE, "no registry row exists for this object"))
    else:
        found.append(cond.synced(SYNC_MESSAGES.get(action.verb, "registry row matches the spec")))
    has_ready = any(item["type"] == "Ready" for item in found)
    resource = obj.resource
    if isinstance(resource, MCPServer | MCPConnection):
        credential = _credentials_condition(obj)
        if credential is not None:
            found.append(credential)
    if not has_ready:
        if obj.missing_secrets:
            found.append(cond.not_ready(Reason.SECRET_NOT_FOUND, _missing_text(obj.missing_secrets)))
        elif isinstance(resource, MCPServer) and not resource.spec.enabled:
            found.append(cond.ready("disabled: registered but not offered to agents"))
        else:
            found.append(cond.ready())
    return found


def _credentials_condition(obj: DesiredObject) -> cond.ConditionDict | None:
    resource = obj.resource
    if obj.missing_secrets:
        return cond.credentials_invalid(Reason.SECRET_NOT_FOUND, _missing_text(obj.missing_secrets))
    if isinstance(resource, MCPServer):
        if isinstance(resource.spec.auth, OAuthAuthorizationCodeAuth):
            return cond.credentials_unknown(
                Reason.AWAITING_USER_AUTHORIZATION, "each member authorizes their own account"
            )
        if resource.spec.auth.type == "none" and not any(h.value_from for h in resource.spec.headers):
            return cond.condition(ConditionType.CREDENTIALS_VALID, "True", Reason.NO_CREDENTIALS, "none needed")
        return cond.credentials_valid("every referenced Secret key resolved")
    if isinstance(resource, MCPConnection):
        if resource.spec.credential_mode == "perMember":
            return cond.credentials_unknown(
                Reason.AWAITING_USER_AUTHORIZATION, "each member authorizes their own account"
            )
        return cond.credentials_valid("every referenced Secret key resolved")
    return None


def _combine(base: list[cond.ConditionDict], extra: Sequence[cond.ConditionDict]) -> list[cond.ConditionDict]:
    """Kind-specific conditions join the base ones; a probe's Ready only refines a Ready that is True
    (a Conflict or a missing Secret stays the reason an object is not ready)."""
    combined = {item["type"]: item for item in base}
    for item in extra:
        current = combined.get(item["type"])
        if current is not None and item["type"] == "Ready" and current["status"] != "True":
            continue
        combined[item["type"]] = item
    return list(combined.values())


def build_status(inputs: StatusInputs) -> dict[str, Any]:
    """The full status dict (camelCase), keeping transition and sync times when nothing really changed."""
    previous = dict(inputs.previous or {})
    current = _combine(base_conditions(inputs.obj, inputs.action), inputs.extra_conditions)
    status: dict[str, Any] = {
        "observedGeneration": inputs.generation,
        "conditions": cond.merge_conditions(
            previous.get("conditions"), current, generation=inputs.generation, now=inputs.now
        ),
    }
    if inputs.registry_id is not None:
        status["registryId"] = str(inputs.registry_id)
    if inputs.action.writes:
        status["lastSyncTime"] = _iso(inputs.now)
    elif previous.get("lastSyncTime"):
        status["lastSyncTime"] = previous["lastSyncTime"]
    resource = inputs.obj.resource
    if isinstance(resource, MCPServer):
        # Defaults live in the models, not the CRDs: the table columns read the values that apply.
        spec = resource.spec
        status.update(transport=spec.transport, authType=spec.auth.type, enabled=spec.enabled)
    if inputs.extra:
        status.update({key: value for key, value in inputs.extra.items() if value is not None})
    for key in ("lastHandledReconcileAt",):
        if key in previous and key not in status:
            status[key] = previous[key]
    return status
