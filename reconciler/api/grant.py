"""The `MCPAccessGrant` kind: who may use a server or connection. Access is never implicit.

Read by the manifests loader, the operator, the engine and the CRD generator.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from reconciler.api.common import GROUP_VERSION, Model, ObjectMeta, ObjectName, StatusBase

SubjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]*$")]


class GrantTarget(Model):
    """Exactly one of a server or a connection."""

    server_ref: ObjectName | None = None
    """The `MCPServer` (same namespace) access is granted to."""
    connection_ref: ObjectName | None = None
    """The `MCPConnection` (same namespace) access is granted to."""

    @model_validator(mode="after")
    def _exactly_one(self) -> GrantTarget:
        if (self.server_ref is None) == (self.connection_ref is None):
            raise ValueError("set exactly one of serverRef or connectionRef")
        return self


class GrantSubject(Model):
    """A member, a team, or the whole organization."""

    kind: Literal["Member", "Team", "Organization"]
    """`Member`, `Team` or `Organization`."""
    name: SubjectName | None = None
    """Member or team id; not set for `Organization`."""

    @model_validator(mode="after")
    def _name(self) -> GrantSubject:
        if self.kind == "Organization" and self.name is not None:
            raise ValueError("name is not allowed with kind: Organization")
        if self.kind != "Organization" and self.name is None:
            raise ValueError(f"name is required with kind: {self.kind}")
        return self


class MCPAccessGrantSpec(Model):
    """Desired state of one access grant."""

    target: GrantTarget
    """What access is granted to."""
    subjects: list[GrantSubject] = Field(min_length=1, max_length=128)
    """Who gets access (at least one)."""

    @model_validator(mode="after")
    def _unique(self) -> MCPAccessGrantSpec:
        seen: set[tuple[str, str | None]] = set()
        for subject in self.subjects:
            key = (subject.kind, subject.name)
            if key in seen:
                label = subject.kind if subject.name is None else f"{subject.kind} {subject.name}"
                raise ValueError(f"subject {label} is listed twice")
            seen.add(key)
        return self


class MCPAccessGrantStatus(StatusBase):
    """Observed state of an `MCPAccessGrant`."""

    model_config = StatusBase.model_config | {"extra": "ignore"}


class MCPAccessGrant(Model):
    """Who may use an MCP server or connection."""

    api_version: Literal["mcp.reconciler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["MCPAccessGrant"] = "MCPAccessGrant"
    metadata: ObjectMeta
    spec: MCPAccessGrantSpec
    status: MCPAccessGrantStatus | None = None
