"""Org-level visibility of per-member credentials: which per-member connections no member has connected yet.

Called by the CLI's `get` (a warning under the table, `status.connectedMembers` in `-o json|yaml`) and by the
agent endpoint's `list_servers` (each server's `members`). A per-member connection (`credentialMode: perMember`)
and an `oauthAuthorizationCode` server without connections both run as each member's own account, so until one
member stores a token every agent gets `needs_connection` for it: the platforms warn about a predefined
connector nobody connected (Alloy), and so do we. `plan_member_coverage` is pure (rows + counts → coverage);
`fetch_member_coverage` reads the two it needs. The counts come from `user_tokens`, which runtimes write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.registry import Registry
from reconciler.registry.records import ConnectionRecord, Record, ServerRecord, TenantRecord

__all__ = ["MemberCoverage", "coverage_of_objects", "fetch_member_coverage", "plan_member_coverage"]

PER_MEMBER = "perMember"
MEMBER_AUTHORIZED = "oauthAuthorizationCode"


@dataclass(frozen=True)
class MemberCoverage:
    """How many members connected their own account through one per-member connection (or server, when
    `connection` is None: an authorization-code server with no connections of its own)."""

    tenant: str
    namespace: str
    server: str
    connection: str | None
    connected_members: int

    @property
    def nobody_connected(self) -> bool:
        return self.connected_members == 0

    def warning(self) -> str | None:
        """The org-level warning for a per-member credential nobody has connected yet; None otherwise."""
        if not self.nobody_connected:
            return None
        if self.connection is None:
            subject = f"MCPServer {self.namespace}/{self.server} runs as each member's own account"
        else:
            subject = f"MCPConnection {self.namespace}/{self.connection} (server {self.server}) is perMember"
        return f"{subject} and no member has connected it yet: every agent gets needs_connection for it"


def plan_member_coverage(
    rows: Iterable[Record],
    counts: Mapping[tuple[str, str, str | None], int],
    *,
    tenants: Mapping[str, TenantRecord],
) -> tuple[MemberCoverage, ...]:
    """One entry per active per-member connection and per connection-less authorization-code server, in key order.

    Inactive connections and disabled servers are left out: nobody is offered them, so nobody needs to connect.
    """
    records = list(rows)
    servers = {(r.tenant, r.name): r for r in records if isinstance(r, ServerRecord)}
    with_connections = {(r.tenant, r.server) for r in records if isinstance(r, ConnectionRecord)}
    found: list[MemberCoverage] = []
    for record in records:
        if isinstance(record, ConnectionRecord):
            server = servers.get((record.tenant, record.server))
            if record.credential_mode != PER_MEMBER or not record.active or (server and not server.enabled):
                continue
            key: tuple[str, str, str | None] = (record.tenant, record.server, record.name)
        elif isinstance(record, ServerRecord):
            if record.auth_type != MEMBER_AUTHORIZED or not record.enabled:
                continue
            if (record.tenant, record.name) in with_connections:
                continue
            key = (record.tenant, record.name, None)
        else:
            continue
        tenant = tenants.get(key[0])
        found.append(
            MemberCoverage(
                tenant=key[0],
                namespace=tenant.namespace if tenant else key[0],
                server=key[1],
                connection=key[2],
                connected_members=counts.get(key, 0),
            )
        )
    return tuple(sorted(found, key=lambda c: (c.tenant, c.server, c.connection or "")))


def fetch_member_coverage(registry: Registry, *, tenants: Collection[str] | None = None) -> tuple[MemberCoverage, ...]:
    """The coverage of every per-member credential of `tenants` (slugs; all tenants when None)."""
    state = registry.fetch_state(tenants=tenants)
    counts = registry.count_connected_members(tenants=tenants)
    return plan_member_coverage(state.rows.values(), counts, tenants=state.tenants)


def coverage_of_objects(
    coverage: Iterable[MemberCoverage], objects: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str, str], list[MemberCoverage]]:
    """The coverage each listed object concerns, by (kind, namespace, name): a connection its own entry, a server
    every entry of its per-member credentials. Objects with nothing per-member are absent."""
    wanted = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}
    found: dict[tuple[str, str, str], list[MemberCoverage]] = {}
    for entry in coverage:
        keys = [("MCPServer", entry.namespace, entry.server)]
        if entry.connection is not None:
            keys.append(("MCPConnection", entry.namespace, entry.connection))
        for key in keys:
            if key in wanted:
                found.setdefault(key, []).append(entry)
    return found
