"""Reads a server's kept OAuth clients back: their rows from the registry and their sealed secrets from the minted
store, unsealed into `RegisteredClient`s by the pure `registration.stored_client`. Called by `authorizing.py`
(which client a server goes on with, rotates or releases) and `revoking.py` (who asks to revoke members' tokens).
"""

from __future__ import annotations

from reconciler.credentials.registration import CredentialStores, RegisteredClient, stored_client
from reconciler.credentials.stores import CLIENT_SECRET, REGISTRATION_TOKEN


def stored_clients(*, tenant: str, server: str, stores: CredentialStores) -> list[RegisteredClient]:
    """The server's kept clients with their secrets unsealed (reads only)."""
    return [
        stored_client(
            record,
            secret=stores.minted.get(tenant, server, CLIENT_SECRET) if record.client_secret_ref else None,
            token=stores.minted.get(tenant, server, REGISTRATION_TOKEN)
            if record.registration_access_token_ref
            else None,
        )
        for record in stores.registry.fetch_oauth_clients(tenant=tenant, server=server)
    ]
