"""The resource model: pydantic models that are the CRD schema, shared by every driver.

Imported by the manifests loader, the operator, the engine and the CRD generator. No I/O here.
"""

from reconciler.api.binding import MCPTemplateBinding, MCPTemplateBindingSpec, MCPTemplateBindingStatus
from reconciler.api.common import (
    API_GROUP,
    API_VERSION,
    Condition,
    CredentialValue,
    Header,
    HeaderValueFrom,
    ObjectMeta,
    SecretKeyRef,
)
from reconciler.api.connection import MCPConnection, MCPConnectionSpec, MCPConnectionStatus
from reconciler.api.grant import MCPAccessGrant, MCPAccessGrantSpec, MCPAccessGrantStatus
from reconciler.api.kinds import KINDS, KindInfo, Resource, kind_for
from reconciler.api.server import MCPServer, MCPServerSpec, MCPServerStatus

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KINDS",
    "Condition",
    "CredentialValue",
    "Header",
    "HeaderValueFrom",
    "KindInfo",
    "MCPAccessGrant",
    "MCPAccessGrantSpec",
    "MCPAccessGrantStatus",
    "MCPConnection",
    "MCPConnectionSpec",
    "MCPConnectionStatus",
    "MCPServer",
    "MCPServerSpec",
    "MCPServerStatus",
    "MCPTemplateBinding",
    "MCPTemplateBindingSpec",
    "MCPTemplateBindingStatus",
    "ObjectMeta",
    "Resource",
    "SecretKeyRef",
    "kind_for",
]
