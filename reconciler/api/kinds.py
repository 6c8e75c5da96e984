"""The four kinds' names (plural, singular, short names) and models, in one table everyone looks up.

Used by the manifests loader, the CLI (`get KIND` accepts any spelling), the CRD generator and the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from reconciler.api.binding import MCPTemplateBinding, MCPTemplateBindingSpec, MCPTemplateBindingStatus
from reconciler.api.common import API_GROUP
from reconciler.api.connection import MCPConnection, MCPConnectionSpec, MCPConnectionStatus
from reconciler.api.grant import MCPAccessGrant, MCPAccessGrantSpec, MCPAccessGrantStatus
from reconciler.api.server import MCPServer, MCPServerSpec, MCPServerStatus

Resource = MCPServer | MCPConnection | MCPAccessGrant | MCPTemplateBinding


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[BaseModel]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"

    def spellings(self) -> set[str]:
        return {self.kind.lower(), self.plural, self.singular, *self.short_names, self.crd_name}


KINDS: tuple[KindInfo, ...] = (
    KindInfo("MCPServer", "mcpservers", "mcpserver", ("mcps",), MCPServer, MCPServerSpec, MCPServerStatus),
    KindInfo(
        "MCPConnection",
        "mcpconnections",
        "mcpconnection",
        ("mcpconn",),
        MCPConnection,
        MCPConnectionSpec,
        MCPConnectionStatus,
    ),
    KindInfo(
        "MCPAccessGrant",
        "mcpaccessgrants",
        "mcpaccessgrant",
        ("mcpgrant",),
        MCPAccessGrant,
        MCPAccessGrantSpec,
        MCPAccessGrantStatus,
    ),
    KindInfo(
        "MCPTemplateBinding",
        "mcptemplatebindings",
        "mcptemplatebinding",
        ("mcpbinding",),
        MCPTemplateBinding,
        MCPTemplateBindingSpec,
        MCPTemplateBindingStatus,
    ),
)
_BY_KIND = {info.kind: info for info in KINDS}


def kind_for(spelling: str) -> KindInfo:
    """Look a kind up by kind, plural, singular, short name or `plural.group`; KeyError when unknown."""
    if spelling in _BY_KIND:
        return _BY_KIND[spelling]
    lowered = spelling.lower()
    for info in KINDS:
        if lowered in info.spellings():
            return info
    raise KeyError(spelling)
