"""Tool-risk drift: the changes between two tool lists that matter even when nobody pins the tool set.

Called by the engine when it records a probe (`engine/probing.py`), next to `listing.diff_tools`. Pure. Two
changes are high-severity under every tool policy, because each lets a server change what an agent may do while
the content hash an administrator approved still reads the same, or reads like harmless churn:

- a flip of `readOnlyHint` or `destructiveHint` (annotations are not part of the snapshot hash);
- a tool renamed with an identical description and input schema: the rug pull that defeats content-hash pinning
  by moving an approved definition under a new name, or a new definition under an approved one's.

The MCP defaults apply (`ToolRecord.read_only`, `ToolRecord.destructive`: the same rule `plan`'s impact uses).
`destructiveHint` is meaningful only for tools that are not read-only, so it is compared
only when the tool is writable before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.records import ToolRecord

__all__ = ["diff_tool_risk"]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _same_definition(one: ToolRecord, other: ToolRecord) -> bool:
    return one.description == other.description and one.input_schema == other.input_schema


def diff_tool_risk(old: Sequence[ToolRecord], new: Sequence[ToolRecord]) -> list[str]:
    """One line per high-severity change from `old` to `new`, each naming the tool(s); [] when there is none.

    Flipped hints come first (by tool name), then renames (by old name). A rename pairs a tool gone from the list
    with a new one of identical description and input schema; when several could pair, each is paired once, in
    name order, so the report is deterministic.
    """
    before = {tool.name: tool for tool in old}
    after = {tool.name: tool for tool in new}
    lines: list[str] = []
    for name in sorted(before.keys() & after.keys()):
        was, now = before[name], after[name]
        if was.read_only != now.read_only:
            lines.append(f"readOnlyHint of {name}: {_flag(was.read_only)} → {_flag(now.read_only)}")
        elif not now.read_only and was.destructive != now.destructive:
            lines.append(f"destructiveHint of {name}: {_flag(was.destructive)} → {_flag(now.destructive)}")
    added = sorted(after.keys() - before.keys())
    for name in sorted(before.keys() - after.keys()):
        match = next((candidate for candidate in added if _same_definition(before[name], after[candidate])), None)
        if match is not None:
            added.remove(match)
            lines.append(f"{name} renamed to {match} with an identical description and input schema")
    return lines
