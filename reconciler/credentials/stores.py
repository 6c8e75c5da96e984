"""The secret-store interface every driver's store implements, and the references it reads by.

`SecretStore` is what the engine, the probe step and the OAuth flows read values through: `read` (synchronous,
the same shape as `reconciler.engine.inputs.SecretSource`) and `aread` (for the operator, whose store may have to
ask the Kubernetes API). Two kinds of reference exist:

- `<namespace>/<secret>#<key>`: a key of a Secret the user manages (a manifest in the folder, or the cluster);
- `local:<tenant>/<name>#<purpose>`: a value the reconciler minted itself (OAuth tokens, DCR client secrets),
  kept encrypted in the registry database by `local_store.MintedSecretStore`.

The second form parses with the same `parse_reference` as the first (namespace `local:<tenant>`), and no
Kubernetes namespace contains a colon, so one `read(namespace, name, key)` call serves both.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from reconciler.credentials.errors import SecretNotFound
from reconciler.credentials.headers import SecretReader, parse_reference

LOCAL_PREFIX = "local:"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$")

# What the reconciler mints, by purpose (the `#<purpose>` of a local reference).
ACCESS_TOKEN = "oauth-access-token"
REFRESH_TOKEN = "oauth-refresh-token"
CLIENT_SECRET = "dcr-client-secret"
REGISTRATION_TOKEN = "dcr-registration-token"
PENDING_CLIENT_SECRET = "dcr-pending-client-secret"
PENDING_REGISTRATION_TOKEN = "dcr-pending-registration-token"
PRESET_CLIENT_BINDING = "preset-client-issuer"
"""A pre-registered client id (sealed: it may be a Secret's value) with the issuer it was first used with (meta)."""


@runtime_checkable
class SecretStore(Protocol):
    """Reads secret values by reference parts; None when the Secret or the key does not exist. Never logs values."""

    def read(self, namespace: str, name: str, key: str) -> str | None: ...

    async def aread(self, namespace: str, name: str, key: str) -> str | None: ...


def local_reference(tenant: str, name: str, purpose: str) -> str:
    """`local:<tenant>/<name>#<purpose>`, the reference of a minted value."""
    for part in (tenant, name, purpose):
        if not _PART.match(part) or "/" in part or "#" in part:
            raise ValueError(f"not usable in a local secret reference: {part!r}")
    return f"{LOCAL_PREFIX}{tenant}/{name}#{purpose}"


def split_local(namespace: str) -> str | None:
    """The tenant of a `local:<tenant>` namespace part, else None (a user Secret's namespace)."""
    return namespace[len(LOCAL_PREFIX) :] if namespace.startswith(LOCAL_PREFIX) else None


def is_local_reference(reference: str) -> bool:
    return reference.startswith(LOCAL_PREFIX)


def require_reference(secrets: SecretReader, reference: str, *, purpose: str | None = None) -> str:
    """The value behind `reference`, or `SecretNotFound` naming it (and what it was needed for)."""
    namespace, name, key = parse_reference(reference)
    value = secrets.read(namespace, name, key)
    if value is None:
        raise SecretNotFound(reference, purpose=purpose)
    return value


def read_stored_value(reference: str, *, minted: SecretReader, secrets: SecretReader | None) -> str | None:
    """The value behind a reference: a sealed one (`local:`) from the minted store, any other through `secrets`;
    None when it is absent, when there is no `secrets`, or when `reference` is not a reference. What a member
    token's refresh steps ask for (`member_tokens.ValueWanted`), read by the runtime and the engine alike."""
    try:
        namespace, name, key = parse_reference(reference)
    except ValueError:
        return None
    if split_local(namespace) is not None:
        return minted.read(namespace, name, key)
    return None if secrets is None else secrets.read(namespace, name, key)


async def arequire_reference(store: SecretStore, reference: str, *, purpose: str | None = None) -> str:
    """`require_reference` through the store's asynchronous read."""
    namespace, name, key = parse_reference(reference)
    value = await store.aread(namespace, name, key)
    if value is None:
        raise SecretNotFound(reference, purpose=purpose)
    return value
