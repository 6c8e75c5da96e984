"""A template binding's word on `tools.readOnly`: from which of its servers it admits read-only tools, and why it
admits none from the others.

Pure; called by the report step with the binding's row and the rows and latest snapshots of the servers it binds.
The MCP specification says annotations from untrusted servers must not be trusted, so the binding honours
`readOnlyHint` only for a server whose tool set is pinned and approved; the runtime applies the same rule when it
resolves (`runtime/deciding.py`), and this says it in the binding's Ready message, where an administrator looks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.api.binding import READ_ONLY_TRUST
from reconciler.engine.statuses import conditions as cond
from reconciler.registry.records import BindingRecord, ServerRecord, ToolSnapshotRecord


def untrusted_reason(
    server: ServerRecord | None, snapshots: Sequence[ToolSnapshotRecord], tool_risk: Sequence[str] = ()
) -> str | None:
    """Why a read-only binding admits no tool of this server, or None when it honours the server's hints
    (`tool_risk`: the high-severity tool changes standing in its probe state)."""
    if server is None:
        return "the server is not in the registry"
    if server.tool_policy != "Pin":
        return f"not pinned (spec.tools.policy: {server.tool_policy})"
    if server.approved_hash is None:
        return "pinned without an approvedHash"
    if not snapshots:
        return "no tool snapshot yet to compare with the approvedHash"
    if snapshots[0].hash != server.approved_hash:
        return f"its latest tool snapshot {snapshots[0].hash} is not the approved {server.approved_hash}"
    if tool_risk:
        return f"its tools changed risk ({'; '.join(tool_risk)})"
    return None


def read_only_conditions(
    binding: BindingRecord,
    *,
    servers: Mapping[str, ServerRecord],
    snapshots: Mapping[str, Sequence[ToolSnapshotRecord]],
    tool_risk: Mapping[str, Sequence[str]] | None = None,
) -> list[cond.ConditionDict]:
    """Ready with a message naming what `readOnly` admits from each server it applies to; [] without `readOnly`.

    Ready stays True: admitting nothing is the binding working as asked (fail closed), not a fault of the binding.
    """
    read_only = [bound.server for bound in binding.servers if bound.tools_read_only]
    if not read_only:
        return []
    trusted: list[str] = []
    refused: list[str] = []
    for name in read_only:
        reason = untrusted_reason(servers.get(name), snapshots.get(name, ()), (tool_risk or {}).get(name, ()))
        if reason is None:
            trusted.append(name)
        else:
            refused.append(f"{name} ({reason})")
    parts = []
    if trusted:
        parts.append(f"readOnly admits the read-only tools of {', '.join(trusted)}")
    if refused:
        parts.append(f"readOnly admits no tools from {', '.join(refused)}: {READ_ONLY_TRUST}")
    return [cond.ready("; ".join(parts))]
