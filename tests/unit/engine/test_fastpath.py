"""Which tenants a resync reads once the change stamp moved: those stamped later, and those gone; else all."""

from __future__ import annotations

import pytest

from reconciler.api import MCPServer, ObjectMeta
from reconciler.api.server import MCPServerSpec
from reconciler.engine.fastpath import restrict_to_tenants, tenants_to_read
from reconciler.engine.inputs import DesiredInput, Tenant


@pytest.mark.parametrize(
    ("stamps", "wanted", "expected"),
    [
        ({"a": 3, "b": 7, "c": 5}, {"a", "b", "c"}, frozenset({"b"})),  # written after the marker's stamp 5
        ({"a": 3, "b": 5}, {"a", "b"}, None),  # the stamp moved, yet no tenant did: read everything
        ({"a": 3}, {"a", "gone"}, frozenset({"gone"})),  # deleted with all its rows
        ({"a": 3, "stranger": 9}, {"a"}, frozenset({"stranger"})),  # not ours, but our rows may be there: prune
        ({}, set(), None),
    ],
)
def test_tenants_to_read(stamps: dict[str, int], wanted: set[str], expected: frozenset[str] | None) -> None:
    assert tenants_to_read(stamps, since=5, wanted=wanted) == expected


def test_restricting_the_input_keeps_the_objects_of_those_tenants_by_slug() -> None:
    spec = MCPServerSpec(url="https://x.example.com/mcp")
    desired = DesiredInput(
        resources=[MCPServer(metadata=ObjectMeta(name="s", namespace=ns), spec=spec) for ns in ("ns-a", "ns-b", "c")],
        tenants={"ns-a": Tenant(namespace="ns-a", slug="a"), "ns-b": Tenant(namespace="ns-b", slug="b")},
    )
    part, skipped = restrict_to_tenants(desired, {"a", "c"})
    assert [r.metadata.namespace for r in part.resources] == ["ns-a", "c"] and skipped == 1
    assert part.tenants == desired.tenants and len(desired.resources) == 3
