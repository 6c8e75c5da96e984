"""The storage port: what the credentials package keeps in the registry, named as protocols it owns.

The credentials package decides what to seal and which OAuth client rows to keep; it never imports the registry.
The engine (and the runtime, for the last-good copies) passes the `Registry` itself, which satisfies
`CredentialRegistry`, and a `RegistryTransaction`, which satisfies `CredentialTransaction`. The record types
that cross (`SealedSecret`, `OAuthClientRecord`) live in `reconciler.records`, below both. Used by
`local_store.py` (sealed values), `registration.py` (OAuth client rows), `authorization.py` (members' tokens),
`member_tokens.py` (refreshing them under the registry's lease) and `last_good.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from reconciler.records import OAuthClientRecord, SealedSecret, UserTokenRecord


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

    def fetch_local_secrets_by_key(
        self, keys: Collection[tuple[str, str, str]]
    ) -> Mapping[tuple[str, str, str], SealedSecret]: ...

    def fetch_oauth_clients(self, *, tenant: str, server: str) -> list[OAuthClientRecord]: ...

    def count_user_tokens(self, *, tenants: Collection[str] | None = None) -> Mapping[tuple[str, str], int]: ...


class MemberTokenTransaction(CredentialTransaction, Protocol):
    """The writes that end a member token's refresh, in the transaction that seals its new values."""

    def store_refreshed_token(
        self,
        row_id: int,
        *,
        holder: str,
        secret_ref: str,
        expires_at: dt.datetime | None,
        issued_at: dt.datetime,
        refresh_token_ref: str | None,
        scopes: Sequence[str] = (),
    ) -> None: ...

    def release_token_refresh(self, row_id: int, *, holder: str, forget_refresh_token: bool = False) -> bool: ...

    def store_refreshed_tokens(self, tokens: Sequence[UserTokenRecord], *, holder: str) -> set[int]: ...

    def release_token_refreshes(self, row_ids: Collection[int], *, holder: str) -> int: ...


class MemberTokenRegistry(Protocol):
    """What refreshing members' tokens reads and writes: the rows, the single-flight lease, the OAuth clients."""

    def transaction(self) -> AbstractContextManager[MemberTokenTransaction]: ...

    def fetch_member_token(self, row_id: int) -> UserTokenRecord | None: ...

    def claim_token_refresh(
        self,
        row_id: int,
        *,
        holder: str,
        seen_expires_at: dt.datetime | None,
        lease: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> bool: ...

    def claim_token_refreshes(
        self,
        seen: Mapping[int, dt.datetime],
        *,
        holder: str,
        lease: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> set[int]: ...

    def fetch_oauth_clients(self, *, tenant: str, server: str) -> list[OAuthClientRecord]: ...


class MemberTokenWrites(CredentialTransaction, Protocol):
    """The write that records a member's newly obtained token set, beside the sealed values."""

    def put_member_token(self, token: UserTokenRecord) -> int: ...


class MemberTokenStore(Protocol):
    """Where a connect flow (or a runtime) stores the token set a member just obtained."""

    def transaction(self) -> AbstractContextManager[MemberTokenWrites]: ...
