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
   than the approved hash, is blocked whatever the credential.
4. **connection** — a binding's pinned connection wins; otherwise the first tier with an applicable active
   connection decides: the member's own (user scope, newest first, or their own token for the server),
   the agent's, the platform's (usable ones first). Last comes the server's own credential, offered when the
   server is featured (ibl.ai's fallback) or declares no connections at all (a ThinkWork-style tenant key).
   A per-member connection the member has not connected yet gives `needs_connection`, never silence.
5. **state** — ready, needs_connection, blocked or forbidden, with the reason and what to do.

Header values are not read here: each header is a `HeaderSource` (a literal or a secret reference), so a
decision never holds a secret.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconciler.probe import filter_tool_names
from reconciler.registry.lookups import BoundServerRow, GrantMatch, ResolutionInputs
from reconciler.registry.records import ConnectionRecord, HeaderRecord, ServerRecord, UserTokenRecord
from reconciler.runtime.resolution import TOOL_NAMESPACE_PREFIX, CredentialScope, ResolvedServer, ServerState

DEFAULT_SCHEME = "Bearer"
DEFAULT_API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Caller:
    """Who the invocation runs for: an agent (created from the template), a member and the member's teams."""

    agent: str | None = None
    user: str | None = None
    teams: tuple[str, ...] = ()

    def describe(self) -> str:
        """`member bob, team sales or the organization`: everyone a grant could name for this caller."""
        parts = [f"member {self.user}"] if self.user else []
        if self.teams:
            parts.append(("team " if len(self.teams) == 1 else "teams ") + ", ".join(self.teams))
        return ", ".join(parts) + (" or the organization" if parts else "the organization")


@dataclass(frozen=True)
class HeaderSource:
    """One header to send: a literal value or a secret reference, optionally after a scheme (`Bearer <token>`)."""

    name: str
    origin: str
    value: str | None = None
    secret_ref: str | None = None
    prefix: str | None = None
    fingerprint: str | None = None
    """Fingerprint of the value last verified against the server (rows record it; runtime tokens have none)."""

    def describe(self) -> str:
        what = f"secret {self.secret_ref}" if self.secret_ref is not None else "literal value"
        scheme = f", scheme {self.prefix}" if self.prefix else ""
        return f"header {self.name}: {self.origin} ({what}{scheme})"


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


@dataclass
class _Index:
    """The caller-relevant rows by server / connection name."""

    connections: dict[str, list[ConnectionRecord]] = field(default_factory=lambda: defaultdict(list))
    server_grants: dict[str, list[GrantMatch]] = field(default_factory=lambda: defaultdict(list))
    connection_grants: dict[str, list[GrantMatch]] = field(default_factory=lambda: defaultdict(list))
    tokens: dict[tuple[str, str | None], UserTokenRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class _Credential:
    """The chosen credential, or why there is none (`state` set)."""

    lines: tuple[str, ...]
    scope: CredentialScope | None = None
    connection: ConnectionRecord | None = None
    header: HeaderSource | None = None
    state: ServerState = ServerState.READY
    reason: str | None = None
    action: str | None = None


def decide(inputs: ResolutionInputs, *, caller: Caller, template: str | None, namespace_tools: bool) -> Decisions:
    """Per-server decisions, in binding order (a server bound twice keeps its first binding)."""
    index = _index(inputs, caller)
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
    return Decisions(servers=tuple(decisions), notes=tuple(notes))


def _index(inputs: ResolutionInputs, caller: Caller) -> _Index:
    index = _Index()
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
    return index


def _decide_server(row: BoundServerRow, index: _Index, *, caller: Caller, namespace_tools: bool) -> ServerDecision:
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

    # 4. connection
    credential = _choose_credential(
        row,
        index,
        candidates=candidates,
        all_connections=connections,
        server_granted=bool(server_grants),
        caller=caller,
    )
    lines.extend(credential.lines)
    if credential.state is not ServerState.READY:
        lines.append(f"state: {credential.state}")
        return ServerDecision(
            server=server,
            state=credential.state,
            connection=credential.connection.name if credential.connection else None,
            scope=credential.scope,
            tools=tools if credential.state is ServerState.NEEDS_CONNECTION else (),
            tool_snapshot=row.snapshot_hash if credential.state is ServerState.NEEDS_CONNECTION else None,
            reason=credential.reason,
            action=credential.action,
            explain=tuple(lines),
        )
    headers = _headers(server, credential.connection, credential.header)
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
    """The latest snapshot's tools that pass the server's allow/deny and then the binding's; none without one."""
    if row.snapshot_hash is None:
        return ()
    server = row.server
    names = filter_tool_names(row.tool_names, allow=server.tools_allow, deny=server.tools_deny)
    names = filter_tool_names(names, allow=row.tools_allow, deny=row.tools_deny)
    if namespace_tools:
        return tuple(f"{TOOL_NAMESPACE_PREFIX}:{server.name}:{name}" for name in names)
    return tuple(names)


def _tools_line(row: BoundServerRow, tools: tuple[str, ...]) -> str:
    if row.snapshot_hash is None:
        return (
            "tools: unknown — no tool snapshot yet (the server has not been probed); every output says so "
            "(toolSnapshot null) and lists no tool, so a runtime mounts none"
        )
    filters = []
    server = row.server
    for label, allow, deny in (
        ("server", server.tools_allow, server.tools_deny),
        ("binding", row.tools_allow, row.tools_deny),
    ):
        if allow or deny:
            filters.append(f"{label} allow={list(allow)} deny={list(deny)}")
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


def _choose_credential(
    row: BoundServerRow,
    index: _Index,
    *,
    candidates: Sequence[ConnectionRecord],
    all_connections: Sequence[ConnectionRecord],
    server_granted: bool,
    caller: Caller,
) -> _Credential:
    server = row.server
    if row.pinned_connection is not None:
        return _pinned(row, index, all_connections=all_connections, caller=caller)

    lines = [f"connection: skipped {c.name} (inactive)" for c in candidates if not c.active]
    active = [c for c in candidates if c.active]
    newest_first = sorted(active, key=lambda c: c.row_id or 0, reverse=True)

    if caller.user is not None:
        own = [c for c in newest_first if c.scope == "user" and c.subject == caller.user]
        if own:
            chosen = own[0]
            lines.append(f"connection: {chosen.name} — member {caller.user}'s own (user scope, newest active)")
            return _use(chosen, CredentialScope.USER, index, server=server, caller=caller, lines=lines)
        token = index.tokens.get((server.name, None))
        if token is not None and server_granted:
            lines.append(f"connection: none — member {caller.user}'s own token for {server.name} (user_tokens)")
            header = HeaderSource(
                "Authorization",
                origin=f"member {caller.user}'s token",
                secret_ref=token.secret_ref,
                prefix=DEFAULT_SCHEME,
            )
            return _Credential(lines=tuple(lines), scope=CredentialScope.USER, header=header)
    if caller.agent is not None:
        agents = [c for c in newest_first if c.scope == "agent" and c.subject == caller.agent]
        if agents:
            chosen = agents[0]
            lines.append(f"connection: {chosen.name} — agent {caller.agent}'s (agent scope)")
            return _use(chosen, CredentialScope.AGENT, index, server=server, caller=caller, lines=lines)
    platform = [c for c in newest_first if c.scope == "platform"]
    if platform:
        chosen = sorted(platform, key=lambda c: not _usable(c, index, caller=caller))[0]
        lines.append(f"connection: {chosen.name} — the platform's ({_mode(chosen)})")
        return _use(chosen, CredentialScope.PLATFORM, index, server=server, caller=caller, lines=lines)

    if server_granted and (server.featured or not all_connections):
        scope = CredentialScope.FEATURED if server.featured else CredentialScope.SERVER
        why = "featured server's fallback" if server.featured else "the server declares no connections"
        return _server_credential(server, scope=scope, why=why, caller=caller, lines=lines)

    if server.auth_type == "oauthAuthorizationCode" and server_granted:
        return _needs_own_account(server, caller=caller, lines=lines, connection=None, scope=CredentialScope.USER)
    others = [c.name for c in all_connections if c.active and c not in candidates]
    reason = f"no active connection of {server.name} applies to {caller.describe()}"
    if others:
        reason += f" (connections {', '.join(sorted(others))} are not granted to you)"
    elif any(not c.active for c in candidates):
        reason += " (the ones that would are inactive)"
    if not server.featured and all_connections:
        reason += "; the server is not featured, so its own credential is no fallback"
    lines.append(f"connection: none — {reason}")
    return _Credential(
        lines=tuple(lines),
        state=ServerState.NEEDS_CONNECTION,
        reason=reason,
        action=(
            f"ask an administrator for an MCPConnection to {server.name} at user, agent or platform scope "
            "(or a grant on an existing one)"
        ),
    )


def _pinned(
    row: BoundServerRow, index: _Index, *, all_connections: Sequence[ConnectionRecord], caller: Caller
) -> _Credential:
    """A binding's pinned connection wins over preference, but is never stretched to someone it is not for."""
    name = row.pinned_connection
    lines = [f"connection: {name} — pinned by binding {row.binding}"]
    pinned = next((c for c in all_connections if c.name == name), None)
    problem = None
    if pinned is None:
        problem = f"pinned connection {name} belongs to server {row.pinned_connection_server}, not {row.server.name}"
    elif not pinned.active:
        problem = f"pinned connection {name} is inactive"
    elif pinned.scope == "user" and pinned.subject != caller.user:
        problem = f"pinned connection {name} is member {pinned.subject}'s own credential"
    elif pinned.scope == "agent" and pinned.subject != caller.agent:
        problem = f"pinned connection {name} belongs to agent {pinned.subject}"
    if problem is not None or pinned is None:
        return _Credential(
            lines=(*lines, f"connection: unusable — {problem}"),
            state=ServerState.BLOCKED,
            reason=problem,
            action=f"an administrator must fix the connectionRef of binding {row.binding} or the connection itself",
        )
    return _use(pinned, CredentialScope(pinned.scope), index, server=row.server, caller=caller, lines=lines)


def _mode(connection: ConnectionRecord) -> str:
    return "per member" if connection.credential_mode == "perMember" else "shared"


def _usable(connection: ConnectionRecord, index: _Index, *, caller: Caller) -> bool:
    if connection.credential_mode != "perMember":
        return True
    return caller.user is not None and (connection.server, connection.name) in index.tokens


def _use(
    connection: ConnectionRecord,
    scope: CredentialScope,
    index: _Index,
    *,
    server: ServerRecord,
    caller: Caller,
    lines: Iterable[str],
) -> _Credential:
    scheme = connection.authorization_scheme or DEFAULT_SCHEME
    if connection.credential_mode == "perMember":
        token = index.tokens.get((connection.server, connection.name)) if caller.user is not None else None
        if token is None:
            return _needs_own_account(server, caller=caller, lines=lines, connection=connection, scope=scope)
        header = HeaderSource(
            "Authorization",
            origin=f"member {caller.user}'s token for connection {connection.name}",
            secret_ref=token.secret_ref,
            prefix=scheme,
        )
        return _Credential(
            lines=(*lines, f"credential: member {caller.user}'s own token (per-member connection)"),
            scope=scope,
            connection=connection,
            header=header,
        )
    shared = None
    if connection.secret_ref is not None:
        shared = HeaderSource(
            "Authorization",
            origin=f"connection {connection.name}",
            secret_ref=connection.secret_ref,
            prefix=scheme,
            fingerprint=connection.fingerprint,
        )
    return _Credential(lines=tuple(lines), scope=scope, connection=connection, header=shared)


def _needs_own_account(
    server: ServerRecord,
    *,
    caller: Caller,
    lines: Iterable[str],
    connection: ConnectionRecord | None,
    scope: CredentialScope | None = None,
) -> _Credential:
    through = f" through connection {connection.name}" if connection is not None else ""
    label = server.display_name or server.name
    if caller.user is None:
        reason = f"{server.name} runs as each member's own account{through}, and no member was given"
        action = "resolve for a member (user); each member connects their own account"
    else:
        reason = f"member {caller.user} has not connected their own account to {server.name}{through}"
        action = f"connect your {label} account (authorize it once); the runtime stores your token"
    return _Credential(
        lines=(*lines, f"credential: none — {reason}"),
        scope=scope,
        connection=connection,
        state=ServerState.NEEDS_CONNECTION,
        reason=reason,
        action=action,
    )


def _server_credential(
    server: ServerRecord, *, scope: CredentialScope, why: str, caller: Caller, lines: Iterable[str]
) -> _Credential:
    own = (
        "each member's own authorization"
        if server.auth_type == "oauthAuthorizationCode"
        else f"the server's own credential ({server.auth_type})"
    )
    lines = (*lines, f"connection: none — {why}: {own}")
    reference = server.auth.get("secretRef")
    if server.auth_type == "bearer" and isinstance(reference, str):
        scheme = str(server.auth.get("scheme") or DEFAULT_SCHEME)
        header = HeaderSource(
            "Authorization",
            origin=f"server {server.name}'s auth",
            secret_ref=reference,
            prefix=scheme,
            fingerprint=_fingerprint(server.auth.get("secretFingerprint")),
        )
        return _Credential(lines=lines, scope=scope, header=header)
    if server.auth_type == "apiKey" and isinstance(reference, str):
        name = str(server.auth.get("headerName") or DEFAULT_API_KEY_HEADER)
        return _Credential(
            lines=lines,
            scope=scope,
            header=HeaderSource(
                name,
                origin=f"server {server.name}'s auth",
                secret_ref=reference,
                fingerprint=_fingerprint(server.auth.get("secretFingerprint")),
            ),
        )
    if server.auth_type == "oauthAuthorizationCode":
        return _needs_own_account(server, caller=caller, lines=lines, connection=None, scope=CredentialScope.USER)
    if server.auth_type == "oauthClientCredentials":
        reason = (
            "the server's OAuth client-credentials token is minted by the reconciler and is not handed to "
            "runtimes; give the server a shared connection"
        )
        return _Credential(
            lines=(*lines, f"credential: unavailable — {reason}"),
            scope=scope,
            state=ServerState.BLOCKED,
            reason=reason,
            action=f"an administrator must create a shared platform MCPConnection for {server.name}",
        )
    return _Credential(lines=lines, scope=scope)


def _headers(
    server: ServerRecord, connection: ConnectionRecord | None, credential: HeaderSource | None
) -> tuple[HeaderSource, ...]:
    """Server headers, then connection headers over them by name (case-insensitive), then the credential."""
    merged: dict[str, HeaderSource] = {}

    def put(header: HeaderSource) -> None:
        merged.pop(header.name.lower(), None)
        merged[header.name.lower()] = header

    for stored in server.headers:
        put(_stored_header(stored, origin=f"server {server.name}"))
    if connection is not None:
        for stored in connection.headers:
            put(_stored_header(stored, origin=f"connection {connection.name}"))
    if credential is not None:
        put(credential)
    return tuple(merged.values())


def _stored_header(header: HeaderRecord, *, origin: str) -> HeaderSource:
    return HeaderSource(
        header.name, origin=origin, value=header.value, secret_ref=header.secret_ref, fingerprint=header.fingerprint
    )


def _fingerprint(value: object) -> str | None:
    return value if isinstance(value, str) else None
