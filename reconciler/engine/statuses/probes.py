"""A server's probe sections of status (`discovery`, `lastTest`, `tools`, minted `credentials`) and the
conditions they imply (Discovered, ToolsDrifted with ToolRiskChanged for high-severity drift, Ready,
CredentialsValid), from its stored probe state.

Pure; called by the report step and by Test Connection with the probe state and tool snapshots the registry
holds, so a status reads the same whether the probe ran in this pass or an earlier one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import MCPServer
from reconciler.api.conditions import Reason
from reconciler.api.server import DiscoveryStatus, LastTest, ServerInfo, ToolChanges, ToolSnapshotStatus
from reconciler.engine.desired import DesiredObject
from reconciler.engine.statuses import conditions as cond
from reconciler.probe import HINTS, filter_tool_names
from reconciler.registry.records import ProbeStateRecord, ServerRecord, ToolSnapshotRecord

NAMES_IN_STATUS = 20


@dataclass(frozen=True)
class ProbeSections:
    """What a server's stored probe results add to its status: typed sections and conditions."""

    discovery: DiscoveryStatus | None = None
    last_test: LastTest | None = None
    tools: ToolSnapshotStatus | None = None
    credentials: Mapping[str, Any] | None = None
    """Facts about the token minted for the probe (`CredentialStatus` keys), merged with the row's own."""
    conditions: list[cond.ConditionDict] = field(default_factory=list)

    def as_extra(self) -> dict[str, Any]:
        """The sections under their status keys, for `StatusInputs.extra` (typed sections stay typed)."""
        extra: dict[str, Any] = {}
        if self.credentials:
            extra["credentials"] = dict(self.credentials)
        if self.discovery is not None:
            extra["discovery"] = self.discovery
        if self.last_test is not None:
            extra["lastTest"] = self.last_test
        if self.tools is not None:
            extra["tools"] = self.tools
        return extra


def changes_text(changes: Mapping[str, Sequence[str]]) -> str:
    parts = [f"{kind}: {', '.join(names)}" for kind, names in changes.items() if names]
    return "; ".join(parts)


def risk_message(risk: Sequence[str]) -> str:
    """Ready's message for high-severity tool drift: what changed, and what it means while it stands."""
    return (
        f"high-severity tool change: {'; '.join(risk)}; review it: read-only bindings admit no tool of this "
        "server until a probe finds its tools' risk unchanged"
    )


def discovery_identity(record: ServerRecord) -> str:
    """Pure: whose credential the probe lists tools with, named without any value (status of a `private` list)."""
    if record.discovery_connection is not None:
        return f"MCPConnection/{record.discovery_connection}"
    if record.auth_type == "none":
        return "anonymous"
    return f"spec.auth ({record.auth_type})"


def probe_sections(
    obj: DesiredObject,
    state: ProbeStateRecord | None,
    snapshots: Sequence[ToolSnapshotRecord],
    *,
    next_probe_at: dt.datetime | None = None,
) -> ProbeSections:
    """Pure: status sections and conditions for a server from its stored probe state and snapshots.

    `next_probe_at` is when the probe schedule (`engine.probing.probe_interval`) says the next probe falls due.
    """
    resource = obj.resource
    if not isinstance(resource, MCPServer) or not isinstance(obj.record, ServerRecord):
        return ProbeSections()
    record = obj.record
    if state is None:
        return ProbeSections(conditions=cond.not_probed(discovery_enabled=resource.spec.discovery.enabled))
    found: list[cond.ConditionDict] = []
    last = dict(state.last_test or {})
    changes = last.pop("toolChanges", {}) or {}
    minted = dict(last.pop("credentials", None) or {})
    previous_issuer = minted.pop("previousIssuer", None)
    if previous_issuer:
        found.append(cond.auth_server_changed(str(previous_issuer), str(minted.get("issuer") or "another issuer")))
    failure = last.pop("credentialFailure", None)
    if failure:
        found.append(cond.credentials_refused(str(failure.get("reason") or ""), str(failure.get("message", ""))))
        if failure.get("reason") == Reason.AUTH_SERVER_CHANGED:
            found.append(cond.auth_server_changed_for_preset(str(failure.get("message", ""))))
    discovery = None
    if state.discovery is not None:
        discovery = DiscoveryStatus.model_validate(state.discovery)
        mode = state.discovery.get("recommendedAuthMode")
        requires = state.discovery.get("requiresAuth")
        found.append(cond.discovered(f"requiresAuth={str(requires).lower()}, recommendedAuthMode={mode}"))
    else:
        found.append(cond.discovery_failed(str(last.get("message") or "no answer")))
    latest = snapshots[0] if snapshots else None
    tools = None
    if latest is not None:
        tools = _tools_section(record, latest, changes, next_probe_at=next_probe_at)
    # The standing changes, not this probe's: a probe that listed nothing keeps them, and so does the status.
    risk = list(state.tool_risk)
    if risk:
        found.append(cond.tool_risk_changed(changes_text({**changes, "risk": risk})))
    else:
        found.append(cond.tools_drifted(changes_text(changes)) if _drifted(changes) else cond.tools_unchanged())
    if not last.get("ok", False):
        error_class = str(last.get("errorClass") or "transport")
        hint = str(last.get("hint") or HINTS.get(error_class, ""))
        message = f"{error_class} error: {last.get('message', '')}" + (f" ({hint})" if hint else "")
        found.append(cond.probe_failed(error_class, message))
    elif state.blocked_reason:
        found.append(cond.tools_not_approved(state.blocked_reason))
    elif risk:
        found.append(cond.tool_risk_not_ready(risk_message(risk)))
    elif latest is not None:
        found.append(cond.connected(len(latest.tools)))
    if failure:
        found.append(cond.credential_unusable(str(failure.get("message", ""))))
    return ProbeSections(
        discovery=discovery,
        last_test=LastTest.model_validate(last) if last else None,
        tools=tools,
        credentials=minted or None,
        conditions=found,
    )


def _drifted(changes: Mapping[str, Sequence[str]]) -> bool:
    return any(changes.values()) if changes else False


def _tools_section(
    record: ServerRecord,
    latest: ToolSnapshotRecord,
    changes: Mapping[str, list[str]],
    *,
    next_probe_at: dt.datetime | None,
) -> ToolSnapshotStatus:
    names = sorted(tool.name for tool in latest.tools)
    exposed = filter_tool_names(names, allow=record.tools_allow, deny=record.tools_deny)
    fields: dict[str, Any] = {
        "count": len(names),
        "exposed": len(exposed),
        "hash": latest.hash,
        "names": names[:NAMES_IN_STATUS],
        "snapshot_at": latest.taken_at,
        "capabilities": list(latest.capabilities),
    }
    if latest.server_info:
        fields["server_info"] = ServerInfo.model_validate(latest.server_info)
    if latest.protocol_version is not None:
        fields["protocol_version"] = latest.protocol_version
    if latest.cache_scope is not None:
        fields["cache_scope"] = latest.cache_scope
        if latest.ttl_ms is not None:
            fields["ttl_ms"] = latest.ttl_ms
    if latest.cache_scope == "private":
        # Another identity (a member, another connection) may be shown other tools: say whose list this is.
        fields["view_of"] = discovery_identity(record)
    if next_probe_at is not None:
        fields["next_probe_at"] = next_probe_at
    if changes:
        fields["changes"] = ToolChanges.model_validate(changes)
    if record.tool_policy == "Pin" and latest.hash != record.approved_hash:
        fields["hash_to_approve"] = latest.hash
    return ToolSnapshotStatus(**fields)
