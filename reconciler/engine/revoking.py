"""Asks an issuer about itself and to revoke members' tokens, as `credentials.connecting` and
`credentials.issuers` decide: the metadata read for a login and a disconnect (`issuer_facts`), one RFC 7009
revocation (`revoke`), and, before a server's or a connection's rows go, its members' tokens revoked and their
sealed values deleted (`forget_member_tokens`). Called by `connecting.py` (connect and disconnect) and
`crediting.py` (deletions), through the authorization-server port.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.credentials.authserver import AuthServerAccess, AuthServerAnswer
from reconciler.credentials.connecting import revocation_client, revocation_request, sealed_member_values
from reconciler.credentials.issuers import IssuerFacts, issuer_facts_of, metadata_found, metadata_requests
from reconciler.credentials.registration import CredentialStores
from reconciler.credentials.tokens import TokenClient
from reconciler.engine.kept_clients import stored_clients
from reconciler.errors import ReconcilerError
from reconciler.records import UserTokenRecord


async def issuer_facts(issuer: str, *, access: AuthServerAccess) -> IssuerFacts:
    """The issuer's metadata, RFC 8414 else OpenID Connect Discovery (`metadata_requests`, as refreshing reads
    it), bounded and SSRF-guarded like every request; empty facts when it serves neither."""
    found: AuthServerAnswer | None = None
    for request in metadata_requests(issuer):
        answer = await access.perform(request)
        if metadata_found(answer):
            found = answer
            break
    return issuer_facts_of(found)


async def revoke(endpoint: str, token: str, *, hint: str, client: TokenClient, access: AuthServerAccess) -> bool:
    """Ask the issuer to revoke one token; True when it said 200 (RFC 7009 §2.2: also for unknown tokens)."""
    answer = await access.perform(revocation_request(endpoint, token, hint=hint, client=client))
    return answer.ok


async def forget_member_tokens(
    tenant: str,
    server: str,
    tokens: Sequence[UserTokenRecord],
    *,
    stores: CredentialStores,
    access: AuthServerAccess,
) -> tuple[int, int]:
    """Before a server's rows go: revoke its members' tokens (`tokens`, their rows) where the issuer offers
    revocation and a stored client can ask (RFC 7009), then delete their sealed values whatever it answered.
    (members, tokens revoked)."""
    sealed = sealed_member_values(tenant, tokens)
    if not sealed:
        return 0, 0
    clients = stored_clients(tenant=tenant, server=server, stores=stores)
    client = clients[0] if clients else None
    endpoint = None
    if client is not None:
        try:
            endpoint = (await issuer_facts(client.issuer, access=access)).revocation_endpoint
        except ReconcilerError:
            endpoint = None  # unreachable or refused: the tokens are deleted all the same
    revoked = 0
    if client is not None and endpoint is not None:
        asker = revocation_client(client)
        for name, purpose, hint in sealed:  # refresh tokens first: revoking one may end its access tokens
            found = stores.minted.get(tenant, name, purpose)
            if found is None:
                continue
            try:
                revoked += await revoke(endpoint, found.value, hint=hint, client=asker, access=access)
            except ReconcilerError:
                continue
    owners = sorted({name for name, _purpose, _hint in sealed})
    with stores.registry.transaction() as transaction:
        for owner in owners:
            stores.minted.delete(tenant, owner, transaction=transaction)
    return len(owners), revoked
