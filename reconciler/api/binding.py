"""The `MCPTemplateBinding` kind: the servers an agent template gets, flowing down to its agents.

Read by the manifests loader, the operator, the engine and the CRD generator.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.api.common import (
    GROUP_VERSION,
    SECRET_KEY_PATTERN,
    Model,
    ObjectMeta,
    ObjectName,
    StatusBase,
    ToolFilter,
)

TemplateId = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
AgentId = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")]
# Kubernetes validates ConfigMap keys exactly like Secret keys.
ConfigMapKey = Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
DEFAULT_EXPORT_KEY = "mcp-config.json"
AGENTS_WITHOUT_EXPORT = "export is the template's document for no particular agent: a binding with agents cannot export"


READ_ONLY_TRUST = (
    "annotations from untrusted servers must not be trusted (MCP specification), so readOnly admits tools only "
    "from a server whose tool set is pinned and approved (spec.tools.policy: Pin with a matching approvedHash); "
    "from any other server it admits none"
)
"""Why `tools.readOnly` fails closed, in the words status, `resolve --explain` and the docs share."""


class BoundToolFilter(ToolFilter):
    """Per-template allow/deny on tool names, and whether only read-only tools are admitted."""

    read_only: bool = False
    """Admit only tools whose `readOnlyHint` is true. Honoured only for servers whose tool set is pinned and
    approved; from any other server the binding admits no tools (annotations from untrusted servers must not be
    trusted)."""


class BindingTools(Model):
    """Tool rules for every server of the binding."""

    read_only: bool = False
    """`readOnly` for every server of the binding (see `servers[].tools.readOnly`)."""


class BoundServer(Model):
    """One server given to the template."""

    server_ref: ObjectName
    """The `MCPServer` (same namespace)."""
    connection_ref: ObjectName | None = None
    """Pin this `MCPConnection` instead of resolving by preference."""
    tools: BoundToolFilter = Field(default_factory=BoundToolFilter)
    """Per-template allow/deny on tool names, applied after the server's own, and `readOnly`."""


class ConfigMapExport(Model):
    """A ConfigMap (same namespace, owned by the binding) a runtime mounts instead of calling the registry."""

    name: ObjectName | None = None
    """ConfigMap name; default `<binding name>-mcp-config`."""
    key: ConfigMapKey = DEFAULT_EXPORT_KEY
    """Data key holding the document; default `mcp-config.json`."""

    @field_validator("key")
    @classmethod
    def _not_a_path_segment(cls, key: str) -> str:
        # Kubernetes mounts each key as a file, so it refuses `.`, `..` and names starting with `..`.
        if key == "." or key.startswith(".."):
            raise ValueError("key must not be '.' or start with '..'")
        return key


class BindingExport(Model):
    """Publish the template's MCP client configuration for runtimes that mount a file rather than call `resolve`.

    The document holds `${secret:<namespace>/<secret>#<key>}` placeholders, never a secret value.
    """

    config_map: ConfigMapExport
    """Write it to this ConfigMap (`configMap: {}` takes both defaults)."""


class MCPTemplateBindingSpec(Model):
    """Desired state of one template binding."""

    template: TemplateId
    """Agent template id."""
    agents: list[AgentId] = Field(default_factory=list, max_length=256)
    """Assign the servers to these agents of the template only (Alloy's per-teammate checkbox, Wacht's attach);
    empty: every agent of the template. Removing an agent, or the binding, detaches the servers from it."""
    servers: list[BoundServer] = Field(min_length=1, max_length=512)
    """Servers the template gets."""
    tools: BindingTools = Field(default_factory=BindingTools)
    """Tool rules for every server listed (`readOnly: true`: only read-only tools, from pinned servers only)."""
    export: BindingExport | None = None
    """Also write the template's MCP client configuration to a ConfigMap; the operator does, the CLI does not."""

    @model_validator(mode="after")
    def _unique(self) -> MCPTemplateBindingSpec:
        if len(set(self.agents)) != len(self.agents):
            raise ValueError("an agent is listed twice in agents")
        if self.agents and self.export is not None:
            raise ValueError(AGENTS_WITHOUT_EXPORT)
        seen: set[str] = set()
        for bound in self.servers:
            if bound.server_ref in seen:
                raise ValueError(f"server {bound.server_ref!r} is listed twice")
            seen.add(bound.server_ref)
        return self


class ExportStatus(Model):
    """Where the operator wrote the binding's `spec.export` document, and whether it could."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    config_map: str
    """ConfigMap name."""
    key: str
    """Data key holding the document."""
    state: Literal["Written", "Conflict", "Failed"]
    """`Written`; `Conflict`: a ConfigMap of that name exists that this binding does not own (left alone);
    `Failed`: the API refused or could not be reached (see message)."""
    servers: int | None = None
    """Servers in the exported document."""
    message: str = ""
    """Why it is not written; never a secret value."""


class MCPTemplateBindingStatus(StatusBase):
    """Observed state of an `MCPTemplateBinding`."""

    model_config = StatusBase.model_config | {"extra": "ignore"}

    export: ExportStatus | None = None
    """The `spec.export` ConfigMap, when the binding asks for one (operator only)."""


class MCPTemplateBinding(Model):
    """An agent template and the MCP servers it gets."""

    api_version: Literal["mcp.reconciler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["MCPTemplateBinding"] = "MCPTemplateBinding"
    metadata: ObjectMeta
    spec: MCPTemplateBindingSpec
    status: MCPTemplateBindingStatus | None = None
