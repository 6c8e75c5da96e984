"""Org-level visibility, table-driven: registry rows + connected-member counts → per-member coverage and warnings."""

from __future__ import annotations

import pytest

from reconciler.registry.records import ConnectionRecord, Record, ServerRecord, TenantRecord
from reconciler.runtime.membership import MemberCoverage, coverage_of_objects, plan_member_coverage

TENANTS = {"acme": TenantRecord(slug="acme", namespace="acme-prod")}


def server(name: str = "plane", **fields: object) -> ServerRecord:
    return ServerRecord(tenant="acme", name=name, url=f"https://{name}.example/mcp", **fields)  # type: ignore[arg-type]


def connection(name: str = "plane-members", *, mode: str = "perMember", active: bool = True) -> ConnectionRecord:
    return ConnectionRecord(tenant="acme", name=name, server="plane", credential_mode=mode, active=active)


CASES: dict[str, tuple[tuple[Record, ...], dict[tuple[str, str, str | None], int], list[tuple[str | None, int]]]] = {
    "per-member/nobody": ((server(), connection()), {}, [("plane-members", 0)]),
    "per-member/two-members": (
        (server(), connection()),
        {("acme", "plane", "plane-members"): 2},
        [("plane-members", 2)],
    ),
    "per-member/inactive": ((server(), connection(active=False)), {}, []),
    "per-member/server-disabled": ((server(enabled=False), connection()), {}, []),
    "shared": ((server(), connection(mode="shared")), {}, []),
    "authorization-code/without-connections": (
        (server(auth_type="oauthAuthorizationCode"),),
        {("acme", "plane", None): 1},
        [(None, 1)],
    ),
    "authorization-code/with-connections-counts-them": (
        (server(auth_type="oauthAuthorizationCode"), connection()),
        {("acme", "plane", None): 3},
        [("plane-members", 0)],
    ),
    "bearer-without-connections": ((server(auth_type="bearer"),), {}, []),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_coverage_matrix(
    case: tuple[tuple[Record, ...], dict[tuple[str, str, str | None], int], list[tuple[str | None, int]]],
) -> None:
    rows, counts, expected = case

    coverage = plan_member_coverage(rows, counts, tenants=TENANTS)

    assert [(entry.connection, entry.connected_members) for entry in coverage] == expected
    for entry in coverage:
        assert entry.namespace == "acme-prod"
        assert (entry.warning() is None) is (entry.connected_members > 0)


def test_warnings_name_the_object_and_what_agents_get() -> None:
    nobody = MemberCoverage("acme", "acme-prod", "plane", "plane-members", 0)
    unauthorized = MemberCoverage("acme", "acme-prod", "notion", None, 0)

    assert nobody.warning() == (
        "MCPConnection acme-prod/plane-members (server plane) is perMember and no member has connected it yet: "
        "every agent gets needs_connection for it"
    )
    assert unauthorized.warning() == (
        "MCPServer acme-prod/notion runs as each member's own account and no member has connected it yet: "
        "every agent gets needs_connection for it"
    )


def test_a_connection_and_its_server_both_see_the_entry() -> None:
    entry = MemberCoverage("acme", "acme-prod", "plane", "plane-members", 0)
    listed = [
        {"kind": kind, "metadata": {"namespace": "acme-prod", "name": name}}
        for kind, name in (("MCPServer", "plane"), ("MCPConnection", "plane-members"), ("MCPServer", "other"))
    ]

    assert coverage_of_objects([entry], listed) == {
        ("MCPServer", "acme-prod", "plane"): [entry],
        ("MCPConnection", "acme-prod", "plane-members"): [entry],
    }
    assert coverage_of_objects([entry], listed[2:]) == {}
