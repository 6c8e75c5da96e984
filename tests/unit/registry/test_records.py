"""Record content and hashes: a field added to a kind must not rewrite every row written before it existed."""

from __future__ import annotations

import dataclasses

from reconciler.registry.conversion import tools_json, tools_of
from reconciler.registry.records import (
    RECORD_TYPES,
    BindingRecord,
    BoundServerRecord,
    HeaderRecord,
    Ownership,
    ServerRecord,
    SourceRef,
)

BOUND = (BoundServerRecord(server="crm"),)


def test_a_binding_for_every_agent_hashes_as_before_agents_existed() -> None:
    everyone = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND)

    assert "agents" not in everyone.content()
    # The hash this binding had before bindings could name agents (computed with that version of the record).
    assert everyone.content_hash() == "sha256:dbe63acfd8a31690a0b8c3dbebb4fcf1db43ed0afa50580c844cf26a20d28494"


def test_assigned_agents_are_content() -> None:
    everyone = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND)
    tutor = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND, agents=("tutor",))

    assert tutor.content()["agents"] == ["tutor"]
    assert tutor.content_hash() != everyone.content_hash()


def test_a_snapshot_stored_before_hints_keeps_its_destructive_verdict() -> None:
    """Snapshots stored only a `destructive` flag (defaults applied) before the hints themselves were kept."""
    stored = [
        {"name": "delete_city", "input_schema": {}, "destructive": True},
        {"name": "add_note", "input_schema": {}, "destructive": False},
        {"name": "plain", "input_schema": {}},
        {"name": "lookup", "input_schema": {}, "annotations": {"readOnlyHint": True}},
    ]

    tools = {tool.name: tool for tool in tools_of(stored)}

    assert {name: tool.destructive for name, tool in tools.items()} == {
        "delete_city": True,
        "add_note": False,
        "plain": True,
        "lookup": False,
    }
    assert "destructive" not in tools_json(tuple(tools.values()))[0]
    assert tools_of(tools_json(tuple(tools.values()))) == tuple(tools.values())
    assert [tool.destructive for tool in tools_of(tools_json(tuple(tools.values())))] == [True, False, True, False]


def test_owning_or_numbering_a_row_copies_it_as_dataclasses_replace_would() -> None:
    """`owned` and `with_row_id` copy the record's attributes instead of running `__init__` again: the same
    record, provided no record type validates or derives anything in `__post_init__`."""
    server = ServerRecord(tenant="acme", name="crm", url="https://crm.example/mcp", headers=(HeaderRecord("a", "b"),))
    ownership = Ownership(manager="m", source=SourceRef("MCPServer", "acme", "crm"), spec_hash=server.content_hash())

    owned = server.owned(ownership)
    numbered = owned.with_row_id(7)

    assert owned == dataclasses.replace(server, ownership=ownership) and owned.ownership == ownership
    assert numbered.row_id == 7 and numbered.ownership == ownership and server.row_id is None
    replaced = dataclasses.replace(owned, row_id=7)
    assert all(getattr(numbered, f.name) == getattr(replaced, f.name) for f in dataclasses.fields(ServerRecord))
    assert numbered.__dict__["_hash"] == server.content_hash()  # carried, not computed again
    assert not any(hasattr(record_type, "__post_init__") for record_type in RECORD_TYPES.values())
