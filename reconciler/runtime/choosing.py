"""Step 4 of a resolution decision: which credential one offered server is reached with, and the headers sent.

Called by `deciding` (its `_decide_server` and the platform fallback) once the server is offered, granted and
not blocked. Pure: connections, members' token rows and the server's auth → a `Credential` (a header source or
why there is none). Preference: a binding's pinned connection; else the member's own (user scope, newest
first, or their token for the server), the agent's, the platform's (usable ones first); last the server's own
credential when it is featured or declares no connections. Values are never read here: headers are
`HeaderSource`s (a literal or a secret reference). A member's token past its `expires_at` (judged against the
index's `now`, which the caller injects) is never sent: without a stored refresh token it reads
`needs_reauthorization`, with one it waits for the runtime's renewal (`resolve(..., renew_tokens=True)`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from reconciler.credentials.stores import ACCESS_TOKEN, local_reference
from reconciler.registry.lookups import BoundServerRow, GrantMatch
from reconciler.registry.records import ConnectionRecord, HeaderRecord, ServerRecord, UserTokenRecord
from reconciler.runtime.resolution import CredentialScope, ServerState

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


@dataclass
class CredentialIndex:
    """The caller-relevant rows by server / connection name."""

    connections: dict[str, list[ConnectionRecord]] = field(default_factory=lambda: defaultdict(list))
    server_grants: dict[str, list[GrantMatch]] = field(default_factory=lambda: defaultdict(list))
    connection_grants: dict[str, list[GrantMatch]] = field(default_factory=lambda: defaultdict(list))
    tokens: dict[tuple[str, str | None], UserTokenRecord] = field(default_factory=dict)
    organization_tokens: dict[tuple[str, str | None], UserTokenRecord] = field(default_factory=dict)
    """The organization-level connection's tokens (`ORGANIZATION_MEMBER`): for members without their own."""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    """The moment members' tokens are judged against; `decide` sets the one its caller injected."""


@dataclass(frozen=True)
class Credential:
    """The chosen credential, or why there is none (`state` set)."""

    lines: tuple[str, ...]
    scope: CredentialScope | None = None
    connection: ConnectionRecord | None = None
    header: HeaderSource | None = None
    state: ServerState = ServerState.READY
    reason: str | None = None
    action: str | None = None
    member_headers: tuple[HeaderSource, ...] = ()
    """A per-member connection's headers valued from the member's stored values (sent after the credential)."""
    connect_member: str | None = None
    """The member whose own login on the server (the connect flow) makes it ready: a resolution with a public URL
    hands them a connect link."""
    connect_connection: str | None = None
    """The `perMember` connection that login goes through (None: the server itself)."""


def choose_credential(
    row: BoundServerRow,
    index: CredentialIndex,
    *,
    candidates: Sequence[ConnectionRecord],
    all_connections: Sequence[ConnectionRecord],
    server_granted: bool,
    caller: Caller,
) -> Credential:
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
            expired = _expired_token(token, server=server, caller=caller, now=index.now, lines=lines, connection=None)
            if expired is not None:
                return expired
            return _token_credential(
                token, origin=f"member {caller.user}'s token", scope=CredentialScope.USER, lines=lines
            )
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

    organization = index.organization_tokens.get((server.name, None))
    if organization is not None and server_granted and server.auth_type == "oauthAuthorizationCode":
        return _organization_token(organization, server=server, caller=caller, now=index.now, lines=lines)

    if server_granted and (server.featured or not all_connections):
        scope = CredentialScope.FEATURED if server.featured else CredentialScope.SERVER
        why = "featured server's fallback" if server.featured else "the server declares no connections"
        return server_credential(server, scope=scope, why=why, caller=caller, lines=lines)

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
    return Credential(
        lines=tuple(lines),
        state=ServerState.NEEDS_CONNECTION,
        reason=reason,
        action=(
            f"ask an administrator for an MCPConnection to {server.name} at user, agent or platform scope "
            "(or a grant on an existing one)"
        ),
    )


def _pinned(
    row: BoundServerRow, index: CredentialIndex, *, all_connections: Sequence[ConnectionRecord], caller: Caller
) -> Credential:
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
        return Credential(
            lines=(*lines, f"connection: unusable — {problem}"),
            state=ServerState.BLOCKED,
            reason=problem,
            action=f"an administrator must fix the connectionRef of binding {row.binding} or the connection itself",
        )
    return _use(pinned, CredentialScope(pinned.scope), index, server=row.server, caller=caller, lines=lines)


def _mode(connection: ConnectionRecord) -> str:
    return "per member" if connection.credential_mode == "perMember" else "shared"


def _usable(connection: ConnectionRecord, index: CredentialIndex, *, caller: Caller) -> bool:
    if connection.credential_mode != "perMember":
        return True
    token = index.tokens.get((connection.server, connection.name)) if caller.user is not None else None
    return token is not None and not _missing_values(connection, token) and not token_expired(token, now=index.now)


def _use(
    connection: ConnectionRecord,
    scope: CredentialScope,
    index: CredentialIndex,
    *,
    server: ServerRecord,
    caller: Caller,
    lines: Iterable[str],
) -> Credential:
    scheme = connection.authorization_scheme or DEFAULT_SCHEME
    if connection.credential_mode == "perMember":
        token = index.tokens.get((connection.server, connection.name)) if caller.user is not None else None
        if token is None:
            return _needs_own_account(server, caller=caller, lines=lines, connection=connection, scope=scope)
        expired = _expired_token(
            token, server=server, caller=caller, now=index.now, lines=lines, connection=connection, scope=scope
        )
        if expired is not None:
            return expired
        missing = _missing_values(connection, token)
        if missing:
            reason = (
                f"member {caller.user} has not stored {', '.join(missing)} for connection {connection.name} "
                f"(sent as {', '.join(h.name for h in connection.member_headers if h.key in missing)})"
            )
            return Credential(
                lines=(*lines, f"credential: incomplete — {reason}"),
                scope=scope,
                connection=connection,
                state=ServerState.NEEDS_CONNECTION,
                reason=reason,
                action=f"store your {', '.join(missing)} for {server.display_name or server.name} with your token",
            )
        header = HeaderSource(
            "Authorization",
            origin=f"member {caller.user}'s token for connection {connection.name}",
            secret_ref=token.secret_ref,
            prefix=scheme,
        )
        values = tuple(
            HeaderSource(
                member.name,
                origin=f"member {caller.user}'s {member.key} for connection {connection.name}",
                secret_ref=_with_key(token.secret_ref, member.key),
            )
            for member in connection.member_headers
        )
        return Credential(
            lines=(*lines, f"credential: member {caller.user}'s own token (per-member connection)"),
            scope=scope,
            connection=connection,
            header=header,
            member_headers=values,
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
    return Credential(lines=tuple(lines), scope=scope, connection=connection, header=shared)


def token_expired(token: UserTokenRecord, *, now: dt.datetime) -> bool:
    """Whether a member's token is past its expiry (a token without one never expires). Pure."""
    return token.expires_at is not None and now >= token.expires_at


def _expired_token(
    token: UserTokenRecord,
    *,
    server: ServerRecord,
    caller: Caller,
    now: dt.datetime,
    lines: Iterable[str],
    connection: ConnectionRecord | None,
    scope: CredentialScope = CredentialScope.USER,
    whose: str | None = None,
    reconnect: str | None = None,
) -> Credential | None:
    """Why an expired member token (or the organization's: `whose`, `reconnect`) is not sent, or None while it is
    valid.

    Without a refresh token only the member can fix it (`needs_reauthorization`); with one the runtime can, so
    the server is blocked for this resolution only, until a resolution with renewal refreshes the token."""
    if not token_expired(token, now=now):
        return None
    assert token.expires_at is not None
    through = f" for connection {connection.name}" if connection is not None else ""
    owner = whose or f"member {caller.user}'s"
    expired = f"{owner} token for {server.name}{through} expired at {token.expires_at.isoformat()}"
    label = server.display_name or server.name
    if token.refresh_token_ref is None:
        reason = (
            f"{expired} and cannot be refreshed (no refresh token is stored, or the authorization server refused it)"
        )
        return Credential(
            lines=(*lines, f"credential: expired — {reason}"),
            scope=scope,
            connection=connection,
            state=ServerState.NEEDS_REAUTHORIZATION,
            reason=reason,
            action=reconnect
            or f"reconnect your {label} account (authorize it again); the runtime stores the new token",
            **_own_login(server, connection, caller, whose=whose),
        )
    reason = f"{expired} and has not been refreshed yet"
    return Credential(
        lines=(*lines, f"credential: expired — {reason}"),
        scope=scope,
        connection=connection,
        state=ServerState.BLOCKED,
        reason=reason,
        action=(
            "resolve with token renewal (renew_tokens=True, CLI --renew-tokens; apply renews too): the stored "
            "refresh token gets a new one"
        ),
    )


def _organization_token(
    token: UserTokenRecord, *, server: ServerRecord, caller: Caller, now: dt.datetime, lines: list[str]
) -> Credential:
    """The organization-level connection an administrator made (OpenWork): shared by every granted member who has
    not connected their own account."""
    lines.append(f"connection: none — the organization's connection to {server.name} (connected by an administrator)")
    expired = _expired_token(
        token,
        server=server,
        caller=caller,
        now=now,
        lines=lines,
        connection=None,
        scope=CredentialScope.PLATFORM,
        whose="the organization's",
        reconnect=(
            f"an administrator must connect the organization's {server.display_name or server.name} account "
            f"again (mcp-reconciler connect {server.name} --shared)"
        ),
    )
    if expired is not None:
        return expired
    origin = f"the organization's token for {server.name}"
    return _token_credential(token, origin=origin, scope=CredentialScope.PLATFORM, lines=lines)


def _token_credential(
    token: UserTokenRecord, *, origin: str, scope: CredentialScope, lines: Iterable[str]
) -> Credential:
    """A stored OAuth token (a member's or the organization's) sent as `Authorization: Bearer`."""
    header = HeaderSource("Authorization", origin=origin, secret_ref=token.secret_ref, prefix=DEFAULT_SCHEME)
    return Credential(lines=tuple(lines), scope=scope, header=header)


def _needs_own_account(
    server: ServerRecord,
    *,
    caller: Caller,
    lines: Iterable[str],
    connection: ConnectionRecord | None,
    scope: CredentialScope | None = None,
) -> Credential:
    through = f" through connection {connection.name}" if connection is not None else ""
    label = server.display_name or server.name
    if caller.user is None:
        reason = f"{server.name} runs as each member's own account{through}, and no member was given"
        action = "resolve for a member (user); each member connects their own account"
    else:
        reason = f"member {caller.user} has not connected their own account to {server.name}{through}"
        action = f"connect your {label} account (authorize it once); the runtime stores your token"
    return Credential(
        lines=(*lines, f"credential: none — {reason}"),
        scope=scope,
        connection=connection,
        state=ServerState.NEEDS_CONNECTION,
        reason=reason,
        action=action,
        **_own_login(server, connection, caller),
    )


class _OwnLogin(TypedDict, total=False):
    connect_member: str
    connect_connection: str


def _own_login(
    server: ServerRecord, connection: ConnectionRecord | None, caller: Caller, *, whose: str | None = None
) -> _OwnLogin:
    """`connect_member` / `connect_connection` when the member's own authorization-code login fixes the server: on
    the server itself, or through a `perMember` connection that asks the member for no stored values (a login
    cannot supply those); nothing otherwise, nor for a token that is not the member's (`whose`)."""
    if whose is not None or caller.user is None or server.auth_type != "oauthAuthorizationCode":
        return {}
    if connection is None:
        return {"connect_member": caller.user}
    if connection.credential_mode != "perMember" or connection.member_headers:
        return {}
    return {"connect_member": caller.user, "connect_connection": connection.name}


def server_credential(
    server: ServerRecord, *, scope: CredentialScope, why: str, caller: Caller, lines: Iterable[str]
) -> Credential:
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
        return Credential(lines=lines, scope=scope, header=header)
    if server.auth_type == "apiKey" and isinstance(reference, str):
        name = str(server.auth.get("headerName") or DEFAULT_API_KEY_HEADER)
        return Credential(
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
        # The token the reconciler minted (and renews at 80% of its lifetime) is sealed in the registry under a
        # `local:` reference; resolving reads it there and checks it has not expired.
        header = HeaderSource(
            "Authorization",
            origin=f"the client-credentials token the reconciler minted for {server.name}",
            secret_ref=local_reference(server.tenant, server.name, ACCESS_TOKEN),
            prefix=DEFAULT_SCHEME,
        )
        return Credential(
            lines=(*lines, "credential: the reconciler's client-credentials token (minted, renewed before expiry)"),
            scope=scope,
            header=header,
        )
    return Credential(lines=lines, scope=scope)


def merged_headers(
    server: ServerRecord,
    connection: ConnectionRecord | None,
    credential: HeaderSource | None,
    member_values: Sequence[HeaderSource] = (),
) -> tuple[HeaderSource, ...]:
    """Server headers, then connection headers over them by name (case-insensitive), then the credential, then
    the member's own values (a per-member connection's `memberHeaders`)."""
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
    for value in member_values:
        put(value)
    return tuple(merged.values())


def _missing_values(connection: ConnectionRecord, token: UserTokenRecord) -> list[str]:
    """The member-value keys a per-member connection needs that the member's token row does not list."""
    return [header.key for header in connection.member_headers if header.key not in token.value_keys]


def _with_key(reference: str, key: str) -> str:
    """The member's value `key` lives in the token's Secret: `<ns>/<secret>#<token key>` → `<ns>/<secret>#<key>`."""
    return reference.rsplit("#", 1)[0] + "#" + key


def _stored_header(header: HeaderRecord, *, origin: str) -> HeaderSource:
    return HeaderSource(
        header.name, origin=origin, value=header.value, secret_ref=header.secret_ref, fingerprint=header.fingerprint
    )


def _fingerprint(value: object) -> str | None:
    return value if isinstance(value, str) else None
