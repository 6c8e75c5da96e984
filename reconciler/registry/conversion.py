"""Translation between registry records and column values, in both directions.

Used by the registry's readers and writers (`reading.py`, `writing.py`, `recording.py`, `lookups.py`):
writers turn records into parameter dicts for executemany, readers turn fetched rows back into records.
Keeping both directions side by side is what makes the round trip exact: tuples are stored as JSON lists and
restored as tuples, headers keep their order, and `None` stays distinct from empty. Name references (a
connection's server, a grant's target...) are resolved to ids by the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from sqlalchemy import RowMapping

from reconciler.records import ToolAnnotationHints, ToolRecord
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    MemberHeaderRecord,
    Ownership,
    ProbeStateRecord,
    ResourceRecord,
    ServerRecord,
    SourceRef,
    ToolSnapshotRecord,
    UserTokenRecord,
)

Values = dict[str, Any]


def ownership_values(ownership: Ownership) -> Values:
    source = ownership.source
    return {
        "manager": ownership.manager,
        "source_kind": source.kind if source else None,
        "source_namespace": source.namespace if source else None,
        "source_name": source.name if source else None,
        "spec_hash": ownership.spec_hash,
        "deletion_policy": ownership.deletion_policy,
    }


def ownership_of(row: RowMapping) -> Ownership:
    source = None
    if row["source_kind"] is not None:
        source = SourceRef(kind=row["source_kind"], namespace=row["source_namespace"], name=row["source_name"])
    return Ownership(
        manager=row["manager"],
        source=source,
        spec_hash=row["spec_hash"],
        deletion_policy=cast(Literal["Delete", "Orphan"], row["deletion_policy"]),
    )


def headers_json(headers: Sequence[HeaderRecord]) -> list[dict[str, str | None]]:
    return [
        {"name": header.name, "value": header.value, "secret_ref": header.secret_ref, "fingerprint": header.fingerprint}
        for header in headers
    ]


def headers_of(stored: Any) -> tuple[HeaderRecord, ...]:
    # Tolerant of hand-written rows: unknown keys are ignored rather than failing the whole observation.
    return tuple(
        HeaderRecord(
            name=item.get("name", ""),
            value=item.get("value"),
            secret_ref=item.get("secret_ref"),
            fingerprint=item.get("fingerprint"),
        )
        for item in stored or ()
    )


def strings_of(stored: Any) -> tuple[str, ...]:
    return tuple(stored or ())


def server_values(record: ServerRecord) -> Values:
    """Content columns of a server; `tenant_id` and `discovery_connection_id` are the caller's to resolve."""
    return {
        "name": record.name,
        "display_name": record.display_name,
        "description": record.description,
        "url": record.url,
        "transport": record.transport,
        "enabled": record.enabled,
        "featured": record.featured,
        "headers": headers_json(record.headers),
        "auth_type": record.auth_type,
        "auth": record.auth,
        "owner_kind": record.owner_kind,
        "owner_name": record.owner_name,
        "tool_policy": record.tool_policy,
        "approved_hash": record.approved_hash,
        "tools_allow": list(record.tools_allow),
        "tools_deny": list(record.tools_deny),
        "allow_private": record.allow_private,
        "discovery_enabled": record.discovery_enabled,
        "discovery_interval_seconds": record.discovery_interval_seconds,
        **ownership_values(record.ownership),
    }


def server_of(row: RowMapping, *, tenant: str, discovery_connection: str | None) -> ServerRecord:
    return ServerRecord(
        tenant=tenant,
        name=row["name"],
        ownership=ownership_of(row),
        row_id=row["id"],
        display_name=row["display_name"],
        description=row["description"],
        url=row["url"],
        transport=row["transport"],
        enabled=row["enabled"],
        featured=row["featured"],
        headers=headers_of(row["headers"]),
        auth_type=row["auth_type"],
        auth=row["auth"] if row["auth"] is not None else {},
        owner_kind=row["owner_kind"],
        owner_name=row["owner_name"],
        tool_policy=row["tool_policy"],
        approved_hash=row["approved_hash"],
        tools_allow=strings_of(row["tools_allow"]),
        tools_deny=strings_of(row["tools_deny"]),
        allow_private=row["allow_private"],
        discovery_enabled=row["discovery_enabled"],
        discovery_interval_seconds=row["discovery_interval_seconds"],
        discovery_connection=discovery_connection,
    )


def connection_values(record: ConnectionRecord) -> Values:
    """Content columns of a connection; `tenant_id` and `server_id` are the caller's to resolve."""
    return {
        "name": record.name,
        "scope": record.scope,
        "subject": record.subject,
        "credential_mode": record.credential_mode,
        "secret_ref": record.secret_ref,
        "fingerprint": record.fingerprint,
        "authorization_scheme": record.authorization_scheme,
        "headers": headers_json(record.headers),
        "active": record.active,
        "use_for_discovery": record.use_for_discovery,
        "member_headers": [{"name": header.name, "key": header.key} for header in record.member_headers],
        **ownership_values(record.ownership),
    }


def connection_of(row: RowMapping, *, tenant: str, server: str) -> ConnectionRecord:
    return ConnectionRecord(
        tenant=tenant,
        name=row["name"],
        ownership=ownership_of(row),
        row_id=row["id"],
        server=server,
        scope=row["scope"],
        subject=row["subject"],
        credential_mode=row["credential_mode"],
        secret_ref=row["secret_ref"],
        fingerprint=row["fingerprint"],
        authorization_scheme=row["authorization_scheme"],
        headers=headers_of(row["headers"]),
        active=row["active"],
        use_for_discovery=row["use_for_discovery"],
        member_headers=member_headers_of(row["member_headers"]),
    )


def member_headers_of(stored: Any) -> tuple[MemberHeaderRecord, ...]:
    return tuple(MemberHeaderRecord(item["name"], item["key"]) for item in stored or ())


def grant_values(record: GrantRecord) -> Values:
    """Content columns of a grant; `tenant_id` and the target ids are the caller's to resolve."""
    return {"name": record.name, **ownership_values(record.ownership)}


def grant_of(
    row: RowMapping,
    *,
    tenant: str,
    target_server: str | None,
    target_connection: str | None,
    subjects: Sequence[GrantSubjectRecord],
) -> GrantRecord:
    return GrantRecord(
        tenant=tenant,
        name=row["name"],
        ownership=ownership_of(row),
        row_id=row["id"],
        target_server=target_server,
        target_connection=target_connection,
        subjects=tuple(subjects),
    )


def subject_values(subject: GrantSubjectRecord, *, grant_id: int, position: int) -> Values:
    return {"grant_id": grant_id, "position": position, "kind": subject.kind, "name": subject.name}


def subject_of(row: RowMapping) -> GrantSubjectRecord:
    return GrantSubjectRecord(kind=row["kind"], name=row["name"])


def binding_values(record: BindingRecord) -> Values:
    """Content columns of a template binding; `tenant_id` is the caller's to resolve."""
    return {
        "name": record.name,
        "template": record.template,
        "agents": list(record.agents),
        **ownership_values(record.ownership),
    }


def bound_server_values(
    bound: BoundServerRecord,
    *,
    binding_id: int,
    position: int,
    server_id: int,
    connection_id: int | None,
) -> Values:
    return {
        "binding_id": binding_id,
        "position": position,
        "server_id": server_id,
        "connection_id": connection_id,
        "tools_allow": list(bound.tools_allow),
        "tools_deny": list(bound.tools_deny),
        "tools_read_only": bound.tools_read_only,
    }


def bound_server_of(row: RowMapping, *, server: str, connection: str | None) -> BoundServerRecord:
    return BoundServerRecord(
        server=server,
        connection=connection,
        tools_allow=strings_of(row["tools_allow"]),
        tools_deny=strings_of(row["tools_deny"]),
        tools_read_only=bool(row["tools_read_only"]),
    )


def resource_values(resource: ResourceRecord, *, now: dt.datetime) -> Values:
    return {
        "kind": resource.kind,
        "namespace": resource.namespace,
        "name": resource.name,
        "tenant": resource.tenant,
        "uid": resource.uid,
        "generation": resource.generation,
        "spec_hash": resource.spec_hash,
        "labels": dict(resource.labels),
        "annotations": dict(resource.annotations),
        "spec": resource.spec,
        "status": resource.status,
        "created_at": resource.created_at or now,
        "updated_at": now,
    }


def resource_of(row: RowMapping) -> ResourceRecord:
    return ResourceRecord(
        kind=row["kind"],
        namespace=row["namespace"],
        name=row["name"],
        tenant=row["tenant"],
        generation=row["generation"],
        spec_hash=row["spec_hash"],
        spec=row["spec"],
        labels=row["labels"],
        annotations=row["annotations"],
        status=row["status"],
        uid=row["uid"],
        created_at=row["created_at"],
    )


def tools_json(tools: Sequence[ToolRecord]) -> list[dict[str, Any]]:
    return [
        {
            "name": tool.name,
            "title": tool.title,
            "description": tool.description,
            "input_schema": tool.input_schema,
            "fingerprint": tool.fingerprint,
            **({"annotations": hints} if (hints := tool.annotations.as_json()) else {}),
        }
        for tool in tools
    ]


def tools_of(stored: Any) -> tuple[ToolRecord, ...]:
    return tuple(
        ToolRecord(
            name=item["name"],
            title=item.get("title"),
            description=item.get("description"),
            input_schema=item.get("input_schema") or {},
            fingerprint=item.get("fingerprint", ""),
            annotations=_hints_of(item),
        )
        for item in stored or ()
    )


def _hints_of(item: Mapping[str, Any]) -> ToolAnnotationHints:
    """A stored tool's hints. Snapshots written before hints were stored kept only a `destructive` flag with the
    defaults applied; a `false` there is the one thing the defaults would not restore, so it reads back as the
    server's `destructiveHint: false`."""
    hints = ToolAnnotationHints.from_json(item.get("annotations"))
    if "annotations" not in item and item.get("destructive") is False:
        return ToolAnnotationHints(destructive_hint=False)
    return hints


def snapshot_values(snapshot: ToolSnapshotRecord) -> Values:
    """Content columns of a tool snapshot; `server_id` is the caller's to resolve."""
    return {
        "hash": snapshot.hash,
        "tools": tools_json(snapshot.tools),
        "protocol_version": snapshot.protocol_version,
        "server_info": snapshot.server_info,
        "capabilities": list(snapshot.capabilities),
        "taken_at": snapshot.taken_at,
        "cache_scope": snapshot.cache_scope,
        "ttl_ms": snapshot.ttl_ms,
    }


def snapshot_of(row: RowMapping, *, tenant: str, server: str) -> ToolSnapshotRecord:
    return ToolSnapshotRecord(
        tenant=tenant,
        server=server,
        hash=row["hash"],
        tools=tools_of(row["tools"]),
        taken_at=row["taken_at"],
        protocol_version=row["protocol_version"],
        server_info=row["server_info"] if row["server_info"] is not None else {},
        capabilities=strings_of(row["capabilities"]),
        cache_scope=row["cache_scope"],
        ttl_ms=row["ttl_ms"],
    )


def probe_state_values(state: ProbeStateRecord) -> Values:
    """Columns of a server's probe state; `server_id` is the caller's to resolve."""
    return {
        "discovery": state.discovery,
        "last_test": state.last_test,
        "blocked_reason": state.blocked_reason,
        "probed_at": state.probed_at,
        "list_ttl_ms": state.list_ttl_ms,
        "tool_risk": list(state.tool_risk) or None,
    }


def probe_state_of(row: RowMapping, *, tenant: str, server: str) -> ProbeStateRecord:
    return ProbeStateRecord(
        tenant=tenant,
        server=server,
        discovery=row["discovery"],
        last_test=row["last_test"],
        blocked_reason=row["blocked_reason"],
        probed_at=row["probed_at"],
        list_ttl_ms=row["list_ttl_ms"],
        tool_risk=strings_of(row["tool_risk"]),
    )


def user_token_of(row: RowMapping, *, tenant: str, server: str, connection: str | None) -> UserTokenRecord:
    return UserTokenRecord(
        tenant=tenant,
        server=server,
        user_id=row["user_id"],
        secret_ref=row["secret_ref"],
        connection=connection,
        expires_at=row["expires_at"],
        row_id=row["id"],
        value_keys=strings_of(row["value_keys"]),
        refresh_token_ref=row["refresh_token_ref"],
        issued_at=row["issued_at"],
        client_id=row["client_id"],
        issuer=row["issuer"],
        scopes=strings_of(row["scopes"]),
        refresh_lease_until=row["refresh_lease_until"],
    )
