"""The registry: the SQL database agent runtimes read, and the only package that speaks SQL.

The engine observes and applies through `open_registry` → `Registry` / `RegistryTransaction`; the record
types it reads and writes live in `records.py` (the contract) and `rows.py`. The public names below are pinned
by a test. They load lazily, so the record types and `DEFAULT_MANAGER` come without SQLAlchemy.
"""

from typing import TYPE_CHECKING

from reconciler.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from reconciler.registry.connecting import DEFAULT_REGISTRY_URL, REGISTRY_URL_ENV, resolve_registry_url
    from reconciler.registry.errors import (
        ConcurrentChange,
        DuplicateRow,
        IncompatibleRegistry,
        InvalidRegistryUrl,
        RegistryRejected,
        RegistryUnavailable,
    )
    from reconciler.registry.managers import DEFAULT_MANAGER
    from reconciler.registry.rows import AuditLogRow, OAuthClientRecord
    from reconciler.registry.store import Registry, RegistryTransaction, open_registry, open_registry_if_present

__all__ = [
    "DEFAULT_MANAGER",
    "DEFAULT_REGISTRY_URL",
    "REGISTRY_URL_ENV",
    "AuditLogRow",
    "ConcurrentChange",
    "DuplicateRow",
    "IncompatibleRegistry",
    "InvalidRegistryUrl",
    "OAuthClientRecord",
    "Registry",
    "RegistryRejected",
    "RegistryTransaction",
    "RegistryUnavailable",
    "open_registry",
    "open_registry_if_present",
    "resolve_registry_url",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "connecting": ["DEFAULT_REGISTRY_URL", "REGISTRY_URL_ENV", "resolve_registry_url"],
        "errors": [
            "ConcurrentChange",
            "DuplicateRow",
            "IncompatibleRegistry",
            "InvalidRegistryUrl",
            "RegistryRejected",
            "RegistryUnavailable",
        ],
        "managers": ["DEFAULT_MANAGER"],
        "rows": ["AuditLogRow", "OAuthClientRecord"],
        "store": ["Registry", "RegistryTransaction", "open_registry", "open_registry_if_present"],
    },
)
