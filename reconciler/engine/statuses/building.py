"""Build each object's typed status from what reconciling found: conditions, registry id, generation, sync time.

Pure; called by the report step for the CLI (status kept in the registry) and the operator (status subresource),
and by Test Connection. The status is one of the `reconciler.api` `…Status` models; `dump_status` turns it into
the camelCase document both drivers write, with exactly the keys that were set. A status is only written when
it differs from the previous one, so repeated no-op reconciles write nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.api import (
    MCPAccessGrant,
    MCPAccessGrantStatus,
    MCPConnection,
    MCPConnectionStatus,
    MCPServer,
    MCPServerStatus,
    MCPTemplateBinding,
    MCPTemplateBindingStatus,
)
from reconciler.api.common import Condition, Model, StatusBase
from reconciler.api.conditions import ConditionType, Reason
from reconciler.api.kinds import Resource
from reconciler.api.server import OAuthAuthorizationCodeAuth
from reconciler.api.times import format_time
from reconciler.engine.desired import DesiredObject, MissingSecret
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.upstream import kept_upstream

SYNC_MESSAGES = {
    Verb.NOOP: "registry row matches the spec",
}
STATUS_TYPES: dict[type[Resource], type[StatusBase]] = {
    MCPServer: MCPServerStatus,
    MCPConnection: MCPConnectionStatus,
    MCPAccessGrant: MCPAccessGrantStatus,
    MCPTemplateBinding: MCPTemplateBindingStatus,
}
_READY = str(ConditionType.READY)
KEPT_FROM_PREVIOUS = ("lastHandledReconcileAt",)
"""Set by the operator alone; a pass that does not set it again keeps it."""


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
    """Kind-specific sections computed elsewhere (probe results, credential facts) by status key (camelCase):
    the `api` section models, or documents of their shape."""
    extra_conditions: Sequence[cond.ConditionDict] = ()


def dump_status(status: StatusBase) -> dict[str, Any]:
    """The document as written: camelCase, times in the one format, only the fields that were set."""
    return status.model_dump(mode="json", by_alias=True, exclude_unset=True)


def dump_section(section: Model) -> dict[str, Any]:
    """One typed section as it appears in a written status (camelCase, times in the one format)."""
    return section.model_dump(mode="json", by_alias=True, exclude_unset=True)


def missing_text(missing: Sequence[MissingSecret]) -> str:
    parts = [f"{item.reference} ({item.field})" for item in missing]
    return "Secret key not found: " + ", ".join(parts)


def base_conditions(obj: DesiredObject, action: Action) -> list[cond.ConditionDict]:
    """Ready and Synced (and CredentialsValid for kinds holding credentials) from the planned action."""
    found: list[cond.ConditionDict] = []
    if action.verb is Verb.CONFLICT:
        found += cond.conflict(action.message)
    elif action.message.startswith("ObserveOnly"):
        found.append(cond.observe_only(action.message))
        if action.observed is None:
            found.append(cond.no_registry_row())
    else:
        found.append(cond.synced(SYNC_MESSAGES.get(action.verb, "registry row matches the spec")))
    has_ready = False
    for item in found:  # a loop, not `any` over a generator: once per object of a pass
        has_ready = has_ready or item["type"] == _READY
    resource = obj.resource
    if isinstance(resource, MCPServer | MCPConnection):
        credential = _credentials_condition(obj)
        if credential is not None:
            found.append(credential)
    if not has_ready:
        if obj.missing_secrets:
            found.append(cond.secret_missing(missing_text(obj.missing_secrets)))
        elif isinstance(resource, MCPServer) and not resource.spec.enabled:
            found.append(cond.disabled())
        else:
            found.append(cond.ready())
    return found


def _credentials_condition(obj: DesiredObject) -> cond.ConditionDict | None:
    resource = obj.resource
    if obj.missing_secrets:
        return cond.credentials_invalid(Reason.SECRET_NOT_FOUND, missing_text(obj.missing_secrets))
    if isinstance(resource, MCPServer):
        if isinstance(resource.spec.auth, OAuthAuthorizationCodeAuth):
            return cond.awaiting_members()
        if resource.spec.auth.type == "none" and not any(h.value_from for h in resource.spec.headers):
            return cond.no_credentials_needed()
        return cond.credentials_valid("every referenced Secret key resolved")
    if isinstance(resource, MCPConnection):
        if resource.spec.credential_mode == "perMember":
            return cond.awaiting_members()
        return cond.credentials_valid("every referenced Secret key resolved")
    return None


def _combine(base: list[cond.ConditionDict], extra: Sequence[cond.ConditionDict]) -> list[cond.ConditionDict]:
    """Kind-specific conditions join the base ones; a probe's Ready only refines a Ready that is True
    (a Conflict or a missing Secret stays the reason an object is not ready)."""
    combined = {item["type"]: item for item in base}
    for item in extra:
        current = combined.get(item["type"])
        if current is not None and item["type"] == _READY and current["status"] != "True":
            continue
        combined[item["type"]] = item
    return list(combined.values())


def build_status_model(inputs: StatusInputs) -> StatusBase:
    """The typed status, keeping transition and sync times when nothing really changed."""
    status_type, fields = _status_fields(inputs, inputs.extra, inputs.extra_conditions)
    return status_type.model_validate(fields)


def _status_fields(
    inputs: StatusInputs, extra: Mapping[str, Any] | None, extra_conditions: Sequence[cond.ConditionDict]
) -> tuple[type[StatusBase], dict[str, Any]]:
    """The status model of the object's kind and its fields by name, as `build_status_model` validates them, with
    `extra` and `extra_conditions` in place of the inputs' own."""
    previous: Mapping[str, Any] = inputs.previous or {}  # read only
    current = _combine(base_conditions(inputs.obj, inputs.action), extra_conditions)
    current += kept_upstream(previous, inputs.obj.resource.metadata.annotations)
    merged = cond.merge_conditions(previous.get("conditions"), current, generation=inputs.generation, now=inputs.now)
    fields: dict[str, Any] = {
        "observed_generation": inputs.generation,
        "conditions": merged,
    }
    if inputs.registry_id is not None:
        fields["registry_id"] = str(inputs.registry_id)
    if inputs.action.writes:
        fields["last_sync_time"] = format_time(inputs.now)
    elif previous.get("lastSyncTime"):
        fields["last_sync_time"] = previous["lastSyncTime"]
    resource = inputs.obj.resource
    if isinstance(resource, MCPServer):
        # Defaults live in the models, not the CRDs: the table columns read the values that apply.
        spec = resource.spec
        fields.update(transport=spec.transport, auth_type=spec.auth.type, enabled=spec.enabled)
    status_type = STATUS_TYPES[type(resource)]
    names = _field_names(status_type)
    for key, value in (extra or {}).items():
        if value is None:
            continue
        if key not in names:
            raise ValueError(f"{status_type.__name__} has no field {key!r}")  # a builder and its model disagree
        fields[names[key]] = value
    for key in KEPT_FROM_PREVIOUS:
        if key in previous and names[key] not in fields:
            fields[names[key]] = previous[key]
    return status_type, fields


@functools.cache
def _field_names(model: type[StatusBase]) -> dict[str, str]:
    """Field name by wire key (camelCase alias, or the name itself)."""
    names = {name: name for name in model.model_fields}
    names.update({info.alias: name for name, info in model.model_fields.items() if info.alias})
    return names


def build_status(inputs: StatusInputs) -> dict[str, Any]:
    """The full status document (camelCase) of `build_status_model`."""
    return build_status_with(inputs, extra=inputs.extra, extra_conditions=inputs.extra_conditions)


def build_status_with(
    inputs: StatusInputs, *, extra: Mapping[str, Any] | None, extra_conditions: Sequence[cond.ConditionDict]
) -> dict[str, Any]:
    """`build_status` of `inputs` with `extra` and `extra_conditions` in place of its own: what it gives the inputs
    `dataclasses.replace` would make, without copying them (the report step builds one per object of a pass)."""
    status_type, fields = _status_fields(inputs, extra, extra_conditions)
    conditions = fields["conditions"]
    fields["conditions"] = []  # set, so that the document keeps its place for them
    document = dump_status(status_type.model_validate(fields))
    document["conditions"] = [dict(_written_condition(item)) for item in conditions]
    return document


def _written_condition(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """One condition validated and dumped as the status model does it, remembered by content: a pass states the
    same few conditions (Synced, Ready at the same time and generation) for thousands of objects, and checking
    and dumping them was most of the cost of a status. Callers copy the result before handing it out."""
    try:
        key = tuple(item.items())
        hash(key)
    except TypeError:  # not hashable: not one of ours, so checked the long way
        return _validated_condition(item)
    return _cached_condition(key)


@functools.lru_cache(maxsize=4096)
def _cached_condition(items: tuple[tuple[str, Any], ...]) -> Mapping[str, Any]:
    return _validated_condition(dict(items))


def _validated_condition(item: Mapping[str, Any]) -> dict[str, Any]:
    return Condition.model_validate(item).model_dump(mode="json", by_alias=True, exclude_unset=True)
