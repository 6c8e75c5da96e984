"""The storage port: what the credentials package keeps in the registry, named as protocols it owns.

The credentials package decides what to seal and which OAuth client rows to keep; it never imports the registry.
The engine (and the runtime, for the last-good copies) passes the `Registry` itself, which satisfies
`CredentialRegistry`, and a `RegistryTransaction`, which satisfies `CredentialTransaction`. The record types
that cross (`SealedSecret`, `OAuthClientRecord`) live in `reconciler.records`, below both. Used by
`local_store.py` (sealed values), `registration.py` (OAuth client rows), `authorization.py` (members' tokens)
and `last_good.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from reconciler.records import OAuthClientRecord, SealedSecret


class CredentialTransaction(Protocol):
    """The writes of one registry transaction the credentials package makes."""

    def put_local_secrets(self, secrets: Sequence[SealedSecret]) -> None: ...

    def delete_local_secrets(self, tenant: str, name: str, purposes: Collection[str] | None = None) -> int: ...

    def put_oauth_client(self, client: OAuthClientRecord) -> int: ...

    def delete_oauth_client(self, tenant: str, server: str, issuer: str) -> bool: ...


class CredentialRegistry(Protocol):
    """The reads the credentials package makes, and the transactions it writes in."""

    def transaction(self) -> AbstractContextManager[CredentialTransaction]: ...

    def fetch_local_secret(self, tenant: str, name: str, purpose: str) -> SealedSecret | None: ...

    def fetch_local_secrets(self, tenant: str, name: str | None = None) -> list[SealedSecret]: ...

    def fetch_oauth_clients(self, *, tenant: str, server: str) -> list[OAuthClientRecord]: ...

    def count_user_tokens(self, *, tenants: Collection[str] | None = None) -> Mapping[tuple[str, str], int]: ...
