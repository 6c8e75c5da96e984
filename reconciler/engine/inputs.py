"""What a driver hands the engine: parsed resources, tenants, and where secret values can be read.

The manifests loader (CLI) and the operator both build a `DesiredInput`; the engine never reads files or
the cluster itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.api import Resource

TENANT_LABEL = "mcp.reconciler.dev/tenant"
TENANT_CONFIGMAP = "mcp-tenant"
ADOPT_ANNOTATION = "mcp.reconciler.dev/adopt"


@dataclass(frozen=True)
class Tenant:
    """A namespace seen as a tenant: slug from the namespace label, else the namespace name."""

    namespace: str
    slug: str
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceLocation:
    """Where an object came from, so errors can point at it."""

    file: str | None = None
    line: int | None = None


class SecretSource(Protocol):
    """Reads secret values by reference. Implementations never log values."""

    def read(self, namespace: str, name: str, key: str) -> str | None:
        """The value, or None when the Secret or the key does not exist."""
        ...


@dataclass
class StaticSecrets:
    """Secret values loaded up front (Secret manifests in a folder)."""

    values: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def read(self, namespace: str, name: str, key: str) -> str | None:
        data = self.values.get((namespace, name))
        return None if data is None else data.get(key)

    def has_secret(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.values


@dataclass
class DesiredInput:
    """Everything the engine needs to plan: resources with their origin, tenants by namespace, secrets."""

    resources: list[Resource] = field(default_factory=list)
    locations: dict[tuple[str, str, str], SourceLocation] = field(default_factory=dict)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    secrets: StaticSecrets = field(default_factory=StaticSecrets)
    warnings: list[str] = field(default_factory=list)

    def tenant_for(self, namespace: str) -> Tenant:
        return self.tenants.get(namespace) or Tenant(namespace=namespace, slug=namespace)

    def location_of(self, kind: str, namespace: str, name: str) -> SourceLocation:
        return self.locations.get((kind, namespace, name), SourceLocation())
