"""Dynamic client registration (RFC 7591), its management protocol (RFC 7592), and rotating registered clients:
pure decisions. The engine (`engine/authorizing.py`) performs them: it sends the requests through the
authorization-server port and writes the rows and sealed values through the registry, then feeds the answers
back into the next decision here.

For `oauthAuthorizationCode` servers without a `clientId` and `oauthClientCredentials` servers with
`dynamicRegistration`, after apply (the client hangs off the server row): `choose_client` picks the kept client
that still fits the spec (`stored_client` reads one back) and names the others to forget, else
`registration_request` is sent and `read_registration` reads the issued client; `client_rows` says what keeping
it writes: the `oauth_clients` row (client id, auth method, registration URI, expiry) and the sealed values
(`local:<tenant>/<server>#dcr-client-secret`, `#dcr-registration-token`). A CIMD client (`choose_metadata_client`,
`metadata_client`: the client id is the URL of the reconciler's client metadata document, nothing is registered)
gets a row too, so every managed client id is bound to its issuer: a client recorded with another issuer than the
one discovery names now is forgotten, never used against the new one, and `ClientChoice.replaced_issuer` says so
(SEP-2352). A pre-registered client is held to its issuer by `preset_binding_secret`.

Auth method choice (`choose_auth_method`): a public client registers with `none`; a confidential one takes the
first of `client_secret_basic`, `client_secret_post`, `none` the server lists in
`token_endpoint_auth_methods_supported` (an absent list means `client_secret_basic`, RFC 8414).

Forgetting a client: `management_request(client, "DELETE")` (RFC 7592, where the server gave a registration URI and
token), `deregistration_result` reads the answer, `owned_purposes` says which sealed values were that client's.

Rotation: `client_rotation_due` says when a client should be replaced (`client_secret_expires_at` close, or older
than a maximum age). A new client is registered (`needs_new_pending`) and kept pending (`pending_secrets`,
`pending_from`) while the engine verifies it; then `rotation_promoted` (it becomes the server's client, the old one
is deregistered) or `rotation_abandoned` (it is deregistered, the old one stays).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from reconciler.credentials.authserver import AuthServerRequest, rejection
from reconciler.credentials.errors import (
    AuthServerChanged,
    AuthServerUnavailable,
    OAuthRejected,
    RegistrationRefused,
    redact,
)
from reconciler.credentials.identity import preset_binding
from reconciler.credentials.local_store import LocalSecret, MintedSecrets, NewSecret
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
from reconciler.records import AuthServerAnswer, IssuedClient, OAuthClientRecord

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


def read_registration(
    answer: AuthServerAnswer,
    *,
    request: AuthServerRequest,
    registration: ClientRegistration,
    issued: IssuedClient | None,
    now: dt.datetime,
) -> RegisteredClient:
    """The client an RFC 7591 registration answer issued (`issued`: the port's reading of its document). Pure.

    Raises `RegistrationRefused` for a refusal or a client the reconciler cannot use, `AuthServerUnavailable` when
    the server failed on its side.
    """
    if not answer.ok:
        raise _registration_error(rejection(answer, url=request.url, purpose=request.purpose))
    where = answer.endpoint
    if issued is None:
        raise RegistrationRefused(
            f"{where} answered the registration without a valid client (no client_id?)",
            endpoint=where,
        )
    issued_method = issued.token_endpoint_auth_method or registration.method()
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
    return RegisteredClient(
        issuer=registration.issuer,
        client_id=issued.client_id,
        token_endpoint_auth_method=issued_method,
        client_secret=issued.client_secret if issued_method != "none" else None,
        registration_client_uri=_text(answer.document, "registration_client_uri"),
        registration_access_token=_text(answer.document, "registration_access_token"),
        client_secret_expires_at=dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None,
        registered_at=now,
    )


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


def _active_values(client: RegisteredClient) -> list[tuple[str, str | None]]:
    return [(CLIENT_SECRET, client.client_secret), (REGISTRATION_TOKEN, client.registration_access_token)]


def stored_client(
    record: OAuthClientRecord, *, secret: LocalSecret | None, token: LocalSecret | None
) -> RegisteredClient:
    """A kept client as a `RegisteredClient`: its row, with the secret and registration token unsealed. Pure."""
    return RegisteredClient(
        issuer=record.issuer,
        client_id=record.client_id,
        token_endpoint_auth_method=record.token_endpoint_auth_method or "client_secret_basic",
        client_secret=secret.value if secret is not None and record.client_secret_ref else None,
        registration_client_uri=record.registration_client_uri,
        registration_access_token=token.value if token is not None and record.registration_access_token_ref else None,
        client_secret_expires_at=record.expires_at,
        registered_at=record.created_at,
        reused=True,
    )


@dataclass(frozen=True)
class ClientChoice:
    """Which kept client a server goes on with, and which to forget first (deregistered where RFC 7592 allows)."""

    keep: RegisteredClient | None
    """None: register a new one (or, for CIMD, record the metadata-document client)."""
    forget: tuple[RegisteredClient, ...] = ()
    replaced_issuer: str | None = None
    """The issuer of a forgotten client when it differs from the one used now: the server moved (SEP-2352)."""


def choose_client(stored: Sequence[RegisteredClient], registration: ClientRegistration) -> ClientChoice:
    """Of a server's kept clients, the first that still fits the spec (`_usable`); the others are forgotten, never
    used against another issuer. Pure; raises `RegistrationRefused` when no auth method fits."""
    return _choice(stored, registration.issuer, lambda client: _usable(client, registration))


def choose_metadata_client(stored: Sequence[RegisteredClient], *, issuer: str, client_id: str) -> ClientChoice:
    """Of a server's kept clients, its CIMD client for this issuer; any other (a dynamically registered one from
    before, or one bound to another issuer) is forgotten. Pure."""
    return _choice(stored, issuer, lambda client: client.issuer == issuer and client.client_id == client_id)


def _choice(stored: Sequence[RegisteredClient], issuer: str, fits: Callable[[RegisteredClient], bool]) -> ClientChoice:
    keep: RegisteredClient | None = None
    forget: list[RegisteredClient] = []
    replaced: str | None = None
    for client in stored:
        if keep is None and fits(client):
            keep = client
        else:
            replaced = client.issuer if client.issuer != issuer else replaced
            forget.append(client)
    return ClientChoice(keep=keep, forget=tuple(forget), replaced_issuer=replaced)


def metadata_client(*, issuer: str, client_id: str, now: dt.datetime, auth_method: str = "none") -> RegisteredClient:
    """The CIMD client to record: its id is the metadata document's URL, nothing is registered; it authenticates
    as its document says (`none`, or `private_key_jwt` for the client-credentials client). Pure."""
    return RegisteredClient(
        issuer=issuer, client_id=client_id, token_endpoint_auth_method=auth_method, registered_at=now
    )


def preset_binding_secret(
    stored: LocalSecret | None, *, tenant: str, server: str, client_id: str, issuer: str
) -> NewSecret | None:
    """What holding a pre-registered client to its issuer (SEP-2352) seals: the binding to write, or None when the
    recorded one stands. Pure.

    The binding is sealed (the client id may be a Secret's value) and goes with the server. Raises
    `AuthServerChanged` when the resource now names another issuer for the same client id; a new client id in the
    spec is bound afresh.
    """
    bound = None if stored is None else (stored.value, str(stored.meta.get("issuer", "")))
    decision = preset_binding(bound, client_id=client_id, issuer=issuer)
    if decision == "changed" and bound is not None:
        raise AuthServerChanged(previous=bound[1], current=issuer)
    if decision == "bind":
        return NewSecret(tenant, server, PRESET_CLIENT_BINDING, client_id, {"issuer": issuer})
    return None


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


def deregistration_result(answer: AuthServerAnswer) -> DeregistrationResult:
    """What an RFC 7592 DELETE's answer says. Pure."""
    if answer.ok:
        return "deregistered"
    if answer.status in (401, 403, 404):
        # RFC 7592 section 2.3: an unknown client or revoked registration token answers 401.
        return "already-gone"
    return "failed"


def owned_purposes(client: RegisteredClient, stored: Mapping[str, LocalSecret | None]) -> list[str]:
    """Which of the server's sealed client values (`stored`, by purpose) are this client's: one client per server
    holds them, and forgetting another client must not delete them. Pure."""
    return [
        purpose
        for purpose in (CLIENT_SECRET, REGISTRATION_TOKEN)
        if (value := stored.get(purpose)) is not None and value.meta.get("clientId") == client.client_id
    ]


def still_registered(answer: AuthServerAnswer, client: RegisteredClient) -> bool:
    """What an RFC 7592 read of the client configuration says: the registration is live. Pure."""
    document = answer.document or {}
    return answer.ok and document.get("client_id") == client.client_id


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


PENDING_PURPOSES = (PENDING_CLIENT_SECRET, PENDING_REGISTRATION_TOKEN)


def pending_from(secret: LocalSecret | None, token: LocalSecret | None) -> RegisteredClient | None:
    """A client registered for rotation and not yet promoted, from its sealed values (kept in the local store
    only; the facts ride on whichever value exists), or None. Pure."""
    stored = token or secret
    if stored is None or not isinstance(stored.meta.get(PENDING_MARKER), dict):
        return None
    facts: dict[str, Any] = stored.meta[PENDING_MARKER]
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


def pending_secrets(client: RegisteredClient, *, tenant: str, server: str) -> list[NewSecret]:
    """What keeping a client as pending seals: both values, each carrying the client's facts, so that a public
    client without a registration token still leaves a row (a crash then resumes with it). Pure."""
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
    return [
        NewSecret(tenant, server, PENDING_CLIENT_SECRET, client.client_secret or "", meta),
        NewSecret(tenant, server, PENDING_REGISTRATION_TOKEN, client.registration_access_token or "", meta),
    ]


def needs_new_pending(pending: RegisteredClient | None, registration: ClientRegistration) -> bool:
    """Whether a rotation registers a new client, or resumes with the pending one a crash left for the same
    issuer. Pure."""
    return pending is None or pending.issuer != registration.issuer


@dataclass(frozen=True)
class ClientRotation:
    """What the engine's `rotate_client` did: the client in use afterwards and what happened to the other one."""

    promoted: bool
    current: RegisteredClient
    retired: RegisteredClient | None = None
    retired_result: DeregistrationResult | None = None
    message: str = ""


def rotation_abandoned(
    previous: RegisteredClient, pending: RegisteredClient, result: DeregistrationResult
) -> ClientRotation:
    """The new client failed verification: it was deregistered (where possible), the old one stays. Pure."""
    return ClientRotation(
        promoted=False,
        current=previous,
        retired=pending,
        retired_result=result,
        message=f"the new client {pending.client_id} failed verification; keeping {previous.client_id}",
    )


def rotation_promoted(
    previous: RegisteredClient, pending: RegisteredClient, result: DeregistrationResult
) -> ClientRotation:
    """The new client was verified and kept; the old one was deregistered (where possible). Pure."""
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
