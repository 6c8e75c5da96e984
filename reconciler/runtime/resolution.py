"""What a resolution answers: the effective MCP servers of one agent invocation, and how each was decided.

Built by `resolving.resolve`, printed by `presenting` (JSON, MCP client config, text) and returned by the
agent-facing MCP endpoint. Values only: header values here are already masked unless the caller asked for
secrets, so a `Resolution` can be logged or serialised without further care in the masked case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

MASK = "***"
"""What a secret header value reads as unless secrets were explicitly asked for."""
TOOL_NAMESPACE_PREFIX = "mcp"
ToolNamespace = Literal["server", "connection"]
"""How `namespace_tools` names tools: `mcp:<server>:<tool>` (`True` means this), or `mcp:<connection>:<tool>` by the
connection the caller goes through (OpenWork's naming; a server reached with its own credential keeps its name)."""


class ServerState(StrEnum):
    """Whether a runtime can use a server for this invocation."""

    READY = "ready"
    """Usable now: URL, headers and tools are what to mount."""
    NEEDS_CONNECTION = "needs_connection"
    """Allowed, but no credential reaches the server for this caller yet; `action` says what to do."""
    NEEDS_REAUTHORIZATION = "needs_reauthorization"
    """The member connected once, but their token expired and cannot be refreshed (no refresh token, or the
    authorization server refused it): the member must connect again. Distinct from `needs_connection`, which
    means the member never connected."""
    BLOCKED = "blocked"
    """Allowed, but unusable until an administrator acts (unapproved tools, an unusable pinned connection...)."""
    FORBIDDEN = "forbidden"
    """No grant names the caller; reported only when the resolution is explained."""


class CredentialScope(StrEnum):
    """Where the credential came from, in preference order (ibl.ai: user > agent > platform > featured)."""

    USER = "user"
    AGENT = "agent"
    PLATFORM = "platform"
    FEATURED = "featured"
    """A featured server's own credential, offered as the last fallback."""
    SERVER = "server"
    """The server's own credential, for a server that declares no connections at all (ThinkWork's tenant key)."""


@dataclass(frozen=True)
class ResolvedServer:
    """One server as the caller gets it. `headers` are masked unless the resolution was asked to show secrets."""

    name: str
    url: str
    transport: str
    state: ServerState
    connection: str | None = None
    scope: CredentialScope | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    """The exact tool names a runtime may expose (the snapshot's tools after the server's and the binding's
    allow/deny globs); a runtime mounts these and no others."""
    tool_snapshot: str | None = None
    """The snapshot hash `tools` was expanded from; None when the server's tools are unknown (never probed,
    or not offered), in which case `tools` is empty and a runtime mounts none of them."""
    reason: str | None = None
    """Why the server is not ready (never a secret value)."""
    action: str | None = None
    """What the caller (or an administrator) must do to make it ready."""
    explain: tuple[str, ...] = ()
    """The chain of decisions (binding → grant → connection → state), when explained."""
    connect_url: str | None = None
    """Where the member starts their own login to make the server ready (`needs_connection`,
    `needs_reauthorization`): a signed, expiring link to the connect service, issued when the resolution was given
    its public URL. It carries no token or secret."""

    @property
    def tools_known(self) -> bool:
        """Whether `tools` comes from a tool snapshot; unknown tools are never an unfiltered server."""
        return self.tool_snapshot is not None

    def to_json(self, *, explain: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "transport": self.transport,
            "connection": self.connection,
            "scope": None if self.scope is None else str(self.scope),
            "state": str(self.state),
            "headers": dict(self.headers),
            "tools": list(self.tools),
            "toolSnapshot": self.tool_snapshot,
            "reason": self.reason,
            "action": self.action,
        }
        if self.connect_url is not None:
            document["connectUrl"] = self.connect_url
        if explain:
            document["explain"] = list(self.explain)
        return document


@dataclass(frozen=True)
class Resolution:
    """The effective servers of one invocation, in binding order.

    Forbidden servers are present only when `explained`; `notes` (explained only) says what was left out
    before any per-server decision: disabled servers, a template nobody binds.
    """

    tenant: str
    namespace: str
    template: str | None
    agent: str | None
    user: str | None
    teams: tuple[str, ...]
    servers: tuple[ResolvedServer, ...]
    explained: bool = False
    secrets_shown: bool = False
    notes: tuple[str, ...] = ()

    def server(self, name: str) -> ResolvedServer:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    @property
    def ready(self) -> tuple[ResolvedServer, ...]:
        return tuple(server for server in self.servers if server.state is ServerState.READY)

    def to_json(self) -> dict[str, Any]:
        """The documented shape: `{"servers": [...]}`, plus the request and notes when explained."""
        document: dict[str, Any] = {"servers": [server.to_json(explain=self.explained) for server in self.servers]}
        if self.explained:
            document["request"] = {
                "tenant": self.tenant,
                "namespace": self.namespace,
                "template": self.template,
                "agent": self.agent,
                "user": self.user,
                "teams": list(self.teams),
            }
            document["notes"] = list(self.notes)
        return document
