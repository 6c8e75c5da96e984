"""Dynamic client registration (RFC 7591), its management protocol (RFC 7592), and rotating registered clients.

The engine calls `ensure_client` after apply (the server row must exist, the client hangs off it) and before
probing, for `oauthAuthorizationCode` servers without a `clientId` and `oauthClientCredentials` servers with
`dynamicRegistration`. The client id, auth method, registration URI and expiry go to the registry's
`oauth_clients` table; the client secret and the registration access token go to the local encrypted store
(`local:<tenant>/<server>#dcr-client-secret`, `#dcr-registration-token`). The next run reuses the client.
`forget_clients` deregisters (RFC 7592 DELETE, where the server gave a registration URI and token) and deletes
everything when the server goes. A CIMD client (`ensure_metadata_client`: the client id is the URL of the
reconciler's client metadata document, nothing is registered) gets a row too, so every managed client id is
bound to its issuer: a client recorded with another issuer than the one discovery names now is forgotten, never
used against the new one, and the result's `replaced_issuer` says so (SEP-2352).

Auth method choice (`choose_auth_method`): a public client registers with `none`; a confidential one takes the
first of `client_secret_basic`, `client_secret_post`, `none` the server lists in
`token_endpoint_auth_methods_supported` (an absent list means `client_secret_basic`, RFC 8414).

The requests are decided as values by pure functions (`registration_request`, `management_request` for RFC 7592)
and so is what keeping a client writes (`client_rows`: its `oauth_clients` row, the values to seal); the
functions that await send them through the authorization-server port and write them through the storage port.

Rotation: `client_rotation_due` (pure) says when a client should be replaced (`client_secret_expires_at` close,
or older than a maximum age); `rotate_client` registers a new client, keeps it pending while the caller verifies
it, then promotes it and deregisters the old one, or abandons it and keeps the old one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from reconciler.credentials.authserver import AuthServerAccess, AuthServerRequest, rejection
from reconciler.credentials.errors import (
    AuthServerBlocked,
    AuthServerChanged,
    AuthServerUnavailable,
    OAuthRejected,
    RegistrationRefused,
    redact,
)
from reconciler.credentials.identity import preset_binding
from reconciler.credentials.local_store import MintedSecrets, NewSecret
from reconciler.credentials.storage import CredentialRegistry
from reconciler.credentials.stores import (
    CLIENT_SECRET,
    PENDING_CLIENT_SECRET,
    PENDING_REGISTRATION_TOKEN,
    PRESET_CLIENT_BINDING,
    REGISTRATION_TOKEN,
    local_reference,
)
from reconciler.credentials.tokens import TokenAuthMethod
from reconciler.records import OAuthClientRecord

logger = logging.getLogger(__name__)

METHOD_PREFERENCE: tuple[TokenAuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")
RFC8414_DEFAULT_METHODS = ("client_secret_basic",)
AUTHORIZATION_CODE_GRANTS = ("authorization_code", "refresh_token")
CLIENT_CREDENTIALS_GRANTS = ("client_credentials",)
PENDING_MARKER = "pendingClient"


def choose_auth_method(
    advertised: Sequence[str], *, confidential: bool, preferred: TokenAuthMethod | None = None
) -> TokenAuthMethod:
    """The token endpoint auth method to register with, limited to what the server advertises. Pure.

    A confidential client whose spec names a method (`preferred`, `spec.auth.tokenEndpointAuthMethod`) registers
    with that one, or is refused when the server advertises a list without it. Otherwise public clients use
    `none`; confidential clients prefer `client_secret_basic`, then `client_secret_post`, then `none` (the server
    then treats the client as public). With no list advertised, a public client still asks for `none` (the
    server answers the registration if it cannot), a confidential one uses the RFC 8414 default.
    """
    if confidential and preferred is not None:
        if advertised and preferred not in advertised:
            raise RegistrationRefused(
                f"spec.auth.tokenEndpointAuthMethod is {preferred}, which the authorization server does not offer "
                f"(token_endpoint_auth_methods_supported: {', '.join(advertised)}); choose one it offers or omit it"
            )
        return preferred
    if not confidential:
        if advertised and "none" not in advertised:
            raise RegistrationRefused(
                "the authorization server accepts no public clients (token_endpoint_auth_methods_supported: "
                f"{', '.join(advertised)}); use pkce: confidential or a preset clientId"
            )
        return "none"
    offered = tuple(advertised) or RFC8414_DEFAULT_METHODS
    for method in METHOD_PREFERENCE:
        if method in offered:
            return method
    raise RegistrationRefused(
        "the authorization server supports none of client_secret_basic, client_secret_post, none "
        f"(token_endpoint_auth_methods_supported: {', '.join(offered)})"
    )


@dataclass(frozen=True)
class ClientRegistration:
    """What to register for one server: the same inputs each time, so a re-registration asks for the same client."""

    tenant: str
    server: str
    issuer: str
    registration_url: str
    confidential: bool
    advertised_methods: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = AUTHORIZATION_CODE_GRANTS
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    client_name: str = "mcp-reconciler"
    preferred_method: TokenAuthMethod | None = None
    """The spec's `tokenEndpointAuthMethod`, when it names one: registered as asked (see `choose_auth_method`)."""

    def method(self) -> TokenAuthMethod:
        return choose_auth_method(
            self.advertised_methods, confidential=self.confidential, preferred=self.preferred_method
        )


@dataclass(frozen=True)
class RegisteredClient:
    """A client an authorization server issued; secrets excluded from repr."""

    issuer: str
    client_id: str
    token_endpoint_auth_method: str
    client_secret: str | None = field(default=None, repr=False)
    registration_client_uri: str | None = None
    registration_access_token: str | None = field(default=None, repr=False)
    client_secret_expires_at: dt.datetime | None = None
    registered_at: dt.datetime | None = None
    reused: bool = False
    """True when taken from the registry rather than registered by this call."""
    replaced_issuer: str | None = None
    """Set when this call forgot a client bound to another issuer: the server moved to another authorization
    server (SEP-2352), and the old client was not used against the new one."""

    @property
    def is_metadata_document(self) -> bool:
        """A CIMD client: its id is the URL of its metadata document, and nothing was registered."""
        return self.client_id.startswith(("https://", "http://"))

    @property
    def can_deregister(self) -> bool:
        return bool(self.registration_client_uri and self.registration_access_token)

    def secrets(self) -> tuple[str | None, ...]:
        return (self.client_secret, self.registration_access_token)


@dataclass(frozen=True)
class CredentialStores:
    """Where registered clients are kept: the registry (non-secret facts) and the minted-secret store."""

    registry: CredentialRegistry
    minted: MintedSecrets


# -- registering ---------------------------------------------------------------------------------------------


def registration_request(registration: ClientRegistration) -> AuthServerRequest:
    """The RFC 7591 registration request: the client metadata, POSTed to the registration endpoint. Pure.

    Raises `RegistrationRefused` when the server advertises no auth method the client could register with.
    """
    metadata: dict[str, Any] = {
        "client_name": registration.client_name,
        "grant_types": list(registration.grant_types),
        "response_types": ["code"] if "authorization_code" in registration.grant_types else [],
        "token_endpoint_auth_method": registration.method(),
    }
    if registration.redirect_uris:
        metadata["redirect_uris"] = list(registration.redirect_uris)
    if registration.scopes:
        metadata["scope"] = " ".join(registration.scopes)
    return AuthServerRequest(
        method="POST", url=registration.registration_url, purpose="the client registration", json_body=metadata
    )


async def register_client(
    registration: ClientRegistration, *, access: AuthServerAccess, now: dt.datetime | None = None
) -> RegisteredClient:
    """POST the client metadata to the registration endpoint (RFC 7591) and read the issued client."""
    method = registration.method()
    request = registration_request(registration)
    url = request.url
    answer = await access.perform(request)
    if not answer.ok:
        raise _registration_error(rejection(answer, url=url, purpose=request.purpose))
    issued = access.read_issued_client(answer.document)
    where = answer.endpoint
    if issued is None:
        raise RegistrationRefused(
            f"{where} answered the registration without a valid client (no client_id?)",
            endpoint=where,
        )
    issued_method = issued.token_endpoint_auth_method or method
    secrets = (issued.client_secret, _text(answer.document, "registration_access_token"))
    if issued_method not in METHOD_PREFERENCE:
        raise RegistrationRefused(
            f"{where} registered client {issued.client_id!r} with auth method {issued_method!r}, "
            "which the reconciler cannot use",
            endpoint=where,
        )
    if issued_method != "none" and not issued.client_secret:
        raise RegistrationRefused(
            f"{where} registered client {issued.client_id!r} for {issued_method} without a secret",
            endpoint=where,
        )
    expires = issued.client_secret_expires_at
    client = RegisteredClient(
        issuer=registration.issuer,
        client_id=issued.client_id,
        token_endpoint_auth_method=issued_method,
        client_secret=issued.client_secret if issued_method != "none" else None,
        registration_client_uri=_text(answer.document, "registration_client_uri"),
        registration_access_token=secrets[1],
        client_secret_expires_at=dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None,
        registered_at=now or dt.datetime.now(dt.UTC),
    )
    logger.info(
        "registered OAuth client %s for %s/%s at %s (%s)",
        client.client_id,
        registration.tenant,
        registration.server,
        where,
        issued_method,
    )
    return client


def _registration_error(error: OAuthRejected | AuthServerUnavailable) -> OAuthRejected | AuthServerUnavailable:
    if isinstance(error, OAuthRejected) and not isinstance(error, RegistrationRefused):
        return RegistrationRefused(str(error), oauth_error=error.oauth_error, endpoint=error.endpoint)
    return error


def _text(document: Any, key: str) -> str | None:
    value = document.get(key) if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


# -- persisting and reusing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRows:
    """What keeping a client as a server's current one writes: its row, the values to seal, and the purposes
    whose sealed values go (a client without a registration token leaves none of an earlier one behind)."""

    record: OAuthClientRecord
    seal: tuple[NewSecret, ...]
    unseal: tuple[str, ...]


def client_rows(client: RegisteredClient, *, tenant: str, server: str) -> ClientRows:
    """The rows and sealed values of a client kept as the server's current one. Pure."""
    owner = {"clientId": client.client_id}
    record = OAuthClientRecord(
        tenant=tenant,
        server=server,
        issuer=client.issuer,
        client_id=client.client_id,
        client_secret_ref=local_reference(tenant, server, CLIENT_SECRET) if client.client_secret else None,
        registration_client_uri=client.registration_client_uri,
        registration_access_token_ref=(
            local_reference(tenant, server, REGISTRATION_TOKEN) if client.registration_access_token else None
        ),
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        expires_at=client.client_secret_expires_at,
        created_at=client.registered_at,
    )
    return ClientRows(
        record=record,
        seal=tuple(
            NewSecret(tenant, server, purpose, value, owner) for purpose, value in _active_values(client) if value
        ),
        unseal=tuple(purpose for purpose, value in _active_values(client) if value is None),
    )


def save_client(client: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores) -> OAuthClientRecord:
    """Store a client as the server's current one: secrets sealed, the rest in `oauth_clients`, one transaction."""
    rows = client_rows(client, tenant=tenant, server=server)
    with stores.registry.transaction() as transaction:
        stores.minted.delete(tenant, server, list(rows.unseal), transaction=transaction)
        stores.minted.put_all(rows.seal, transaction=transaction)
        transaction.put_oauth_client(rows.record)
    return rows.record


def _active_values(client: RegisteredClient) -> list[tuple[str, str | None]]:
    return [(CLIENT_SECRET, client.client_secret), (REGISTRATION_TOKEN, client.registration_access_token)]


def stored_clients(*, tenant: str, server: str, stores: CredentialStores) -> list[RegisteredClient]:
    """The server's registered clients with their secrets read back from the local store."""
    clients = []
    for record in stores.registry.fetch_oauth_clients(tenant=tenant, server=server):
        secret = stores.minted.get(tenant, server, CLIENT_SECRET) if record.client_secret_ref else None
        token = stores.minted.get(tenant, server, REGISTRATION_TOKEN) if record.registration_access_token_ref else None
        clients.append(
            RegisteredClient(
                issuer=record.issuer,
                client_id=record.client_id,
                token_endpoint_auth_method=record.token_endpoint_auth_method or "client_secret_basic",
                client_secret=secret.value if secret is not None else None,
                registration_client_uri=record.registration_client_uri,
                registration_access_token=token.value if token is not None else None,
                client_secret_expires_at=record.expires_at,
                registered_at=record.created_at,
                reused=True,
            )
        )
    return clients


def _usable(client: RegisteredClient, registration: ClientRegistration) -> bool:
    """A stored client still fits the spec: same issuer, public or confidential as asked, the method the spec
    names (if it names one), a method the server still advertises, and its secret still readable."""
    wanted = registration.method()
    if client.issuer != registration.issuer or client.is_metadata_document:
        return False
    if (client.token_endpoint_auth_method == "none") != (wanted == "none"):
        return False
    if registration.preferred_method is not None and client.token_endpoint_auth_method != wanted:
        return False
    advertised = registration.advertised_methods
    if advertised and client.token_endpoint_auth_method not in advertised:
        return False
    return wanted == "none" or client.client_secret is not None


async def ensure_client(
    registration: ClientRegistration,
    *,
    stores: CredentialStores,
    access: AuthServerAccess,
    now: dt.datetime | None = None,
) -> RegisteredClient:
    """The server's registered client: the stored one when it still fits, else a new registration (saved).

    Clients registered with another issuer (the server moved to another authorization server) are deregistered
    and forgotten first, never used against the new one; the result's `replaced_issuer` names the old issuer.
    """
    tenant, server = registration.tenant, registration.server
    current: RegisteredClient | None = None
    replaced: str | None = None
    for client in stored_clients(tenant=tenant, server=server, stores=stores):
        if current is None and _usable(client, registration):
            current = client
        else:
            replaced = client.issuer if client.issuer != registration.issuer else replaced
            await forget_client(client, tenant=tenant, server=server, stores=stores, access=access)
    if current is None:
        current = await register_client(registration, access=access, now=now)
        save_client(current, tenant=tenant, server=server, stores=stores)
    return replace(current, replaced_issuer=replaced)


async def ensure_metadata_client(
    *,
    tenant: str,
    server: str,
    issuer: str,
    client_id: str,
    stores: CredentialStores,
    access: AuthServerAccess,
    now: dt.datetime | None = None,
) -> RegisteredClient:
    """The server's CIMD client: nothing is registered, but the client id (the metadata document's URL) is kept in
    `oauth_clients` with the issuer it is used with, as every client is, so that a move to another authorization
    server is noticed (`replaced_issuer`). Other clients of the server (a dynamically registered one from before,
    or one bound to another issuer) are deregistered where RFC 7592 allows and forgotten."""
    current: RegisteredClient | None = None
    replaced: str | None = None
    for client in stored_clients(tenant=tenant, server=server, stores=stores):
        if current is None and client.issuer == issuer and client.client_id == client_id:
            current = client
        else:
            replaced = client.issuer if client.issuer != issuer else replaced
            await forget_client(client, tenant=tenant, server=server, stores=stores, access=access)
    if current is None:
        current = RegisteredClient(
            issuer=issuer,
            client_id=client_id,
            token_endpoint_auth_method="none",
            registered_at=now or dt.datetime.now(dt.UTC),
        )
        save_client(current, tenant=tenant, server=server, stores=stores)
        logger.info("using CIMD client %s for %s/%s with %s", client_id, tenant, server, issuer)
    return replace(current, replaced_issuer=replaced)


def bind_preset_client(*, tenant: str, server: str, client_id: str, issuer: str, stores: CredentialStores) -> None:
    """Hold a pre-registered client to the issuer it was first used with (SEP-2352).

    The binding is sealed in the minted store (the client id may be a Secret's value) and goes with the server.
    Raises `AuthServerChanged` when the resource now names another issuer for the same client id; a new client id
    in the spec is bound afresh.
    """
    stored = stores.minted.get(tenant, server, PRESET_CLIENT_BINDING)
    bound = None if stored is None else (stored.value, str(stored.meta.get("issuer", "")))
    decision = preset_binding(bound, client_id=client_id, issuer=issuer)
    if decision == "changed" and bound is not None:
        raise AuthServerChanged(previous=bound[1], current=issuer)
    if decision == "bind":
        stores.minted.put_all([NewSecret(tenant, server, PRESET_CLIENT_BINDING, client_id, {"issuer": issuer})])


# -- deregistering -------------------------------------------------------------------------------------------

DeregistrationResult = Literal["deregistered", "already-gone", "not-supported", "failed"]


def management_request(client: RegisteredClient, method: str) -> AuthServerRequest | None:
    """An RFC 7592 request on the client's configuration (`GET` reads it, `DELETE` deregisters), authenticated
    with its registration access token; None when the server gave no registration URI and token. Pure."""
    if not client.can_deregister:
        return None
    assert client.registration_client_uri is not None
    return AuthServerRequest(
        method=method,
        url=client.registration_client_uri,
        purpose="the client deregistration" if method == "DELETE" else "the client configuration read",
        headers={"Authorization": f"Bearer {client.registration_access_token}"},
        secrets=client.secrets(),
    )


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
    if answer.ok:
        return "deregistered"
    if answer.status in (401, 403, 404):
        # RFC 7592 section 2.3: an unknown client or revoked registration token answers 401.
        return "already-gone"
    logger.warning("deregistering OAuth client %s: the server answered HTTP %d", client.client_id, answer.status)
    return "failed"


async def forget_client(
    client: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> DeregistrationResult:
    """Deregister one client where RFC 7592 allows, then delete its row and its sealed secrets."""
    result = await deregister_client(client, access=access)
    # One client per server holds the sealed values; only delete them when they are this client's.
    owned = [
        purpose
        for purpose in (CLIENT_SECRET, REGISTRATION_TOKEN)
        if (stored := stores.minted.get(tenant, server, purpose)) is not None
        and stored.meta.get("clientId") == client.client_id
    ]
    with stores.registry.transaction() as transaction:
        transaction.delete_oauth_client(tenant, server, client.issuer)
        stores.minted.delete(tenant, server, owned, transaction=transaction)
    return result


async def forget_clients(
    *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> dict[str, DeregistrationResult]:
    """Deregister and delete every client of a server, a pending rotation included; result by client id."""
    results: dict[str, DeregistrationResult] = {}
    pending = pending_client(tenant=tenant, server=server, stores=stores)
    if pending is not None:
        results[pending.client_id] = await abandon_pending(
            pending, tenant=tenant, server=server, stores=stores, access=access
        )
    for client in stored_clients(tenant=tenant, server=server, stores=stores):
        results[client.client_id] = await forget_client(
            client, tenant=tenant, server=server, stores=stores, access=access
        )
    return results


# -- rotating ------------------------------------------------------------------------------------------------


def client_rotation_due(
    client: OAuthClientRecord | RegisteredClient,
    *,
    now: dt.datetime,
    max_age: dt.timedelta | None = None,
    renew_before: dt.timedelta = dt.timedelta(hours=1),
) -> str | None:
    """Why the client should be replaced now, or None. Pure.

    Due when its secret expires within `renew_before` (`client_secret_expires_at`), or when it is older than
    `max_age` (a platform's own rotation rule).
    """
    if isinstance(client, OAuthClientRecord):
        expires_at, created_at = client.expires_at, client.created_at
    else:
        expires_at, created_at = client.client_secret_expires_at, client.registered_at
    if expires_at is not None and now >= expires_at - renew_before:
        return f"its client secret expires at {expires_at.isoformat()}"
    if max_age is not None and created_at is not None and now >= created_at + max_age:
        return f"it was registered at {created_at.isoformat()}, more than {max_age} ago"
    return None


def pending_client(*, tenant: str, server: str, stores: CredentialStores) -> RegisteredClient | None:
    """A client registered for rotation and not yet promoted, if any (kept in the local store only)."""
    stored = stores.minted.get(tenant, server, PENDING_REGISTRATION_TOKEN) or stores.minted.get(
        tenant, server, PENDING_CLIENT_SECRET
    )
    if stored is None or not isinstance(stored.meta.get(PENDING_MARKER), dict):
        return None
    facts: dict[str, Any] = stored.meta[PENDING_MARKER]
    secret = stores.minted.get(tenant, server, PENDING_CLIENT_SECRET)
    token = stores.minted.get(tenant, server, PENDING_REGISTRATION_TOKEN)
    expires = facts.get("clientSecretExpiresAt")
    registered = facts.get("registeredAt")
    return RegisteredClient(
        issuer=str(facts["issuer"]),
        client_id=str(facts["clientId"]),
        token_endpoint_auth_method=str(facts["method"]),
        client_secret=secret.value if secret is not None and secret.value else None,
        registration_client_uri=facts.get("registrationClientUri"),
        registration_access_token=token.value if token is not None and token.value else None,
        client_secret_expires_at=dt.datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        registered_at=dt.datetime.fromisoformat(registered) if isinstance(registered, str) else None,
    )


def _save_pending(client: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores) -> None:
    facts = {
        "issuer": client.issuer,
        "clientId": client.client_id,
        "method": client.token_endpoint_auth_method,
        "registrationClientUri": client.registration_client_uri,
        "clientSecretExpiresAt": client.client_secret_expires_at.isoformat()
        if client.client_secret_expires_at
        else None,
        "registeredAt": client.registered_at.isoformat() if client.registered_at else None,
    }
    meta = {PENDING_MARKER: facts}
    # The facts go on whichever value exists; a public client without registration token still needs a row.
    values = [
        NewSecret(tenant, server, PENDING_CLIENT_SECRET, client.client_secret or "", meta),
        NewSecret(tenant, server, PENDING_REGISTRATION_TOKEN, client.registration_access_token or "", meta),
    ]
    stores.minted.put_all(values)


async def abandon_pending(
    pending: RegisteredClient, *, tenant: str, server: str, stores: CredentialStores, access: AuthServerAccess
) -> DeregistrationResult:
    """Drop a pending client that failed verification (deregistered where possible); the old one stays."""
    result = await deregister_client(pending, access=access)
    stores.minted.delete(tenant, server, [PENDING_CLIENT_SECRET, PENDING_REGISTRATION_TOKEN])
    return result


@dataclass(frozen=True)
class ClientRotation:
    """What `rotate_client` did: the client in use afterwards and what happened to the other one."""

    promoted: bool
    current: RegisteredClient
    retired: RegisteredClient | None = None
    retired_result: DeregistrationResult | None = None
    message: str = ""


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

    The new client is kept as pending (a crash leaves it findable by `pending_client`, and a later call resumes
    with it rather than registering yet another). `verify` decides, e.g. by minting a token with the new client
    and probing the live server (`rotation.verify_credential`). Verified: the new client becomes the server's
    client and `previous` is deregistered (RFC 7592). Not verified: the new one is deregistered, `previous` stays.
    """
    tenant, server = registration.tenant, registration.server
    pending = pending_client(tenant=tenant, server=server, stores=stores)
    if pending is None or pending.issuer != registration.issuer:
        pending = await register_client(registration, access=access, now=now)
        _save_pending(pending, tenant=tenant, server=server, stores=stores)
    if not await verify(pending):
        result = await abandon_pending(pending, tenant=tenant, server=server, stores=stores, access=access)
        return ClientRotation(
            promoted=False,
            current=previous,
            retired=pending,
            retired_result=result,
            message=f"the new client {pending.client_id} failed verification; keeping {previous.client_id}",
        )
    save_client(pending, tenant=tenant, server=server, stores=stores)
    stores.minted.delete(tenant, server, [PENDING_CLIENT_SECRET, PENDING_REGISTRATION_TOKEN])
    result = await deregister_client(previous, access=access)
    return ClientRotation(
        promoted=True,
        current=replace(pending, reused=False),
        retired=previous,
        retired_result=result,
        message=f"client {previous.client_id} replaced by {pending.client_id}",
    )


def scrub_client_secrets(text: str, *clients: RegisteredClient | None) -> str:
    """Text with any secret of these clients redacted (for messages built from server answers)."""
    return redact(text, [value for client in clients if client is not None for value in client.secrets()])


async def client_still_registered(client: RegisteredClient, *, access: AuthServerAccess) -> bool:
    """RFC 7592 read of the client configuration: the check that a registration (e.g. a rotated client that no
    token can be minted for, such as an authorization-code client) is live. True when the server cannot say."""
    request = management_request(client, "GET")
    if request is None:
        return True
    answer = await access.perform(request)
    document = answer.document or {}
    return answer.ok and document.get("client_id") == client.client_id
