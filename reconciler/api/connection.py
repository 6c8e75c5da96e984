"""The `MCPConnection` kind: a credential binding to one server at platform, agent or user scope.

Read by the manifests loader, the operator, the engine (desired rows) and the CRD generator.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.api.common import (
    GROUP_VERSION,
    SECRET_KEY_PATTERN,
    Header,
    HeaderName,
    Model,
    ObjectMeta,
    ObjectName,
    SecretKeyRef,
    StatusBase,
    reject_duplicate_headers,
)
from reconciler.api.server import CredentialStatus

Subject = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]*$")]


class ConnectionAuth(Model):
    """The shared credential of a connection."""

    secret_key_ref: SecretKeyRef
    """Secret key holding the token."""
    authorization_scheme: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~+/-]+$")] = "Bearer"
    """Scheme written before the token in `Authorization` (ibl.ai's `authorization_scheme`)."""


class MemberHeader(Model):
    """A header whose value is the member's own stored value (ThinkWork's user-scoped workspace slug)."""

    name: HeaderName
    """Header name, e.g. `x-workspace-slug`."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
    """The key of the member's stored value, kept by the runtime in the same Secret as the member's token."""


MEMBER_HEADERS_NEED_PER_MEMBER = "memberHeaders need credentialMode: perMember (values are each member's own)"


class MCPConnectionSpec(Model):
    """Desired state of one credential binding."""

    server_ref: ObjectName
    """The `MCPServer` (same namespace) this connection reaches."""
    scope: Literal["platform", "agent", "user"]
    """`platform` (tenant-wide), `agent` (one agent) or `user` (one member)."""
    subject: Subject | None = None
    """Agent id for `scope: agent`, member id for `scope: user`; not set for `platform`."""
    credential_mode: Literal["shared", "perMember"] = "shared"
    """`shared`: one credential for everyone; `perMember`: each member authorizes their own account."""
    auth: ConnectionAuth | None = None
    """The shared credential (not allowed with `perMember`)."""
    headers: list[Header] = Field(default_factory=list, max_length=64)
    """Extra headers merged over the server's headers."""
    member_headers: list[MemberHeader] = Field(default_factory=list, max_length=16)
    """With `perMember`: headers whose values are the member's own stored values (next to their token); the
    member is `needs_connection` until every one is stored."""
    active: bool = True
    """Inactive connections are skipped at resolution time."""
    use_for_discovery: bool = False
    """The reconciler lists the server's tools with this credential, unless the server's
    `spec.discovery.connectionRef` names another; at most one active connection per server may set it."""

    @model_validator(mode="after")
    def _scope(self) -> MCPConnectionSpec:
        if self.scope == "platform" and self.subject is not None:
            raise ValueError("subject is not allowed with scope: platform")
        if self.scope != "platform" and self.subject is None:
            raise ValueError(f"subject is required with scope: {self.scope}")
        if self.credential_mode == "perMember":
            if self.auth is not None:
                raise ValueError("credentialMode: perMember holds no shared credential: remove auth")
            if self.scope != "platform":
                raise ValueError("credentialMode: perMember is an organization-level connection: use scope: platform")
            if self.use_for_discovery:
                raise ValueError("credentialMode: perMember has no credential the reconciler can use for discovery")
        elif self.member_headers:
            raise ValueError(MEMBER_HEADERS_NEED_PER_MEMBER)
        return self

    @field_validator("headers")
    @classmethod
    def _unique_headers(cls, headers: list[Header]) -> list[Header]:
        return reject_duplicate_headers(headers)

    @field_validator("member_headers")
    @classmethod
    def _unique_member_headers(cls, headers: list[MemberHeader]) -> list[MemberHeader]:
        seen: set[str] = set()
        for header in headers:
            if header.name.lower() in seen:
                raise ValueError(f"member header {header.name!r} is listed twice")
            seen.add(header.name.lower())
        return headers


class MCPConnectionStatus(StatusBase):
    """Observed state of an `MCPConnection`."""

    model_config = StatusBase.model_config | {"extra": "ignore"}

    fingerprint: str | None = None
    """Keyed fingerprint of the credential in use (never the value)."""
    connected_members: int | None = None
    """With `perMember`: how many members have authorized their account."""
    credentials: CredentialStatus | None = None
    """Rotations of the connection's Secret (`rotatedAt`, `revision`, `failedRotationAttempts`); never a value."""


class MCPConnection(Model):
    """A credential binding to an MCP server."""

    api_version: Literal["mcp.reconciler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["MCPConnection"] = "MCPConnection"
    metadata: ObjectMeta
    spec: MCPConnectionSpec
    status: MCPConnectionStatus | None = None


def connection_secret_refs(spec: MCPConnectionSpec) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key a connection spec references, with its field path."""
    found: list[tuple[str, SecretKeyRef]] = []
    if spec.auth is not None:
        found.append(("spec.auth.secretKeyRef", spec.auth.secret_key_ref))
    for index, header in enumerate(spec.headers):
        if header.value_from is not None:
            found.append((f"spec.headers[{index}].valueFrom.secretKeyRef", header.value_from.secret_key_ref))
    return found
