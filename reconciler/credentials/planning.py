"""What one server's OAuth auth needs before it is probed, and what rotating or releasing its client involves:
pure decisions. The engine (`engine/authorizing.py`) performs them through the ports in `CredentialContext` and
feeds the answers back in; this module and its siblings never send a request or open a transaction.

    discovery_step        whether the server must be discovered (or rediscovered) before its client is used
    client_registration   the RFC 7591 registration a dynamically registered client is asked for
    preset_client_id      the spec's client id (`clientId`, or the Secret `clientIdRef` names)
    preset_token_client   a pre-registered client's token endpoint credentials (secret or `private_key_jwt` key)
    registered_token_client   a registered client's, by its auth method
    token_url / token_scopes / token_resource   where and for what the client-credentials token is asked
    client_rotation_reason   why a registered client is due for replacement now (None for a CIMD client)
    PreparedCredentials / CredentialFailure   what the step produced for status (a failure: class and reason)

`record` is anything with a server row's facts (`ServerFacts`; the registry's `ServerRecord` is one); `discovery`
is the server's last `AuthDiscovery` (see `discovery_from_status` for the stored form).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reconciler.api.conditions import Reason
from reconciler.api.times import format_time
from reconciler.credentials.assertions import public_jwk, signing_algorithm
from reconciler.credentials.authserver import AuthServerAccess, AuthServerClient
from reconciler.credentials.errors import IncompleteAuthSpec, RegistrationRefused
from reconciler.credentials.headers import SecretReader
from reconciler.credentials.identity import (
    DEFAULT_REDIRECT_URI,
    ClientIdentity,
    choose_client_identity,
    client_credentials_metadata_url,
    redirect_uri,
)
from reconciler.credentials.registration import (
    AUTHORIZATION_CODE_GRANTS,
    CLIENT_CREDENTIALS_GRANTS,
    ClientRegistration,
    ClientRotation,
    CredentialStores,
    DeregistrationResult,
    RegisteredClient,
    client_rotation_due,
)
from reconciler.credentials.rotation import ProbeOutcome
from reconciler.credentials.stores import require_reference
from reconciler.credentials.tokens import DEFAULT_REFRESH_AT, MintedToken, TokenAuthMethod, TokenClient, secret_method
from reconciler.errors import ErrorClass, ReconcilerError, RetryableError, one_line
from reconciler.records import AuthDiscovery

logger = logging.getLogger(__name__)

DEFAULT_REDIRECT_URIS = (DEFAULT_REDIRECT_URI,)
DEFAULT_MAX_CONCURRENCY = 16


class ServerFacts(Protocol):
    """What the credentials step reads of a server row (`reconciler.registry.records.ServerRecord` has it)."""

    @property
    def tenant(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def transport(self) -> str: ...

    @property
    def auth_type(self) -> str: ...

    @property
    def auth(self) -> Mapping[str, Any]: ...

    @property
    def allow_private(self) -> bool: ...


@dataclass(frozen=True)
class CredentialSettings:
    """The reconciler's credential policy (flags or Helm values)."""

    refresh_at: float = DEFAULT_REFRESH_AT
    """Renew a minted token once this fraction of its lifetime has passed."""
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    """The runtime's OAuth callback(s), registered with every dynamically registered authorization-code client."""
    client_name: str = "mcp-reconciler"
    client_max_age: dt.timedelta | None = None
    """Re-register dynamically registered clients older than this (None: only when their secret expires)."""
    renew_client_before: dt.timedelta = dt.timedelta(hours=1)
    """Re-register a client this long before its `client_secret_expires_at`."""
    public_url: str | None = None
    """Where the reconciler is reachable (`--public-url`): its CIMD client id and callback are built from it."""

    @classmethod
    def for_public_url(cls, public_url: str | None, **settings: Any) -> CredentialSettings:
        """Settings whose redirect URIs are `{public URL}/oauth/callback` and the loopback one, so that both the
        connect service and an administrator's `connect` at a terminal (RFC 8252, any port) can finish a login."""
        uris = tuple(dict.fromkeys((redirect_uri(public_url), DEFAULT_REDIRECT_URI)))
        return cls(public_url=public_url, redirect_uris=uris, **settings)


@dataclass(frozen=True)
class CredentialContext:
    """The ports and settings the engine performs the credentials package's decisions with; built once per run by
    the engine (`engine/crediting.credentials_context`). Credentials only names them."""

    stores: CredentialStores
    secrets: SecretReader
    """User Secrets and minted values (`LocalSecretStore`, or the operator's scoped Kubernetes store)."""
    authserver: AuthServerClient
    """The authorization-server port (the engine passes the probe's `ProbeAuthServer`)."""
    fingerprint_key: bytes
    settings: CredentialSettings = CredentialSettings()
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """How many servers the engine prepares at once (the probe's `max_concurrency`)."""

    def access(self, *, allow_private: bool) -> AuthServerAccess:
        return AuthServerAccess(client=self.authserver, allow_private=allow_private)


@dataclass(frozen=True)
class PreparedCredentials:
    """What the credentials step produced for one server. Header values never appear in the repr."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Merge over the probe target's headers (these win): the minted `Authorization`."""
    list_tools: bool | None = None
    """True: the reconciler holds a credential to list tools with; False: it cannot (members authorize);
    None: not an OAuth server, keep the engine's own decision."""
    fingerprint: str | None = None
    expires_at: dt.datetime | None = None
    token_reference: str | None = None
    """`local:<tenant>/<server>#oauth-access-token`: where runtimes read the shared minted token."""
    minted: bool = False
    """A token was minted by this call (False: reused from the cache)."""
    client: RegisteredClient | None = None
    client_rotation_due: str | None = None
    authorization_url_template: str | None = None
    connected_members: int | None = None
    discovery: AuthDiscovery | None = None
    """Set when this step had to discover the server itself."""
    identity: ClientIdentity | None = None
    """How the reconciler identified itself: CIMD, a dynamically registered client, or the spec's client id."""

    def credential_status(self) -> dict[str, Any]:
        """camelCase facts for `status.credentials` (`reconciler.api.server.CredentialStatus`); no values.

        `previousIssuer` is set only in the pass that found the server moved to another authorization server:
        the status builder turns it into the AuthServerChanged condition and keeps it out of `status.credentials`.
        """
        client = self.client
        facts: dict[str, Any] = {
            "secretRef": self.token_reference,
            "fingerprint": self.fingerprint,
            "expiresAt": format_time(self.expires_at) if self.expires_at else None,
            "authorizationUrlTemplate": self.authorization_url_template,
            "connectedMembers": self.connected_members,
            "clientIdentity": self.identity,
            "issuer": client.issuer if client is not None else None,
            "previousIssuer": client.replaced_issuer if client is not None else None,
        }
        return {key: value for key, value in facts.items() if value is not None}


@dataclass(frozen=True)
class CredentialFailure:
    """A failed credentials step, ready for status: class and reason as for a failed probe."""

    error_class: ErrorClass
    reason: str
    message: str
    retry_after: float | None = None
    """Seconds, for retryable failures."""

    @classmethod
    def internal(cls, record: ServerFacts, error: BaseException) -> CredentialFailure:
        """A fault in the reconciler itself while preparing one server's credentials (logged without its text)."""
        logger.error(
            "credentials for %s/%s failed inside the reconciler (%s); other servers are not affected\n%s",
            record.tenant,
            record.name,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )
        message = f"internal error while preparing credentials: {type(error).__name__}: {error}"
        return cls("internal", str(Reason.INTERNAL_ERROR), one_line(message))

    @classmethod
    def of(cls, error: ReconcilerError) -> CredentialFailure:
        error_class: ErrorClass = getattr(error, "error_class", "auth")
        retry = error.delay if isinstance(error, RetryableError) else None
        return cls(error_class, str(getattr(error, "reason", "AuthError")), str(error), retry)


# -- deciding ------------------------------------------------------------------------------------------------

DiscoveryStep = Literal["discover", "rediscover"]


def discovery_step(
    record: ServerFacts, discovery: AuthDiscovery | None, *, client_id: str | None
) -> DiscoveryStep | None:
    """Whether the server is asked for its auth discovery before its client is used. Pure.

    `discover` when an endpoint the spec omits is needed and no stored discovery knows it (a failure is the
    server's failure); `rediscover` when a stored discovery names an issuer: a client is bound to the issuer the
    resource names now (SEP-2352), and the stored one may predate a move (a failure keeps the stored one).
    `client_id` is the spec's preset client id, if any (authorization code needs no registration endpoint then).
    """
    auth = record.auth
    if record.auth_type == "oauthAuthorizationCode":
        needs_registration = client_id is None and not auth.get("registerUrl")
        needs_endpoints = not auth.get("authUrl") or needs_registration
    else:
        # Dynamic registration needs the registration endpoint, which only discovery knows for this auth type; a
        # CIMD client (a key, no client id) needs the metadata that says whether the issuer takes CIMD.
        needs_endpoints = (
            not auth.get("tokenUrl")
            or bool(auth.get("dynamicRegistration"))
            or signs_as_metadata_client(record, client_id)
        )
    if discovery is None and needs_endpoints:
        return "discover"
    if discovery is not None and discovery.authorization_servers:
        return "rediscover"
    return None


def token_url(record: ServerFacts, discovery: AuthDiscovery | None) -> str:
    """The token endpoint: the spec's, else discovery's; `IncompleteAuthSpec` when neither names one. Pure."""
    url = record.auth.get("tokenUrl") or (discovery.token_url if discovery else None)
    if not url:
        raise IncompleteAuthSpec(
            f"server {record.tenant}/{record.name}: no token endpoint; set spec.auth.tokenUrl (discovery found none)"
        )
    return str(url)


def token_scopes(record: ServerFacts, discovery: AuthDiscovery | None) -> tuple[str, ...]:
    """The spec's scopes, else the ones discovery advertised. Pure."""
    return _scopes(record.auth) or (discovery.scopes_supported if discovery else ())


def token_resource(record: ServerFacts, discovery: AuthDiscovery | None) -> str | None:
    """The RFC 8707 resource: the spec's, else the protected resource discovery named. Pure."""
    resource = record.auth.get("resource") or (discovery.resource if discovery else None)
    return None if resource is None else str(resource)


def preset_client_id(record: ServerFacts, *, secrets: SecretReader) -> str | None:
    """The spec's client id: `clientId`, or the value of the Secret `clientIdRef` names (None: register one)."""
    return _client_id(record, secrets=secrets)


def preset_token_client(
    record: ServerFacts, *, client_id: str, token_url: str, secrets: SecretReader, discovery: AuthDiscovery | None
) -> TokenClient:
    """A pre-registered client's token endpoint credentials: a `private_key_jwt` key, else its secret with the
    method the spec names or the server prefers. Reads the Secrets the spec names."""
    auth = record.auth
    key_ref = auth.get("clientAssertionKeyRef")
    if isinstance(key_ref, str):
        return _assertion_client(record, client_id, key_ref, token_url=token_url, secrets=secrets, discovery=discovery)
    secret_ref = auth.get("clientSecretRef")
    if not isinstance(secret_ref, str):
        raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: set spec.auth.clientSecret.secretKeyRef")
    secret = require_reference(secrets, secret_ref, purpose="spec.auth.clientSecret")
    method = auth.get("tokenEndpointAuthMethod") or _preferred_secret_method(discovery)
    return TokenClient(token_url=token_url, client_id=client_id, client_secret=secret, method=method)


def signs_as_metadata_client(record: ServerFacts, client_id: str | None) -> bool:
    """A client-credentials server with a `private_key_jwt` key and no client id: the reconciler is its CIMD client,
    whose metadata document names the `jwks_uri` where `serve` publishes the key's public half. Pure."""
    return client_id is None and isinstance(record.auth.get("clientAssertionKeyRef"), str)


def metadata_assertion_client_id(
    record: ServerFacts, *, public_url: str | None, discovery: AuthDiscovery | None
) -> str:
    """The CIMD client id of the reconciler's `private_key_jwt` client for this server; `IncompleteAuthSpec` when the
    issuer does not take CIMD or there is no public URL to publish the document and keys at. Pure."""
    identity = choose_client_identity(
        preset_client_id=False,
        code_flow=False,
        confidential=True,
        public_url=public_url,
        cimd_supported=discovery is not None and discovery.client_id_metadata_document_supported,
        signs_assertions=True,
    )
    if identity != "cimd" or discovery is None or not public_url:
        need = (
            "a public URL to publish its metadata document and keys at (--public-url, $MCP_RECONCILER_PUBLIC_URL, "
            "the chart's publicUrl)"
            if not public_url
            else "an authorization server that advertises client_id_metadata_document_supported"
        )
        raise IncompleteAuthSpec(
            f"server {record.tenant}/{record.name}: spec.auth.clientAssertion without clientId makes the reconciler a "
            f"Client ID Metadata Document client, which needs {need}; or set spec.auth.clientId"
        )
    return client_credentials_metadata_url(public_url, tenant=record.tenant)


def metadata_token_client(
    record: ServerFacts, *, client_id: str, token_url: str, secrets: SecretReader, discovery: AuthDiscovery | None
) -> TokenClient:
    """The CIMD `private_key_jwt` client's token endpoint credentials: signed with the `kid` and `alg` its published
    JWK names, so the authorization server finds the key. Reads the Secret the spec names."""
    key_ref = str(record.auth["clientAssertionKeyRef"])
    return _assertion_client(
        record, client_id, key_ref, token_url=token_url, secrets=secrets, discovery=discovery, published=True
    )


def registered_token_client(client: RegisteredClient, *, token_url: str) -> TokenClient:
    """A registered client's token endpoint credentials, by the auth method it registered with. Pure."""
    methods: dict[str, TokenAuthMethod] = {"client_secret_post": "client_secret_post", "none": "none"}
    method = methods.get(client.token_endpoint_auth_method, "client_secret_basic")
    return TokenClient(
        token_url=token_url, client_id=client.client_id, client_secret=client.client_secret, method=method
    )


def _preferred_secret_method(discovery: AuthDiscovery | None) -> TokenAuthMethod:
    return secret_method(None, discovery.token_endpoint_auth_methods_supported if discovery else ())


def _scopes(auth: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = auth.get("scopes")
    return tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else ()


def client_registration(
    record: ServerFacts,
    *,
    settings: CredentialSettings,
    discovery: AuthDiscovery | None,
    confidential: bool,
    origin: Callable[[str], str],
) -> ClientRegistration:
    """The RFC 7591 registration to ask for (or to find kept): the same inputs each time, so a re-registration asks
    for the same client. `origin` is the port's `scheme://host[:port]` of a URL. Pure."""
    auth = record.auth
    registration_url = auth.get("registerUrl") or (discovery.register_url if discovery else None)
    if not registration_url:
        raise RegistrationRefused(
            f"server {record.tenant}/{record.name}: the authorization server offers no registration endpoint "
            "(RFC 7591); set spec.auth.clientId (and clientSecret)"
        )
    code_flow = record.auth_type == "oauthAuthorizationCode"
    return ClientRegistration(
        tenant=record.tenant,
        server=record.name,
        issuer=client_issuer(discovery, fallback=registration_url, origin=origin),
        registration_url=registration_url,
        confidential=confidential,
        advertised_methods=discovery.token_endpoint_auth_methods_supported if discovery else (),
        grant_types=AUTHORIZATION_CODE_GRANTS if code_flow else CLIENT_CREDENTIALS_GRANTS,
        redirect_uris=settings.redirect_uris if code_flow else (),
        scopes=_scopes(auth) or (discovery.scopes_supported if discovery else ()),
        client_name=settings.client_name,
        preferred_method=None if code_flow else _declared_secret_method(auth),
    )


def client_issuer(discovery: AuthDiscovery | None, *, fallback: str, origin: Callable[[str], str]) -> str:
    """The issuer a client is bound to: the one discovery named, else the origin of the endpoint it talks to. Pure."""
    if discovery is not None and discovery.authorization_servers:
        return discovery.authorization_servers[0]
    return origin(fallback)


def bound_issuer(discovery: AuthDiscovery | None) -> str | None:
    """The issuer a pre-registered client is held to: the one discovery names (None: nothing to hold it to). Pure."""
    if discovery is not None and discovery.authorization_servers:
        return discovery.authorization_servers[0]
    return None


def rotation_confidential(record: ServerFacts) -> bool:
    """Whether a rotated client registers as confidential: always for client credentials, as the spec's `pkce`
    says for authorization code. Pure."""
    if record.auth_type == "oauthAuthorizationCode":
        return record.auth.get("pkce") == "confidential"
    return True


def client_rotation_reason(
    client: RegisteredClient | None, *, settings: CredentialSettings, now: dt.datetime
) -> str | None:
    """Why the server's registered client should be replaced now, or None. Pure."""
    if client is None or client.is_metadata_document:  # a CIMD client has no secret and no registration to renew
        return None
    return client_rotation_due(
        client, now=now, max_age=settings.client_max_age, renew_before=settings.renew_client_before
    )


def with_token(prepared: PreparedCredentials, token: MintedToken) -> PreparedCredentials:
    """What the step produced, with the token the probe will present. Pure."""
    return dataclasses.replace(
        prepared,
        headers=token.headers(),
        fingerprint=token.fingerprint,
        expires_at=token.expires_at,
        token_reference=token.reference,
        minted=token.fresh,
    )


def _assertion_client(
    record: ServerFacts,
    client_id: str,
    key_ref: str,
    *,
    token_url: str,
    secrets: SecretReader,
    discovery: AuthDiscovery | None,
    published: bool = False,
) -> TokenClient:
    """A `private_key_jwt` client: the key from its Secret, the algorithm fitted to the key and the server. A CIMD
    client (`published`) signs with the `kid` and `alg` its published JWK names, so the server finds the key."""
    settings = record.auth.get("clientAssertion") or {}
    pem = require_reference(secrets, key_ref, purpose="spec.auth.clientAssertion.privateKey")
    key_id: str | None
    if published:
        jwk = public_jwk(pem, key_id=settings.get("keyId"), algorithm=settings.get("algorithm"))
        algorithm, key_id = str(jwk["alg"]), str(jwk["kid"])
    else:
        advertised = discovery.token_endpoint_auth_signing_alg_values_supported if discovery else ()
        algorithm = signing_algorithm(pem, declared=settings.get("algorithm"), advertised=advertised)
        key_id = settings.get("keyId")
    return TokenClient(
        token_url=token_url,
        client_id=client_id,
        method="private_key_jwt",
        private_key=pem,
        signing_algorithm=algorithm,
        key_id=key_id,
    )


def _client_id(record: ServerFacts, *, secrets: SecretReader) -> str | None:
    auth = record.auth
    if isinstance(auth.get("clientId"), str):
        return str(auth["clientId"])
    if isinstance(auth.get("clientIdRef"), str):
        return require_reference(secrets, auth["clientIdRef"], purpose="spec.auth.clientId")
    return None


def _declared_secret_method(auth: Mapping[str, Any]) -> TokenAuthMethod | None:
    declared = auth.get("tokenEndpointAuthMethod")
    methods: dict[str, TokenAuthMethod] = {
        "client_secret_basic": "client_secret_basic",
        "client_secret_post": "client_secret_post",
    }
    return methods.get(declared) if isinstance(declared, str) else None


# -- the stored discovery --------------------------------------------------------------------------------


def discovery_from_status(status: Mapping[str, Any] | None) -> AuthDiscovery | None:
    """The `AuthDiscovery` a probe stored (`AuthDiscovery.as_status()`, e.g. `ProbeStateRecord.discovery`)."""
    if not status or status.get("requiresAuth") is None:
        return None

    def texts(key: str) -> tuple[str, ...]:
        value = status.get(key)
        return tuple(str(item) for item in value) if isinstance(value, list) else ()

    def text(key: str) -> str | None:
        value = status.get(key)
        return value if isinstance(value, str) else None

    return AuthDiscovery(
        requires_auth=bool(status["requiresAuth"]),
        recommended_auth_mode=text("recommendedAuthMode"),
        resource=text("resource"),
        resource_metadata_url=text("resourceMetadataUrl"),
        authorization_servers=texts("authorizationServers"),
        auth_url=text("authUrl"),
        token_url=text("tokenUrl"),
        register_url=text("registerUrl"),
        scopes_supported=texts("scopesSupported"),
        token_endpoint_auth_methods_supported=texts("tokenEndpointAuthMethodsSupported"),
        token_endpoint_auth_signing_alg_values_supported=texts("tokenEndpointAuthSigningAlgValuesSupported"),
        grant_types_supported=texts("grantTypesSupported"),
        client_id_metadata_document_supported=status.get("clientIdMetadataDocumentSupported") is True,
    )


# -- outcomes of rotating and releasing ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerClientRotation:
    """The engine's `rotate_server_client` outcome; `probe` is the verification probe (client credentials), if one
    ran."""

    rotation: ClientRotation
    probe: ProbeOutcome | None = None


@dataclass(frozen=True)
class ReleasedCredentials:
    """What deleting a server's credentials did: each client's deregistration and how many values went."""

    clients: Mapping[str, DeregistrationResult]
    deleted_values: int
