"""Tool-risk drift (pure): which changes between two tool lists are high-severity under every tool policy."""

from __future__ import annotations

import pytest

from reconciler.probe import diff_tool_risk, snapshot_hash
from reconciler.records import ToolAnnotationHints, ToolRecord

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
OTHER_SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}}}


def tool(
    name: str,
    *,
    read_only: bool | None = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool | None = None,
    description: str = "Removes a city.",
    schema: dict[str, object] | None = None,
) -> ToolRecord:
    return ToolRecord(
        name=name,
        description=description,
        input_schema=dict(SCHEMA if schema is None else schema),
        annotations=ToolAnnotationHints(
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=open_world,
        ),
    )


CASES = {
    "unchanged": ([tool("a", read_only=True)], [tool("a", read_only=True)], []),
    "read-only flipped on": (
        [tool("delete_city", read_only=False)],
        [tool("delete_city", read_only=True)],
        ["readOnlyHint of delete_city: false → true"],
    ),
    "read-only flipped off": (
        [tool("get_city", read_only=True)],
        [tool("get_city")],
        ["readOnlyHint of get_city: true → false"],
    ),
    "hints appear: read-only stated where the default was writable": (
        [tool("a")],
        [tool("a", read_only=True)],
        ["readOnlyHint of a: false → true"],
    ),
    "destructive flipped off": (
        [tool("delete_city", destructive=True)],
        [tool("delete_city", destructive=False)],
        ["destructiveHint of delete_city: true → false"],
    ),
    "destructive stated false where the default was destructive": (
        [tool("delete_city")],
        [tool("delete_city", destructive=False)],
        ["destructiveHint of delete_city: true → false"],
    ),
    "destructive stated true, the default: no change": ([tool("a")], [tool("a", destructive=True)], []),
    "destructive moves on a read-only tool: meaningless, not reported": (
        [tool("a", read_only=True, destructive=True)],
        [tool("a", read_only=True, destructive=False)],
        [],
    ),
    "idempotent and open-world hints are kept, not high-severity": (
        [tool("a", idempotent=False, open_world=True)],
        [tool("a", idempotent=True, open_world=False)],
        [],
    ),
    "renamed with identical description and schema": (
        [tool("delete_city"), tool("get_city", read_only=True, description="Reads.")],
        [tool("remove_town"), tool("get_city", read_only=True, description="Reads.")],
        ["delete_city renamed to remove_town with an identical description and input schema"],
    ),
    "renamed and flipped in one listing": (
        [tool("delete_city"), tool("get_city", read_only=True, description="Reads.")],
        [tool("remove_town"), tool("get_city", description="Reads.")],
        [
            "readOnlyHint of get_city: true → false",
            "delete_city renamed to remove_town with an identical description and input schema",
        ],
    ),
    "a new name with another description is an addition, not a rename": (
        [tool("delete_city")],
        [tool("remove_town", description="Removes a town.")],
        [],
    ),
    "a new name with another schema is an addition, not a rename": (
        [tool("delete_city")],
        [tool("remove_town", schema=OTHER_SCHEMA)],
        [],
    ),
    "two look-alikes pair once each, in name order": (
        [tool("a_old"), tool("b_old")],
        [tool("a_new"), tool("b_new")],
        [
            "a_old renamed to a_new with an identical description and input schema",
            "b_old renamed to b_new with an identical description and input schema",
        ],
    ),
    "a copy added beside the original is not a rename": ([tool("a")], [tool("a"), tool("b")], []),
    "first listing: nothing to compare": ([], [tool("a")], []),
}


@pytest.mark.parametrize(("old", "new", "expected"), CASES.values(), ids=CASES.keys())
def test_high_severity_changes(old: list[ToolRecord], new: list[ToolRecord], expected: list[str]) -> None:
    assert diff_tool_risk(old, new) == expected


def test_a_flip_leaves_the_snapshot_hash_alone() -> None:
    """Why the check exists: pinning by content hash cannot see a flipped hint."""
    before, after = [tool("delete_city", read_only=False)], [tool("delete_city", read_only=True)]
    assert snapshot_hash(before) == snapshot_hash(after)
    assert diff_tool_risk(before, after)


def test_hints_round_trip_as_sent() -> None:
    hints = ToolAnnotationHints(
        read_only_hint=False, destructive_hint=None, idempotent_hint=True, open_world_hint=False
    )
    assert hints.as_json() == {"readOnlyHint": False, "idempotentHint": True, "openWorldHint": False}
    assert ToolAnnotationHints.from_json(hints.as_json()) == hints
    assert ToolAnnotationHints.from_json(None) == ToolAnnotationHints()
    assert ToolAnnotationHints.from_json({"readOnlyHint": "yes"}) == ToolAnnotationHints(), "not a boolean: not sent"
