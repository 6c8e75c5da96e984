"""What a plan changes for agents: per template and per grant, the tools gained and lost, from the tool snapshots.

`cli.py`'s `plan` calls `tool_impact` after planning; `presenting.py` renders the result (text, JSON, markdown).
`plan_tool_impact` is pure: the rows before (observed) and after (the plan applied to them), and each server's
latest snapshot. A tool is named `<server>:<tool>`. A template gets the tools of every server its bindings for
all agents bind, through the server's and the binding's filters; an agent a binding names (`spec.agents`) gets
those plus the tools of the bindings naming it, which is what resolution hands that agent, so each such agent
has a section of its own. A grant opens the tools of its target server (or the server of its target connection).
A server with no snapshot yet, or whose URL the plan changes, is "unknown until probed": its tools cannot be
counted either way. Destructive tools (from their annotations) are named so a reviewer sees them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.engine.planning import Plan, Verb
from reconciler.probe import filter_tool_names
from reconciler.registry.records import (
    BindingRecord,
    ConnectionRecord,
    GrantRecord,
    Record,
    RowKey,
    ServerRecord,
    ToolSnapshotRecord,
)

if TYPE_CHECKING:
    from reconciler.registry import Registry

APPLYING_VERBS = frozenset({Verb.CREATE, Verb.UPDATE, Verb.REPAIR, Verb.ADOPT})
REMOVING_VERBS = frozenset({Verb.DELETE})
"""An orphaned row stays in the registry, so its tools stay too."""
Snapshots = Mapping[tuple[str, str], ToolSnapshotRecord]


@dataclass(frozen=True)
class ToolDelta:
    """Tools one template or grant gains and loses; `unknown` names servers whose tools are not known yet."""

    tenant: str
    kind: str
    """`template`, `agent` or `grant`."""
    name: str
    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    """For a grant: whom it names (`Member alice`, `Team support`, `Organization`); for an agent: its template."""

    @property
    def empty(self) -> bool:
        return not (self.gained or self.lost or self.unknown)


@dataclass(frozen=True)
class ToolImpact:
    deltas: tuple[ToolDelta, ...] = ()
    destructive: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """(tenant, `server:tool`) of tools whose annotations say they are destructive."""

    @property
    def empty(self) -> bool:
        return not self.deltas

    def is_destructive(self, tenant: str, tool: str) -> bool:
        return (tenant, tool) in self.destructive


def rows_after(plan: Plan, before: Mapping[RowKey, Record]) -> dict[RowKey, Record]:
    """The rows as they would be once the plan is applied."""
    after = dict(before)
    for action in plan.actions:
        if action.verb in APPLYING_VERBS and action.desired is not None:
            after[action.key] = action.desired
        elif action.verb in REMOVING_VERBS:
            after.pop(action.key, None)
    return after


def touched_tenants(plan: Plan) -> set[str]:
    return {action.key[1] for action in plan.actions if action.writes}


def plan_tool_impact(plan: Plan, before: Mapping[RowKey, Record], snapshots: Snapshots) -> ToolImpact:
    """Per template and per grant of every tenant the plan writes to: the tools gained, lost, not yet known."""
    after = rows_after(plan, before)
    deltas: list[ToolDelta] = []
    for tenant in sorted(touched_tenants(plan)):
        old, new = _tenant_rows(before, tenant), _tenant_rows(after, tenant)
        moved = {
            name for name, server in new.servers.items() if name in old.servers and old.servers[name].url != server.url
        }
        for template in sorted(set(old.templates()) | set(new.templates())):
            was = old.template_tools(template, snapshots, moved=set())
            will = new.template_tools(template, snapshots, moved=moved)
            deltas.append(_delta(tenant, "template", template, was, will))
            for agent in sorted(old.agents_of(template) | new.agents_of(template)):
                was = old.template_tools(template, snapshots, moved=set(), agent=agent)
                will = new.template_tools(template, snapshots, moved=moved, agent=agent)
                deltas.append(_delta(tenant, "agent", agent, was, will, subjects=(f"template {template}",)))
        for grant in sorted(set(old.grants) | set(new.grants)):
            was = old.grant_tools(grant, snapshots, moved=set())
            will = new.grant_tools(grant, snapshots, moved=moved)
            record = new.grants.get(grant) or old.grants[grant]
            subjects = tuple(s.kind if s.name is None else f"{s.kind} {s.name}" for s in record.subjects)
            deltas.append(_delta(tenant, "grant", grant, was, will, subjects=subjects))
    destructive = frozenset(
        (tenant, f"{server}:{tool.name}")
        for (tenant, server), snapshot in snapshots.items()
        for tool in snapshot.tools
        if tool.destructive
    )
    return ToolImpact(deltas=tuple(delta for delta in deltas if not delta.empty), destructive=destructive)


@dataclass(frozen=True)
class _Tools:
    names: frozenset[str] = frozenset()
    unknown: frozenset[str] = frozenset()


def _delta(
    tenant: str, kind: str, name: str, was: _Tools, will: _Tools, *, subjects: tuple[str, ...] = ()
) -> ToolDelta:
    return ToolDelta(
        tenant=tenant,
        kind=kind,
        name=name,
        gained=tuple(sorted(will.names - was.names)),
        lost=tuple(sorted(was.names - will.names)),
        unknown=tuple(sorted(will.unknown - was.unknown)),
        subjects=subjects,
    )


@dataclass
class _TenantRows:
    tenant: str
    servers: dict[str, ServerRecord] = field(default_factory=dict)
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    grants: dict[str, GrantRecord] = field(default_factory=dict)
    bindings: list[BindingRecord] = field(default_factory=list)

    def templates(self) -> set[str]:
        return {binding.template for binding in self.bindings}

    def server_tools(
        self,
        name: str,
        snapshots: Snapshots,
        *,
        moved: Collection[str],
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        read_only: bool = False,
    ) -> _Tools:
        server = self.servers.get(name)
        if server is None or not server.enabled:
            return _Tools()
        snapshot = snapshots.get((self.tenant, name))
        if snapshot is None or name in moved:
            return _Tools(unknown=frozenset({name}))
        exposed = filter_tool_names(
            [tool.name for tool in snapshot.tools], allow=server.tools_allow, deny=server.tools_deny
        )
        narrowed = filter_tool_names(exposed, allow=tuple(allow), deny=tuple(deny))
        if read_only:
            # As resolution decides: read-only hints count only from a pinned, approved snapshot; else no tool.
            approved = server.tool_policy == "Pin" and server.approved_hash == snapshot.hash
            readers = {tool.name for tool in snapshot.tools if tool.read_only} if approved else set()
            narrowed = [tool for tool in narrowed if tool in readers]
        return _Tools(names=frozenset(f"{name}:{tool}" for tool in narrowed))

    def agents_of(self, template: str) -> set[str]:
        """The agents of `template` some binding assigns servers to directly."""
        return {agent for binding in self.bindings if binding.template == template for agent in binding.agents}

    def template_tools(
        self, template: str, snapshots: Snapshots, *, moved: Collection[str], agent: str | None = None
    ) -> _Tools:
        """What every agent of `template` gets (bindings for all its agents), and with `agent` what that agent gets
        (those and the bindings naming it), as resolution decides."""
        names: set[str] = set()
        unknown: set[str] = set()
        for binding in self.bindings:
            if binding.template != template or (binding.agents and agent not in binding.agents):
                continue
            for bound in binding.servers:
                tools = self.server_tools(
                    bound.server,
                    snapshots,
                    moved=moved,
                    allow=bound.tools_allow,
                    deny=bound.tools_deny,
                    read_only=bound.tools_read_only,
                )
                names |= tools.names
                unknown |= tools.unknown
        return _Tools(frozenset(names), frozenset(unknown))

    def grant_tools(self, grant: str, snapshots: Snapshots, *, moved: Collection[str]) -> _Tools:
        record = self.grants.get(grant)
        if record is None:
            return _Tools()
        server = record.target_server
        if server is None and record.target_connection is not None:
            connection = self.connections.get(record.target_connection)
            server = connection.server if connection is not None else None
        return _Tools() if server is None else self.server_tools(server, snapshots, moved=moved)


def _tenant_rows(rows: Mapping[RowKey, Record], tenant: str) -> _TenantRows:
    found = _TenantRows(tenant)
    for (_table, slug, name), record in rows.items():
        if slug != tenant:
            continue
        if isinstance(record, ServerRecord):
            found.servers[name] = record
        elif isinstance(record, ConnectionRecord):
            found.connections[name] = record
        elif isinstance(record, GrantRecord):
            found.grants[name] = record
        elif isinstance(record, BindingRecord):
            found.bindings.append(record)
    return found


def tool_impact(registry: Registry, plan: Plan) -> ToolImpact:
    """Read the rows of the tenants the plan writes to and the latest snapshots, then `plan_tool_impact`."""
    tenants = touched_tenants(plan)
    if not tenants:
        return ToolImpact()
    before = registry.fetch_state(tenants=tenants).rows
    snapshots = {
        (row.tenant.slug, row.server.name): row.snapshot
        for row in registry.fetch_catalog()
        if row.snapshot is not None and row.tenant.slug in tenants
    }
    return plan_tool_impact(plan, before, snapshots)
