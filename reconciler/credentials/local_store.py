"""The local secret stores: values the reconciler mints, encrypted in the registry; and the CLI's whole store.

- `MintedSecretStore(registry, key)`: OAuth access and refresh tokens, DCR client secrets and registration tokens,
  sealed with AES-GCM (`sealing.py`) before they reach the registry's `local_secrets` table and addressed as
  `local:<tenant>/<name>#<purpose>`. Both drivers use it: the CLI inside `LocalSecretStore`, the operator inside
  `KubernetesSecretStore(minted=...)`.
- `LocalSecretStore(static, registry, key)`: the CLI's (and the embedded default's) `SecretStore`: Secret
  manifests from the folder (`reconciler.engine.inputs.StaticSecrets`, or any `SecretReader`) plus the minted
  values above.
- `MemoryMintedSecrets`: the same contract in memory, for dry runs and benchmarks that must not write.

The registry is reached through the `storage.CredentialRegistry` port: reads directly, writes only within the
transaction the caller (the engine, or the runtime's member-token flow) opens, so a value and the row that points
at it commit together. The OAuth flows depend only on the `MintedSecrets` protocol. Values appear in no repr and no
log line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.credentials.headers import SecretReader, parse_reference
from reconciler.credentials.sealing import SecretSealer
from reconciler.credentials.storage import CredentialRegistry, CredentialTransaction
from reconciler.credentials.stores import local_reference, split_local
from reconciler.records import SealedSecret


@dataclass(frozen=True)
class LocalSecret:
    """A minted value, decrypted, with its non-secret facts."""

    reference: str
    value: str = field(repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict)
    expires_at: dt.datetime | None = None
    updated_at: dt.datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class NewSecret:
    """A value to store: `meta` and `expires_at` must not be secret (they are stored in clear)."""

    tenant: str
    name: str
    purpose: str
    value: str = field(repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict)
    expires_at: dt.datetime | None = None


class MintedSecrets(Protocol):
    """Where the OAuth flows keep what they mint, by (tenant, owner name, purpose)."""

    def get(self, tenant: str, name: str, purpose: str) -> LocalSecret | None: ...

    def put_all(self, secrets: Iterable[NewSecret], *, transaction: CredentialTransaction) -> None:
        """Seal `secrets` within the caller's registry transaction."""
        ...

    def delete(
        self,
        tenant: str,
        name: str,
        purposes: Collection[str] | None = None,
        *,
        transaction: CredentialTransaction,
    ) -> int:
        """Delete an owner's sealed values (`purposes`, else all) within the caller's registry transaction."""
        ...

    def read(self, namespace: str, name: str, key: str) -> str | None: ...

    def read_many(self, references: Collection[str]) -> dict[str, str]:
        """The values behind many `local:` references; absent values (and other references) are left out."""
        ...


def put_secret(store: MintedSecrets, secret: NewSecret, *, transaction: CredentialTransaction) -> str:
    """Store one value; returns its `local:` reference."""
    store.put_all([secret], transaction=transaction)
    return local_reference(secret.tenant, secret.name, secret.purpose)


class MintedSecretStore:
    """Minted values, sealed in the registry's `local_secrets` table. Sealing is bound to the reference."""

    def __init__(self, registry: CredentialRegistry, key: bytes) -> None:
        self._registry = registry
        self._sealer = SecretSealer(key)

    def __repr__(self) -> str:
        return f"MintedSecretStore({self._registry!r}, key_id={self._sealer.key_id!r})"

    @property
    def key_id(self) -> str:
        return self._sealer.key_id

    def get(self, tenant: str, name: str, purpose: str) -> LocalSecret | None:
        sealed = self._registry.fetch_local_secret(tenant, name, purpose)
        return None if sealed is None else self._unseal(sealed)

    def all_of(self, tenant: str, name: str | None = None) -> list[LocalSecret]:
        return [self._unseal(sealed) for sealed in self._registry.fetch_local_secrets(tenant, name)]

    def put_all(self, secrets: Iterable[NewSecret], *, transaction: CredentialTransaction) -> None:
        sealed = [self._seal(secret) for secret in secrets]
        if sealed:
            transaction.put_local_secrets(sealed)

    def delete(
        self,
        tenant: str,
        name: str,
        purposes: Collection[str] | None = None,
        *,
        transaction: CredentialTransaction,
    ) -> int:
        return transaction.delete_local_secrets(tenant, name, purposes)

    def read(self, namespace: str, name: str, key: str) -> str | None:
        """`SecretReader` over `local:<tenant>` namespaces; None for anything else or an absent value."""
        tenant = split_local(namespace)
        if tenant is None:
            return None
        found = self.get(tenant, name, key)
        return None if found is None else found.value

    def read_many(self, references: Collection[str]) -> dict[str, str]:
        """`read` for many references in one registry query (a bulk renewal's refresh tokens)."""
        keys = {key: reference for reference in references if (key := _local_key(reference)) is not None}
        found = self._registry.fetch_local_secrets_by_key(keys)
        return {keys[key]: self._unseal(sealed).value for key, sealed in found.items() if key in keys}

    def _seal(self, secret: NewSecret) -> SealedSecret:
        reference = local_reference(secret.tenant, secret.name, secret.purpose)
        return SealedSecret(
            tenant=secret.tenant,
            name=secret.name,
            purpose=secret.purpose,
            ciphertext=self._sealer.seal(reference, secret.value),
            key_id=self._sealer.key_id,
            meta=dict(secret.meta),
            expires_at=secret.expires_at,
        )

    def _unseal(self, sealed: SealedSecret) -> LocalSecret:
        reference = local_reference(sealed.tenant, sealed.name, sealed.purpose)
        return LocalSecret(
            reference=reference,
            value=self._sealer.unseal(reference, sealed.ciphertext, sealed_with=sealed.key_id),
            meta=dict(sealed.meta),
            expires_at=sealed.expires_at,
            updated_at=sealed.updated_at,
        )


class MemoryMintedSecrets:
    """`MintedSecrets` in a dict: for dry runs, tests of callers and benchmarks. Ignores transactions."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], LocalSecret] = {}

    def __repr__(self) -> str:
        return f"MemoryMintedSecrets({len(self._values)} values)"

    def get(self, tenant: str, name: str, purpose: str) -> LocalSecret | None:
        return self._values.get((tenant, name, purpose))

    def put_all(self, secrets: Iterable[NewSecret], *, transaction: CredentialTransaction | None = None) -> None:
        now = dt.datetime.now(dt.UTC)
        for secret in secrets:
            self._values[(secret.tenant, secret.name, secret.purpose)] = LocalSecret(
                reference=local_reference(secret.tenant, secret.name, secret.purpose),
                value=secret.value,
                meta=dict(secret.meta),
                expires_at=secret.expires_at,
                updated_at=now,
            )

    def delete(
        self,
        tenant: str,
        name: str,
        purposes: Collection[str] | None = None,
        *,
        transaction: CredentialTransaction | None = None,
    ) -> int:
        doomed = [key for key in self._values if key[:2] == (tenant, name) and (purposes is None or key[2] in purposes)]
        for key in doomed:
            del self._values[key]
        return len(doomed)

    def read(self, namespace: str, name: str, key: str) -> str | None:
        tenant = split_local(namespace)
        found = None if tenant is None else self.get(tenant, name, key)
        return None if found is None else found.value

    def read_many(self, references: Collection[str]) -> dict[str, str]:
        keys = {key: reference for reference in references if (key := _local_key(reference)) is not None}
        return {reference: self._values[key].value for key, reference in keys.items() if key in self._values}


def _local_key(reference: str) -> tuple[str, str, str] | None:
    """(tenant, name, purpose) of a `local:<tenant>/<name>#<purpose>` reference, else None."""
    try:
        namespace, name, purpose = parse_reference(reference)
    except ValueError:
        return None
    tenant = split_local(namespace)
    return None if tenant is None else (tenant, name, purpose)


class LocalSecretStore:
    """The CLI's `SecretStore`: Secret manifests from the folder, plus the values the reconciler minted."""

    def __init__(self, static: SecretReader, registry: CredentialRegistry, key: bytes) -> None:
        self.static = static
        self.minted = MintedSecretStore(registry, key)

    def __repr__(self) -> str:
        return f"LocalSecretStore(minted={self.minted!r})"

    def read(self, namespace: str, name: str, key: str) -> str | None:
        if split_local(namespace) is not None:
            return self.minted.read(namespace, name, key)
        return self.static.read(namespace, name, key)

    async def aread(self, namespace: str, name: str, key: str) -> str | None:
        return self.read(namespace, name, key)
