"""Last-good credential copies: what keeps a server usable while a rotated Secret fails verification.

Rows point at Secrets by reference and record the fingerprint of the value last verified against the live
server. When the live server accepts a value, the engine pins an encrypted copy here (in the local store,
under the server's name); a runtime that finds the Secret's current value no longer matches the row's
fingerprint uses the pinned copy instead, and never hands out an unverified value. Called by the engine
after probes and rotations, and by the runtime when it renders headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.credentials.local_store import MintedSecretStore, NewSecret
from reconciler.credentials.storage import CredentialTransaction

PURPOSE_PREFIX = "last-good-"


def last_good_purpose(reference: str) -> str:
    """The store's purpose name for a reference (references carry `/` and `#`, which purposes may not)."""
    return PURPOSE_PREFIX + hashlib.sha256(reference.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class VerifiedValue:
    """A value the live server accepted, for the row of `server` that references it."""

    tenant: str
    server: str
    reference: str
    fingerprint: str
    value: str = field(repr=False)


def pin_verified(
    store: MintedSecretStore, values: Iterable[VerifiedValue], *, transaction: CredentialTransaction
) -> None:
    """Keep encrypted copies of accepted values; unchanged copies are not rewritten."""
    wanted = [
        item
        for item in values
        if last_good_value(
            store, tenant=item.tenant, server=item.server, reference=item.reference, fingerprint=item.fingerprint
        )
        != item.value
    ]
    if not wanted:
        return
    store.put_all(
        (
            NewSecret(
                tenant=item.tenant,
                name=item.server,
                purpose=last_good_purpose(item.reference),
                value=item.value,
                meta={"fingerprint": item.fingerprint},
            )
            for item in wanted
        ),
        transaction=transaction,
    )


def last_good_value(
    store: MintedSecretStore, *, tenant: str, server: str, reference: str, fingerprint: str
) -> str | None:
    """The pinned copy of `reference` whose fingerprint is the row's verified one, if there is one."""
    found = store.get(tenant, server, last_good_purpose(reference))
    if found is None or found.meta.get("fingerprint") != fingerprint:
        return None
    return found.value
