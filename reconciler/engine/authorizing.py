"""Performs what the credentials package decides for one OAuth server: its discovery, its client (kept, registered,
forgotten, rotated, released) and its client-credentials token. The credentials step (`engine/steps/credentials.py`,
through `crediting.py`), Test Connection and the connect flow call it; nothing else sends credentials' requests.

Each exchange is decide → perform → decide: a pure function of `reconciler.credentials` says what to send or
write (`registration_request`, `choose_client`, `token_step`, `token_request`, `client_rows`, ...), this module sends
it through the `AuthServerClient` port (`CredentialContext.access`) or writes it through the registry
(`CredentialContext.stores`, one transaction per decision), and hands the answer to the next pure function
(`read_registration`, `read_token_answer`, `deregistration_result`, `still_registered`).

    after apply, before probe   prepare_server_credentials(record, context=..., discovery=...)  (or prepare_many)
                                  oauthClientCredentials: (register the client when dynamicRegistration) and mint
                                    or reuse a token → `headers` to merge into the probe target (they win)
                                  oauthAuthorizationCode: the client per `identity.choose_client_identity`
                                    (clientId, else CIMD, else RFC 7591 registration),
                                    → `authorization_url_template`, `connected_members`; nothing to list with
                                  other auth types: nothing (their headers come from `credentials/headers.py`)
    client rotation due         rotate_server_client(record, context=..., previous=..., verify_with=...)
    before deleting a server    release_server_credentials(tenant, server, context=...)

Failures raise the credentials package's errors (`prepare_many` returns them as `CredentialFailure`s instead).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

import anyio

from reconciler.credentials.authorization import authorization_url_template
from reconciler.credentials.authserver import AuthServerAccess
from reconciler.credentials.errors import AuthServerBlocked, AuthServerUnavailable, IncompleteAuthSpec
from reconciler.credentials.identity import choose_client_identity, metadata_document_url
from reconciler.credentials.local_store import MintedSecrets
from reconciler.credentials.planning import (
    CredentialContext,
    CredentialFailure,
    PreparedCredentials,
    ReleasedCredentials,
    ServerClientRotation,
    ServerFacts,
    bound_issuer,
    client_issuer,
    client_registration,
    client_rotation_reason,
    discovery_step,
    metadata_assertion_client_id,
    metadata_token_client,
    preset_client_id,
    preset_token_client,
    registered_token_client,
    rotation_confidential,
    signs_as_metadata_client,
    token_resource,
    token_scopes,
    token_url,
    with_token,
)
from reconciler.credentials.registration import (
    PENDING_PURPOSES,
    ClientChoice,
    ClientRegistration,
    ClientRotation,
    CredentialStores,
    DeregistrationResult,
    RegisteredClient,
    choose_client,
    choose_metadata_client,
    client_rows,
    deregistration_result,
    management_request,
    metadata_client,
    needs_new_pending,
    owned_purposes,
    pending_from,
    pending_secrets,
    preset_binding_secret,
    read_registration,
    registration_request,
    rotation_abandoned,
    rotation_promoted,
    still_registered,
)
from reconciler.credentials.rotation import ProbeOutcome, verdict
from reconciler.credentials.storage import CredentialRegistry
from reconciler.credentials.stores import (
    CLIENT_SECRET,
    PENDING_CLIENT_SECRET,
    PENDING_REGISTRATION_TOKEN,
    PRESET_CLIENT_BINDING,
    REGISTRATION_TOKEN,
)
from reconciler.credentials.tokens import (
    TokenClient,
)
from reconciler.engine.kept_clients import stored_clients
from reconciler.engine.minting import MemoryTokenCache, StoredTokenCache, client_credentials_token
from reconciler.errors import PermanentError, RetryableError
from reconciler.records import AuthDiscovery

logger = logging.getLogger(__name__)


# -- preparing -----------------------------------------------------------------------------------------------


async def prepare_server_credentials(
    record: ServerFacts,
    *,
    context: CredentialContext,
    discovery: AuthDiscovery | None = None,
    now: dt.datetime | None = None,
) -> PreparedCredentials:
    """Register, mint or reuse what the server's auth needs; see the module docstring. Call after apply."""
    now = now or dt.datetime.now(dt.UTC)
    if record.auth_type == "oauthClientCredentials":
        return await _prepare_client_credentials(record, context=context, discovery=discovery, now=now)
    if record.auth_type == "oauthAuthorizationCode":
        return await _prepare_authorization_code(record, context=context, discovery=discovery, now=now)
    return PreparedCredentials()


async def prepare_many(
    records: Sequence[ServerFacts],
    *,
    context: CredentialContext,
    discoveries: Mapping[tuple[str, str], AuthDiscovery] | None = None,
    now: dt.datetime | None = None,
) -> dict[tuple[str, str], PreparedCredentials | CredentialFailure]:
    """`prepare_server_credentials` for many servers, at most `max_concurrency` at once; by (tenant, server)."""
    results: dict[tuple[str, str], PreparedCredentials | CredentialFailure] = {}
    limiter = anyio.Semaphore(context.max_concurrency)

    async def one(record: ServerFacts) -> None:
        key = (record.tenant, record.name)
        async with limiter:
            try:
                results[key] = await prepare_server_credentials(
                    record, context=context, discovery=(discoveries or {}).get(key), now=now
                )
            except (PermanentError, RetryableError) as err:
                logger.info("credentials for %s/%s: %s", record.tenant, record.name, err)
                results[key] = CredentialFailure.of(err)
            except Exception as err:  # a fault of ours stays this server's: the task group must not cancel others
                results[key] = CredentialFailure.internal(record, err)

    async with anyio.create_task_group() as tasks:
        for record in records:
            tasks.start_soon(one, record)
    return results


async def _prepare_client_credentials(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> PreparedCredentials:
    access = context.access(allow_private=record.allow_private)
    client_id = preset_client_id(record, secrets=context.secrets)
    discovery, discovered = await _discovered(record, discovery, access=access, client_id=client_id)
    client, token_client = await _token_client(record, context=context, discovery=discovery, now=now)
    token = await client_credentials_token(
        client=token_client,
        scopes=token_scopes(record, discovery),
        resource=token_resource(record, discovery),
        audience=record.auth.get("audience"),
        access=access,
        cache=StoredTokenCache(context.stores, tenant=record.tenant, server=record.name),
        fingerprint_key=context.fingerprint_key,
        now=now,
        refresh_at=context.settings.refresh_at,
    )
    prepared = PreparedCredentials(
        list_tools=True,
        client=client,
        client_rotation_due=client_rotation_reason(client, settings=context.settings, now=now),
        discovery=discovered,
        identity=("cimd" if client.is_metadata_document else "dynamic") if client is not None else "preregistered",
    )
    return with_token(prepared, token)


async def _token_client(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> tuple[RegisteredClient | None, TokenClient]:
    """The client that asks for tokens: registered dynamically, the reconciler's `private_key_jwt` CIMD client (a
    key, no client id), or the spec's client id and secret or key."""
    url = token_url(record, discovery)
    access = context.access(allow_private=record.allow_private)
    if record.auth.get("dynamicRegistration"):
        registration = _registration(record, context=context, discovery=discovery, confidential=True)
        client = await ensure_client(registration, stores=context.stores, access=access, now=now)
        return client, registered_token_client(client, token_url=url)
    client_id = preset_client_id(record, secrets=context.secrets)
    if signs_as_metadata_client(record, client_id):
        metadata_id = metadata_assertion_client_id(record, public_url=context.settings.public_url, discovery=discovery)
        assert discovery is not None  # metadata_assertion_client_id refuses without one
        client = await ensure_metadata_client(
            tenant=record.tenant,
            server=record.name,
            issuer=client_issuer(discovery, fallback=discovery.token_url or record.url, origin=access.origin),
            client_id=metadata_id,
            token_endpoint_auth_method="private_key_jwt",
            stores=context.stores,
            access=access,
            now=now,
        )
        return client, metadata_token_client(
            record, client_id=client.client_id, token_url=url, secrets=context.secrets, discovery=discovery
        )
    if client_id is None:
        raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: set spec.auth.clientId")
    _bind_preset(record, client_id=client_id, discovery=discovery, stores=context.stores)
    return None, preset_token_client(
        record, client_id=client_id, token_url=url, secrets=context.secrets, discovery=discovery
    )


async def _prepare_authorization_code(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> PreparedCredentials:
    auth = record.auth
    access = context.access(allow_private=record.allow_private)
    client_id = preset_client_id(record, secrets=context.secrets)
    confidential = auth.get("pkce") == "confidential"
    discovery, discovered = await _discovered(record, discovery, access=access, client_id=client_id)
    identity = choose_client_identity(
        preset_client_id=client_id is not None,
        code_flow=True,
        confidential=confidential,
        public_url=context.settings.public_url,
        cimd_supported=discovery is not None and discovery.client_id_metadata_document_supported,
    )
    client = None
    if identity == "cimd" and discovery is not None and context.settings.public_url:
        client = await ensure_metadata_client(
            tenant=record.tenant,
            server=record.name,
            issuer=client_issuer(discovery, fallback=discovery.auth_url or record.url, origin=access.origin),
            client_id=metadata_document_url(context.settings.public_url),
            stores=context.stores,
            access=access,
            now=now,
        )
        client_id = client.client_id
    elif client_id is None:
        registration = _registration(record, context=context, discovery=discovery, confidential=confidential)
        client = await ensure_client(registration, stores=context.stores, access=access, now=now)
        client_id = client.client_id
    else:
        _bind_preset(record, client_id=client_id, discovery=discovery, stores=context.stores)
    auth_url = auth.get("authUrl") or (discovery.auth_url if discovery else None)
    template = None
    if auth_url:
        template = authorization_url_template(
            auth_url=auth_url,
            client_id=client_id,
            scopes=token_scopes(record, discovery),
            resource=token_resource(record, discovery),
        )
    return PreparedCredentials(
        list_tools=False,
        client=client,
        client_rotation_due=client_rotation_reason(client, settings=context.settings, now=now),
        authorization_url_template=template,
        connected_members=connected_members(context.stores.registry, record.tenant, record.name),
        discovery=discovered,
        identity=identity,
    )


def connected_members(registry: CredentialRegistry, tenant: str, server: str) -> int:
    """How many members authorized their own account for a per-member server (rows in `user_tokens`)."""
    return registry.count_user_tokens(tenants=[tenant]).get((tenant, server), 0)


def _registration(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, confidential: bool
) -> ClientRegistration:
    return client_registration(
        record,
        settings=context.settings,
        discovery=discovery,
        confidential=confidential,
        origin=context.authserver.origin,
    )


# -- discovery -----------------------------------------------------------------------------------------------


async def discover_server(record: ServerFacts, *, access: AuthServerAccess) -> AuthDiscovery:
    """The probe's auth discovery for one server (challenge, RFC 9728, RFC 8414), errors as credential errors."""
    return await access.discover(server_url=record.url, transport=record.transport)


async def _discovered(
    record: ServerFacts, discovery: AuthDiscovery | None, *, access: AuthServerAccess, client_id: str | None
) -> tuple[AuthDiscovery | None, AuthDiscovery | None]:
    """(the discovery to go on with, the one this step made itself if any), as `planning.discovery_step` says."""
    step = discovery_step(record, discovery, client_id=client_id)
    if step == "discover":
        found = await discover_server(record, access=access)
        return found, found
    if step == "rediscover" and discovery is not None:
        try:
            found = await discover_server(record, access=access)
        except AuthServerUnavailable as err:
            # The resource cannot be asked right now: the stored discovery stands, the check waits for next pass.
            logger.info("rediscovering %s/%s failed, keeping the stored discovery: %s", record.tenant, record.name, err)
            return discovery, discovery
        return found, found
    return discovery, None


# -- clients -------------------------------------------------------------------------------------------------


async def ensure_client(
    registration: ClientRegistration,
    *,
    stores: CredentialStores,
    access: AuthServerAccess,
    now: dt.datetime | None = None,
) -> RegisteredClient:
    """The server's registered client: the kept one when it still fits, else a new registration (kept).

    Clients registered with another issuer (the server moved to another authorization server) are deregistered
    and forgotten first, never used against the new one; the result's `replaced_issuer` names the old issuer.
    """
    tenant, server = registration.tenant, registration.server
    choice = choose_client(stored_clients(tenant=tenant, server=server, stores=stores), registration)
    current = await _forget_others(choice, tenant=tenant, server=server, stores=stores, access=access)
    if current is None:
        current = await register_client(registration, access=access, now=now)
        save_client(current, tenant=tenant, server=server, stores=stores)
    return replace(current, replaced_issuer=choice.replaced_issuer)


async def ensure_metadata_client(
    *,
    tenant: str,
    server: str,
    issuer: str,
    client_id: str,
    stores: CredentialStores,
    access: AuthServerAccess,
    now: dt.datetime | None = None,
    token_endpoint_auth_method: str = "none",
) -> RegisteredClient:
    """The server's CIMD client: nothing is registered, but the client id is kept with the issuer it is used with
    (and how its document says it authenticates), as every client is; other clients of the server are deregistered
    where RFC 7592 allows and forgotten."""
    kept = stored_clients(tenant=tenant, server=server, stores=stores)
    choice = choose_metadata_client(kept, issuer=issuer, client_id=client_id)
    current = await _forget_others(choice, tenant=tenant, server=server, stores=stores, access=access)
    if current is None:
        at = now or dt.datetime.now(dt.UTC)
        current = metadata_client(issuer=issuer, client_id=client_id, now=at, auth_method=token_endpoint_auth_method)
        save_client(current, tenant=tenant, server=server, stores=stores)
        logger.info("using CIMD client %s for %s/%s with %s", client_id, tenant, server, issuer)
    return replace(current, replaced_issuer=choice.replaced_issuer)


async def _forget_others(
    choice: ClientChoice, *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> RegisteredClient | None:
    for client in choice.forget:
        await forget_client(client, tenant=tenant, server=server, stores=stores, access=access)
    return choice.keep


async def register_client(
    registration: ClientRegistration, *, access: AuthServerAccess, now: dt.datetime | None = None
) -> RegisteredClient:
    """POST the client metadata to the registration endpoint (RFC 7591) and read the issued client."""
    request = registration_request(registration)
    answer = await access.perform(request)
    issued = access.read_issued_client(answer.document) if answer.ok else None
    client = read_registration(
        answer, request=request, registration=registration, issued=issued, now=now or dt.datetime.now(dt.UTC)
    )
    logger.info(
        "registered OAuth client %s for %s/%s at %s (%s)",
        client.client_id,
        registration.tenant,
        registration.server,
        answer.endpoint,
        client.token_endpoint_auth_method,
    )
    return client


def save_client(client: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores) -> None:
    """Keep a client as the server's current one: what `client_rows` says, in one transaction."""
    rows = client_rows(client, tenant=tenant, server=server)
    with stores.registry.transaction() as transaction:
        stores.minted.delete(tenant, server, list(rows.unseal), transaction=transaction)
        stores.minted.put_all(rows.seal, transaction=transaction)
        transaction.put_oauth_client(rows.record)


def _bind_preset(
    record: ServerFacts, *, client_id: str, discovery: AuthDiscovery | None, stores: CredentialStores
) -> None:
    """Hold the spec's client id to the issuer discovery names (SEP-2352); `AuthServerChanged` when it moved."""
    issuer = bound_issuer(discovery)
    if issuer is None:
        return
    stored = stores.minted.get(record.tenant, record.name, PRESET_CLIENT_BINDING)
    binding = preset_binding_secret(
        stored, tenant=record.tenant, server=record.name, client_id=client_id, issuer=issuer
    )
    if binding is not None:
        with stores.registry.transaction() as transaction:
            stores.minted.put_all([binding], transaction=transaction)


async def deregister_client(client: RegisteredClient, *, access: AuthServerAccess) -> DeregistrationResult:
    """RFC 7592 DELETE of a client; never raises for the server's answer, so clean-up always continues."""
    request = management_request(client, "DELETE")
    if request is None:
        return "not-supported"
    try:
        answer = await access.perform(request)
    except (AuthServerUnavailable, AuthServerBlocked) as err:
        logger.warning("deregistering OAuth client %s failed: %s", client.client_id, err)
        return "failed"
    result = deregistration_result(answer)
    if result == "failed":
        logger.warning("deregistering OAuth client %s: the server answered HTTP %d", client.client_id, answer.status)
    return result


async def forget_client(
    client: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> DeregistrationResult:
    """Deregister one client where RFC 7592 allows, then delete its row and the sealed values that are its own."""
    result = await deregister_client(client, access=access)
    stored = {purpose: stores.minted.get(tenant, server, purpose) for purpose in (CLIENT_SECRET, REGISTRATION_TOKEN)}
    owned = owned_purposes(client, stored)
    with stores.registry.transaction() as transaction:
        transaction.delete_oauth_client(tenant, server, client.issuer)
        stores.minted.delete(tenant, server, owned, transaction=transaction)
    return result


async def forget_clients(
    *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> dict[str, DeregistrationResult]:
    """Deregister and delete every client of a server, a pending rotation included; result by client id."""
    results: dict[str, DeregistrationResult] = {}
    pending = _pending_client(tenant=tenant, server=server, minted=stores.minted)
    if pending is not None:
        results[pending.client_id] = await _abandon_pending(
            pending, tenant=tenant, server=server, stores=stores, access=access
        )
    for client in stored_clients(tenant=tenant, server=server, stores=stores):
        results[client.client_id] = await forget_client(
            client, tenant=tenant, server=server, stores=stores, access=access
        )
    return results


async def release_server_credentials(
    tenant: str, server: str, *, context: CredentialContext, allow_private: bool = False
) -> ReleasedCredentials:
    """Before a server's rows are deleted: deregister its dynamically registered clients (RFC 7592, where the
    server gave a registration URI and token), forget them, and delete every value minted for it. Deregistration
    failures are reported, not raised, so deletion always proceeds. Members' tokens (`user_tokens`) are the
    runtime's and are left to the row's cascade."""
    clients = await forget_clients(
        tenant=tenant, server=server, stores=context.stores, access=context.access(allow_private=allow_private)
    )
    with context.stores.registry.transaction() as transaction:
        deleted = context.stores.minted.delete(tenant, server, transaction=transaction)
    return ReleasedCredentials(clients=clients, deleted_values=deleted)


# -- rotating a registered client ----------------------------------------------------------------------------


def _pending_client(*, tenant: str, server: str, minted: MintedSecrets) -> RegisteredClient | None:
    return pending_from(
        minted.get(tenant, server, PENDING_CLIENT_SECRET), minted.get(tenant, server, PENDING_REGISTRATION_TOKEN)
    )


async def _abandon_pending(
    pending: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> DeregistrationResult:
    """Drop a pending client that failed verification (deregistered where possible); the old one stays."""
    result = await deregister_client(pending, access=access)
    _forget_pending(tenant=tenant, server=server, stores=stores)
    return result


def _forget_pending(*, tenant: str, server: str, stores: CredentialStores) -> None:
    with stores.registry.transaction() as transaction:
        stores.minted.delete(tenant, server, list(PENDING_PURPOSES), transaction=transaction)


async def rotate_client(
    registration: ClientRegistration,
    *,
    previous: RegisteredClient,
    verify: Callable[[RegisteredClient], Awaitable[bool]],
    stores: CredentialStores,
    access: AuthServerAccess,
    now: dt.datetime | None = None,
) -> ClientRotation:
    """Replace `previous` by a newly registered client, keeping `previous` until the new one is verified.

    The new client is kept as pending (a crash leaves it findable, and a later call resumes with it rather than
    registering yet another). `verify` decides. Verified: the new client becomes the server's client and `previous`
    is deregistered (RFC 7592). Not verified: the new one is deregistered, `previous` stays.
    """
    tenant, server = registration.tenant, registration.server
    pending = _pending_client(tenant=tenant, server=server, minted=stores.minted)
    if pending is None or needs_new_pending(pending, registration):
        pending = await register_client(registration, access=access, now=now)
        with stores.registry.transaction() as transaction:
            stores.minted.put_all(pending_secrets(pending, tenant=tenant, server=server), transaction=transaction)
    if not await verify(pending):
        result = await _abandon_pending(pending, tenant=tenant, server=server, stores=stores, access=access)
        return rotation_abandoned(previous, pending, result)
    save_client(pending, tenant=tenant, server=server, stores=stores)
    _forget_pending(tenant=tenant, server=server, stores=stores)
    return rotation_promoted(previous, pending, await deregister_client(previous, access=access))


async def client_still_registered(client: RegisteredClient, *, access: AuthServerAccess) -> bool:
    """RFC 7592 read of the client configuration: the check that a registration (e.g. a rotated client that no
    token can be minted for, such as an authorization-code client) is live. True when the server cannot say."""
    request = management_request(client, "GET")
    if request is None:
        return True
    return still_registered(await access.perform(request), client)


async def rotate_server_client(
    record: ServerFacts,
    *,
    context: CredentialContext,
    previous: RegisteredClient,
    verify_with: Callable[[Mapping[str, str]], Awaitable[ProbeOutcome]] | None = None,
    discovery: AuthDiscovery | None = None,
    now: dt.datetime | None = None,
) -> ServerClientRotation:
    """Re-register a server's dynamically registered client and keep the old one until the new one is verified.

    Client credentials: a token is minted with the new client and `verify_with` probes the live server with its
    headers (the engine passes `reconciler.probe.credential_verifier` of the server's probe target);
    authorization code: the new registration is read back (RFC 7592). Without `verify_with`, a client
    credentials rotation verifies by minting only.
    """
    now = now or dt.datetime.now(dt.UTC)
    access = context.access(allow_private=record.allow_private)
    code_flow = record.auth_type == "oauthAuthorizationCode"
    if discovery is None:
        discovery = await discover_server(record, access=access)  # rotations are rare: ask for fresh endpoints
    registration = _registration(
        record, context=context, discovery=discovery, confidential=rotation_confidential(record)
    )
    probes: list[ProbeOutcome] = []

    async def verify(candidate: RegisteredClient) -> bool:
        if code_flow:
            return await client_still_registered(candidate, access=access)
        url = record.auth.get("tokenUrl") or (discovery.token_url if discovery else None)
        if not url:
            raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: no token endpoint to verify with")
        try:
            token = await client_credentials_token(
                client=registered_token_client(candidate, token_url=url),
                scopes=token_scopes(record, discovery),
                resource=token_resource(record, discovery),
                audience=record.auth.get("audience"),
                access=access,
                cache=MemoryTokenCache(),
                fingerprint_key=context.fingerprint_key,
                now=now,
            )
        except PermanentError as err:
            logger.info("the new client for %s/%s cannot mint a token: %s", record.tenant, record.name, err)
            return False
        if verify_with is None:
            return True
        probed = await verify_with(token.headers())
        probes.append(probed)
        return verdict(probed) != "rejected"

    rotation = await rotate_client(
        registration, previous=previous, verify=verify, stores=context.stores, access=access, now=now
    )
    return ServerClientRotation(rotation=rotation, probe=probes[-1] if probes else None)
