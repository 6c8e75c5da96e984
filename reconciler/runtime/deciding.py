"""The pure decision behind a resolution: registry rows + who is calling → per-server state, credential, tools.

Called by `resolving.resolve` between reading the registry and reading secret values; no I/O, so the whole
decision matrix (scopes, grants, credential modes, pin states, featured fallback) is tested table-driven.
The order of decisions for each offered server, and the explanation line each one leaves:

1. **binding** — the template's bindings offer the server (or, without a template, every tenant server);
   a binding that names `agents` offers it only to those agents of the template (assignment to one agent);
   a disabled server, or one assigned to other agents only, is dropped here (a note, not a server).
2. **grant** — an explicit grant to the member, one of their teams or the organization, on the server or on
   one of its connections. A connection grant gives access through that connection only. No grant: forbidden.
3. **tools** — a server whose probe state is blocked, or whose policy is Pin with a latest snapshot other
   than the approved hash, is blocked whatever the credential. A binding with `tools.readOnly` admits the
   tools whose `readOnlyHint` is true, and only from a pinned, approved server whose last probe found no
   high-severity tool change; from any other server it admits none (fail closed), and says why.
4. **connection** — a binding's pinned connection wins; otherwise the first tier with an applicable active
   connection decides: the member's own (user scope, newest first, or their own token for the server),
   the agent's, the platform's (usable ones first). Last comes the server's own credential, offered when the
   server is featured (ibl.ai's fallback) or declares no connections at all (a ThinkWork-style tenant key).
   A per-member connection the member has not connected yet gives `needs_connection`, never silence; a
   member token past its expiry that cannot be refreshed gives `needs_reauthorization`.
   This step lives in `choosing.py`.
5. **state** — ready, needs_connection, needs_reauthorization, blocked or forbidden, with the reason and what
   to do.

Header values are not read here: each header is a `HeaderSource` (a literal or a secret reference), so a
decision never holds a secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.api.binding import READ_ONLY_TRUST
from reconciler.probe import filter_tool_names
from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry.lookups import BoundServerRow, GrantMatch, ResolutionInputs
from reconciler.registry.records import ConnectionRecord, ServerRecord
from reconciler.runtime.choosing import (
    Caller,
    Credential,
    CredentialIndex,
    HeaderSource,
    choose_credential,
    merged_headers,
    server_credential,
)
from reconciler.runtime.resolution import (
    TOOL_NAMESPACE_PREFIX,
    CredentialScope,
    ResolvedServer,
    ServerState,
    ToolNamespace,
)

__all__ = ["Caller", "Decisions", "HeaderSource", "ServerDecision", "decide", "read_only_distrust"]

_WAITING_ON_MEMBER = (ServerState.NEEDS_CONNECTION, ServerState.NEEDS_REAUTHORIZATION)
"""States whose tools are still listed: the member can act, and should see what acting gets them."""


@dataclass(frozen=True)
class ServerDecision:
    """Everything decided about one server, before secret values are read."""

    server: ServerRecord
    state: ServerState
    connection: str | None = None
    scope: CredentialScope | None = None
    headers: tuple[HeaderSource, ...] = ()
    tools: tuple[str, ...] = ()
    tool_snapshot: str | None = None
    reason: str | None = None
    action: str | None = None
    explain: tuple[str, ...] = ()
    connect_member: str | None = None
    """Whose own login on this server would make it ready (the connect flow can start it); None when the fix is
    someone else's (an administrator, the organization's connection, the platform's server)."""
    connect_connection: str | None = None
    """The `perMember` connection that login goes through; None: the server itself."""

    def resolved(self, headers: dict[str, str]) -> ResolvedServer:
        """The decision as a caller gets it, with header values rendered by the caller (`resolve` reads the
        secrets, masked or not; an export writes placeholders)."""
        return ResolvedServer(
            name=self.server.name,
            url=self.server.url,
            transport=self.server.transport,
            state=self.state,
            connection=self.connection,
            scope=self.scope,
            headers=headers,
            tools=self.tools,
            tool_snapshot=self.tool_snapshot,
            reason=self.reason,
            action=self.action,
            explain=self.explain,
        )


@dataclass(frozen=True)
class Decisions:
    servers: tuple[ServerDecision, ...]
    notes: tuple[str, ...] = ()


def decide(
    inputs: ResolutionInputs,
    *,
    caller: Caller,
    template: str | None,
    namespace_tools: bool | ToolNamespace,
    now: dt.datetime,
    platform: ResolutionInputs | None = None,
) -> Decisions:
    """Per-server decisions, in binding order (a server bound twice keeps its first binding), then the platform
    tenant's featured servers (`platform`: its rows, read for no member), the last fallback of every tenant.

    `namespace_tools` names tools `mcp:<server>:<tool>` (`True` or `"server"`) or `mcp:<connection>:<tool>`
    (`"connection"`, once the connection is chosen). `now` is when members' tokens are judged to have expired:
    injected, so the decision stays a pure function."""
    by_connection = namespace_tools == "connection"
    decisions = _decide_all(
        inputs,
        caller=caller,
        template=template,
        namespace_tools=namespace_tools in (True, "server"),
        now=now,
        platform=platform,
    )
    if not by_connection:
        return decisions
    return dataclasses.replace(decisions, servers=tuple(_named_by_connection(d) for d in decisions.servers))


def _named_by_connection(decision: ServerDecision) -> ServerDecision:
    """OpenWork's naming: each tool under the connection the caller goes through (the server's own name when the
    server is reached with its own credential), so two connections to one server never share a tool name."""
    owner = decision.connection or decision.server.name
    return dataclasses.replace(
        decision, tools=tuple(f"{TOOL_NAMESPACE_PREFIX}:{owner}:{name}" for name in decision.tools)
    )


def _decide_all(
    inputs: ResolutionInputs,
    *,
    caller: Caller,
    template: str | None,
    namespace_tools: bool,
    now: dt.datetime,
    platform: ResolutionInputs | None,
) -> Decisions:
    index = _index(inputs, caller, now=now)
    notes: list[str] = []
    if template is not None and not inputs.bindings:
        notes.append(f"no MCPTemplateBinding in tenant {inputs.tenant.slug} binds template {template}")
    decisions: list[ServerDecision] = []
    seen: dict[str, str | None] = {}
    for row in inputs.bound:
        name = row.server.name
        if row.binding_agents and caller.agent not in row.binding_agents:
            whom = f"not agent {caller.agent}" if caller.agent else "and no agent was given"
            notes.append(
                f"{name}: binding {row.binding} assigns it to agent {', '.join(row.binding_agents)} only, {whom}"
            )
            continue
        if name in seen:
            notes.append(f"{name}: also bound by binding {row.binding}; binding {seen[name]} listed it first and wins")
            continue
        seen[name] = row.binding
        if not row.server.enabled:
            notes.append(f"{name}: disabled (spec.enabled: false), not offered")
            continue
        decisions.append(_decide_server(row, index, caller=caller, namespace_tools=namespace_tools))
    if platform is not None and platform.tenant.slug != inputs.tenant.slug:
        for row in platform.bound:
            if not (row.server.featured and row.server.enabled):
                continue
            if row.server.name in seen:
                notes.append(
                    f"{row.server.name}: the platform's featured {row.server.name} is not offered; "
                    f"tenant {inputs.tenant.slug}'s own {row.server.name} wins"
                )
                continue
            decisions.append(_decide_platform_server(row, platform, caller=caller, namespace_tools=namespace_tools))
    return Decisions(servers=tuple(decisions), notes=tuple(notes))


def _decide_platform_server(
    row: BoundServerRow, platform: ResolutionInputs, *, caller: Caller, namespace_tools: bool
) -> ServerDecision:
    """A featured server of the platform tenant, offered to another tenant's caller with its own credential only.

    In the platform namespace an Organization grant means every tenant's organization; Member and Team subjects
    there name the platform tenant's own members and teams, so they open nothing to another tenant. No
    connection, token or grant of the caller's tenant is ever consulted, and nothing of theirs is sent.
    """
    server = row.server
    where = f"platform tenant {platform.tenant.slug} (namespace {platform.tenant.namespace})"
    lines = [f"binding: featured by the {where}, offered to every tenant as the last fallback"]
    grants = [
        grant
        for grant in platform.grants
        if grant.target_server == server.name
        and grant.target_connection is None
        and grant.subject.kind == "Organization"
    ]
    if not grants:
        reason = (
            f"no grant in the platform namespace {platform.tenant.namespace} names the Organization on {server.name}"
        )
        lines.extend((f"grant: none — {reason}", "state: forbidden"))
        return ServerDecision(
            server=server,
            state=ServerState.FORBIDDEN,
            reason=reason,
            action=(
                f"ask a platform administrator for an MCPAccessGrant naming the Organization on {server.name} "
                f"in namespace {platform.tenant.namespace}"
            ),
            explain=tuple(lines),
        )
    lines.append(
        "grant: " + _grant_text(grants, target=f"server {server.name}") + " (in the platform namespace: every tenant)"
    )
    tools = _exposed_tools(row, namespace_tools=namespace_tools)
    lines.append(_tools_line(row, tools))
    blocked = _tool_block(row)
    if blocked is not None:
        return _blocked_by_tools(server, blocked, lines)
    credential = server_credential(
        server,
        scope=CredentialScope.FEATURED,
        why="the platform's featured server, reached with its own credential (never a tenant's)",
        caller=caller,
        lines=(),
    )
    # A member's login here would be kept under the platform tenant, where no decision for them ever looks.
    credential = dataclasses.replace(credential, connect_member=None, connect_connection=None)
    lines.extend(credential.lines)
    return _finished(row, credential, lines=lines, tools=tools)


def _index(inputs: ResolutionInputs, caller: Caller, *, now: dt.datetime) -> CredentialIndex:
    index = CredentialIndex(now=now)
    for connection in inputs.connections:
        index.connections[connection.server].append(connection)
    for grant in inputs.grants:
        if grant.target_server is not None:
            index.server_grants[grant.target_server].append(grant)
        if grant.target_connection is not None:
            index.connection_grants[grant.target_connection].append(grant)
    for token in inputs.tokens:  # oldest first, so the newest token of a (server, connection) pair wins
        if token.user_id == caller.user:
            index.tokens[(token.server, token.connection)] = token
        elif token.user_id == ORGANIZATION_MEMBER:
            index.organization_tokens[(token.server, token.connection)] = token
    return index


def _decide_server(
    row: BoundServerRow, index: CredentialIndex, *, caller: Caller, namespace_tools: bool
) -> ServerDecision:
    server = row.server
    lines = [_offer_line(row)]
    connections = index.connections.get(server.name, [])
    server_grants = index.server_grants.get(server.name, [])
    granted_connections = {
        connection.name: index.connection_grants[connection.name]
        for connection in connections
        if index.connection_grants.get(connection.name)
    }

    # 2. grant
    candidates, grant_lines = _access(row, connections, server_grants, granted_connections)
    lines.extend(grant_lines)
    if candidates is None:
        reason = f"no grant names {caller.describe()}"
        if granted_connections:
            reason += (
                f" for server {server.name} or its pinned connection {row.pinned_connection}"
                f" (grants cover only connection {', '.join(sorted(granted_connections))})"
            )
        lines.append(f"grant: none — {reason}")
        lines.append("state: forbidden")
        return ServerDecision(
            server=server,
            state=ServerState.FORBIDDEN,
            reason=reason,
            action="ask an administrator for an MCPAccessGrant naming you, one of your teams or the organization",
            explain=tuple(lines),
        )

    tools = _exposed_tools(row, namespace_tools=namespace_tools)
    lines.append(_tools_line(row, tools))

    # 3. tools policy
    blocked = _tool_block(row)
    if blocked is not None:
        return _blocked_by_tools(server, blocked, lines)

    # 4. connection
    credential = choose_credential(
        row,
        index,
        candidates=candidates,
        all_connections=connections,
        server_granted=bool(server_grants),
        caller=caller,
    )
    lines.extend(credential.lines)
    return _finished(row, credential, lines=lines, tools=tools)


def _blocked_by_tools(server: ServerRecord, blocked: str, lines: list[str]) -> ServerDecision:
    lines.append(f"tools: blocked — {blocked}")
    lines.append("state: blocked")
    pinned = server.tool_policy == "Pin"
    return ServerDecision(
        server=server,
        state=ServerState.BLOCKED,
        reason=blocked,
        action="an administrator must approve the current tool snapshot (spec.tools.approvedHash)"
        if pinned
        else "an administrator must clear the block reported in the server's status",
        explain=tuple(lines),
    )


def _finished(
    row: BoundServerRow, credential: Credential, *, lines: list[str], tools: tuple[str, ...]
) -> ServerDecision:
    """The decision once the credential is chosen: ready with its headers, or why not."""
    server = row.server
    if credential.state is not ServerState.READY:
        lines.append(f"state: {credential.state}")
        return ServerDecision(
            server=server,
            state=credential.state,
            connection=credential.connection.name if credential.connection else None,
            scope=credential.scope,
            tools=tools if credential.state in _WAITING_ON_MEMBER else (),
            tool_snapshot=row.snapshot_hash if credential.state in _WAITING_ON_MEMBER else None,
            reason=credential.reason,
            action=credential.action,
            explain=tuple(lines),
            connect_member=credential.connect_member,
            connect_connection=credential.connect_connection,
        )
    headers = merged_headers(server, credential.connection, credential.header, credential.member_headers)
    lines.extend(header.describe() for header in headers)
    lines.append("state: ready")
    return ServerDecision(
        server=server,
        state=ServerState.READY,
        connection=credential.connection.name if credential.connection else None,
        scope=credential.scope,
        headers=headers,
        tools=tools,
        tool_snapshot=row.snapshot_hash,
        explain=tuple(lines),
    )


def _access(
    row: BoundServerRow,
    connections: Sequence[ConnectionRecord],
    server_grants: Sequence[GrantMatch],
    granted_connections: dict[str, list[GrantMatch]],
) -> tuple[list[ConnectionRecord] | None, list[str]]:
    """The connections the caller may go through (all of them with a server grant), or None: no access."""
    server = row.server
    if server_grants:
        return list(connections), ["grant: " + _grant_text(server_grants, target=f"server {server.name}")]
    usable = granted_connections
    if row.pinned_connection is not None:
        # A connection grant opens the server through that connection only, so it must be the pinned one.
        usable = {name: grants for name, grants in granted_connections.items() if name == row.pinned_connection}
    if not usable:
        return None, []
    lines = [
        "grant: " + _grant_text(grants, target=f"connection {name}") + f" (access through {name} only)"
        for name, grants in usable.items()
    ]
    return [connection for connection in connections if connection.name in usable], lines


def _offer_line(row: BoundServerRow) -> str:
    if row.binding is None:
        return f"binding: no template asked for; every server of tenant {row.server.tenant} is offered"
    pinned = f", pinned to connection {row.pinned_connection}" if row.pinned_connection else ""
    assigned = f" to agent {', '.join(row.binding_agents)} (assigned directly)" if row.binding_agents else ""
    return f"binding: {row.binding} offers {row.server.name}{assigned}{pinned}"


def _grant_text(grants: Sequence[GrantMatch], *, target: str) -> str:
    names: dict[str, list[str]] = defaultdict(list)
    for grant in grants:
        subject = grant.subject
        names[grant.grant].append(subject.kind if subject.name is None else f"{subject.kind} {subject.name}")
    return "; ".join(f"{grant} names {', '.join(subjects)} on {target}" for grant, subjects in sorted(names.items()))


def _exposed_tools(row: BoundServerRow, *, namespace_tools: bool) -> tuple[str, ...]:
    """The latest snapshot's tools that pass the server's allow/deny, then the binding's, then its `readOnly`
    (none at all from a server whose hints cannot be trusted); none without a snapshot."""
    if row.snapshot_hash is None:
        return ()
    if row.tools_read_only and read_only_distrust(row) is not None:
        return ()
    server = row.server
    names = filter_tool_names(row.tool_names, allow=server.tools_allow, deny=server.tools_deny)
    names = filter_tool_names(names, allow=row.tools_allow, deny=row.tools_deny)
    if row.tools_read_only:
        names = [name for name in names if name in row.read_only_tools]
    if namespace_tools:
        return tuple(f"{TOOL_NAMESPACE_PREFIX}:{server.name}:{name}" for name in names)
    return tuple(names)


def read_only_distrust(row: BoundServerRow) -> str | None:
    """Why a `readOnly` binding cannot take this server's `readOnlyHint`s at their word, or None when it can.

    Pure. The hints are trusted only from a server whose tool set is pinned and approved, unblocked, and whose last
    probe found no high-severity tool change (a hint flipped to read-only after approval is not what was approved).
    """
    server = row.server
    if server.tool_policy != "Pin":
        return f"{server.name} is not pinned (spec.tools.policy: {server.tool_policy})"
    blocked = _tool_block(row)
    if blocked is not None:
        return f"{server.name}'s tool set is not approved: {blocked}"
    if row.tool_risk:
        return f"{server.name}'s tools changed risk since the last probe ({'; '.join(row.tool_risk)})"
    return None


def _tools_line(row: BoundServerRow, tools: tuple[str, ...]) -> str:
    if row.snapshot_hash is None:
        return (
            "tools: unknown — no tool snapshot yet (the server has not been probed); every output says so "
            "(toolSnapshot null) and lists no tool, so a runtime mounts none"
        )
    if row.tools_read_only:
        distrust = read_only_distrust(row)
        if distrust is not None:
            return f"tools: none — binding {row.binding} admits read-only tools only and {distrust}: {READ_ONLY_TRUST}"
    filters = []
    server = row.server
    for label, allow, deny in (
        ("server", server.tools_allow, server.tools_deny),
        ("binding", row.tools_allow, row.tools_deny),
    ):
        if allow or deny:
            filters.append(f"{label} allow={list(allow)} deny={list(deny)}")
    if row.tools_read_only:
        filters.append("binding readOnly (the pinned, approved snapshot's readOnlyHint)")
    applied = f" after {'; '.join(filters)}" if filters else ""
    return f"tools: {len(tools)} of {len(row.tool_names)} from snapshot {row.snapshot_hash}{applied}"


def _tool_block(row: BoundServerRow) -> str | None:
    """Why runtimes must not use the server's tools now, if they must not."""
    if row.blocked_reason:
        return row.blocked_reason
    server = row.server
    if server.tool_policy != "Pin":
        return None
    if server.approved_hash is None:
        return "tool policy is Pin but no approvedHash is set"
    if row.snapshot_hash is None:
        return f"tool policy is Pin and there is no tool snapshot yet to compare with {server.approved_hash}"
    if row.snapshot_hash != server.approved_hash:
        return (
            f"tool policy is Pin and the latest snapshot {row.snapshot_hash} is not the approved {server.approved_hash}"
        )
    return None
