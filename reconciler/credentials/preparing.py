"""The credentials step of the reconcile loop: what one server's OAuth auth needs before it is probed, and what
its deletion must clean up. This is the module the engine calls; the others are its parts.

    after apply, before probe   prepare_server_credentials(record, context=..., discovery=...)  (or prepare_many)
                                  oauthClientCredentials: (register the client when dynamicRegistration; a key
                                    without clientId: the private_key_jwt CIMD client) and mint or reuse a token
                                    → `headers` to merge into the probe target (they win)
                                  oauthAuthorizationCode: the client per `identity.choose_client_identity`
                                    (clientId, else CIMD, else RFC 7591 registration),
                                    → `authorization_url_template`, `connected_members`; nothing to list with
                                  other auth types: nothing (their headers come from `headers.py`)
    client rotation due         rotate_server_client(record, context=..., discovery=..., verify_with=...)
    before deleting a server    release_server_credentials(tenant, server, context=...)

Failures raise the errors of `errors.py` (`prepare_many` returns them as `CredentialFailure`s instead), each with
an `error_class` and a `reason` for status. `discovery` is the server's last `AuthDiscovery` (see
`discovery_from_status` for the stored form); when an endpoint the spec omits is needed and none is known, the
server is discovered here. Every request goes through the context's `AuthServerClient` port (the probe's
SSRF-guarded HTTP, which the engine passes in), and every row and sealed value through the `storage` ports; this
package imports neither the probe nor the registry. `record` is anything with a server row's facts
(`ServerFacts`; the registry's `ServerRecord` is one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from reconciler.api.conditions import Reason
from reconciler.api.times import format_time
from reconciler.credentials.assertions import public_jwk, signing_algorithm
from reconciler.credentials.authorization import authorization_url_template, connected_members
from reconciler.credentials.authserver import AuthServerAccess, AuthServerClient
from reconciler.credentials.errors import AuthServerUnavailable, IncompleteAuthSpec, RegistrationRefused
from reconciler.credentials.headers import SecretReader
from reconciler.credentials.identity import (
    DEFAULT_REDIRECT_URI,
    ClientIdentity,
    choose_client_identity,
    client_credentials_metadata_url,
    metadata_document_url,
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
    bind_preset_client,
    client_rotation_due,
    client_still_registered,
    ensure_client,
    ensure_metadata_client,
    forget_clients,
    rotate_client,
)
from reconciler.credentials.rotation import ProbeOutcome, verdict
from reconciler.credentials.stores import require_reference
from reconciler.credentials.tokens import (
    DEFAULT_REFRESH_AT,
    MemoryTokenCache,
    MintedToken,
    StoredTokenCache,
    TokenAuthMethod,
    TokenClient,
    client_credentials_token,
)
from reconciler.errors import ErrorClass, PermanentError, ReconcilerError, RetryableError, one_line
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
    """What the credentials step works with; built once per reconcile run by the driver."""

    stores: CredentialStores
    secrets: SecretReader
    """User Secrets and minted values (`LocalSecretStore`, or the operator's scoped Kubernetes store)."""
    authserver: AuthServerClient
    """The authorization-server port (the engine passes the probe's `ProbeAuthServer`)."""
    fingerprint_key: bytes
    settings: CredentialSettings = CredentialSettings()
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """How many servers `prepare_many` prepares at once (the probe's `max_concurrency`)."""

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
    auth = record.auth
    access = context.access(allow_private=record.allow_private)
    discovered = None
    # Dynamic registration needs the registration endpoint, which only discovery knows for this auth type; a
    # registered client is bound to the issuer the resource names now, so a stored discovery is asked again.
    dynamic = bool(auth.get("dynamicRegistration"))
    # A CIMD client (a key, no client id) needs the metadata that says whether the issuer takes CIMD, and its issuer.
    metadata_client = isinstance(auth.get("clientAssertionKeyRef"), str) and _client_id(record, context=context) is None
    if discovery is None and (not auth.get("tokenUrl") or dynamic or metadata_client):
        discovery = discovered = await discover_server(record, access=access)
    elif discovery is not None and discovery.authorization_servers:
        discovery = discovered = await _rediscover(record, access=access, stored=discovery)
    client, token_client = await _token_client(record, context=context, discovery=discovery, now=now)
    token = await client_credentials_token(
        client=token_client,
        scopes=_scopes(auth) or (discovery.scopes_supported if discovery else ()),
        resource=auth.get("resource") or (discovery.resource if discovery else None),
        audience=auth.get("audience"),
        access=access,
        cache=StoredTokenCache(context.stores.minted, tenant=record.tenant, server=record.name),
        fingerprint_key=context.fingerprint_key,
        now=now,
        refresh_at=context.settings.refresh_at,
    )
    return _with_token(
        PreparedCredentials(
            list_tools=True,
            client=client,
            client_rotation_due=_rotation_due(client, context=context, now=now),
            discovery=discovered,
            identity=("cimd" if client.is_metadata_document else "dynamic") if client is not None else "preregistered",
        ),
        token,
    )


def _with_token(prepared: PreparedCredentials, token: MintedToken) -> PreparedCredentials:
    return dataclasses.replace(
        prepared,
        headers=token.headers(),
        fingerprint=token.fingerprint,
        expires_at=token.expires_at,
        token_reference=token.reference,
        minted=token.fresh,
    )


async def _token_client(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> tuple[RegisteredClient | None, TokenClient]:
    """The client that asks for tokens: registered dynamically, or the spec's client id and secret."""
    auth = record.auth
    token_url = auth.get("tokenUrl") or (discovery.token_url if discovery else None)
    if not token_url:
        raise IncompleteAuthSpec(
            f"server {record.tenant}/{record.name}: no token endpoint; set spec.auth.tokenUrl (discovery found none)"
        )
    if auth.get("dynamicRegistration"):
        registration = _registration(record, context=context, discovery=discovery, confidential=True)
        client = await ensure_client(
            registration,
            stores=context.stores,
            access=context.access(allow_private=record.allow_private),
            now=now,
        )
        return client, _client_for(client, token_url=token_url)
    client_id = _client_id(record, context=context)
    key_ref = auth.get("clientAssertionKeyRef")
    if client_id is None and isinstance(key_ref, str):
        client = await _metadata_assertion_client(record, context=context, discovery=discovery, now=now)
        return client, _assertion_client(
            record, client.client_id, key_ref, token_url=token_url, context=context, discovery=discovery, published=True
        )
    if client_id is None:
        raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: set spec.auth.clientId")
    _bind_preset(record, client_id=client_id, discovery=discovery, context=context)
    if isinstance(key_ref, str):
        return None, _assertion_client(
            record, client_id, key_ref, token_url=token_url, context=context, discovery=discovery
        )
    secret_ref = auth.get("clientSecretRef")
    if not isinstance(secret_ref, str):
        raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: set spec.auth.clientSecret.secretKeyRef")
    secret = require_reference(context.secrets, secret_ref, purpose="spec.auth.clientSecret")
    method = auth.get("tokenEndpointAuthMethod") or _preferred_secret_method(discovery)
    return None, TokenClient(token_url=token_url, client_id=client_id, client_secret=secret, method=method)


def _assertion_client(
    record: ServerFacts,
    client_id: str,
    key_ref: str,
    *,
    token_url: str,
    context: CredentialContext,
    discovery: AuthDiscovery | None,
    published: bool = False,
) -> TokenClient:
    """A `private_key_jwt` client: the key from its Secret, the algorithm fitted to the key and the server. A CIMD
    client (`published`) signs with the `kid` and `alg` its published JWK names, so the server finds the key."""
    settings = record.auth.get("clientAssertion") or {}
    pem = require_reference(context.secrets, key_ref, purpose="spec.auth.clientAssertion.privateKey")
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


async def _metadata_assertion_client(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> RegisteredClient:
    """The reconciler's `private_key_jwt` CIMD client for a server with a key and no client id, bound to the
    issuer like every client; `IncompleteAuthSpec` when the issuer does not take CIMD or there is no public URL."""
    public_url = context.settings.public_url
    supported = discovery is not None and discovery.client_id_metadata_document_supported
    identity = choose_client_identity(
        preset_client_id=False,
        code_flow=False,
        confidential=True,
        public_url=public_url,
        cimd_supported=supported,
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
    return await ensure_metadata_client(
        tenant=record.tenant,
        server=record.name,
        issuer=_issuer(discovery, fallback=discovery.token_url or record.url, context=context),
        client_id=client_credentials_metadata_url(public_url),
        stores=context.stores,
        access=context.access(allow_private=record.allow_private),
        now=now,
    )


def _client_for(client: RegisteredClient, *, token_url: str) -> TokenClient:
    methods: dict[str, TokenAuthMethod] = {"client_secret_post": "client_secret_post", "none": "none"}
    method = methods.get(client.token_endpoint_auth_method, "client_secret_basic")
    return TokenClient(
        token_url=token_url, client_id=client.client_id, client_secret=client.client_secret, method=method
    )


def _preferred_secret_method(discovery: AuthDiscovery | None) -> TokenAuthMethod:
    advertised = discovery.token_endpoint_auth_methods_supported if discovery else ()
    if advertised and "client_secret_basic" not in advertised and "client_secret_post" in advertised:
        return "client_secret_post"
    return "client_secret_basic"


def _client_id(record: ServerFacts, *, context: CredentialContext) -> str | None:
    auth = record.auth
    if isinstance(auth.get("clientId"), str):
        return str(auth["clientId"])
    if isinstance(auth.get("clientIdRef"), str):
        return require_reference(context.secrets, auth["clientIdRef"], purpose="spec.auth.clientId")
    return None


def _scopes(auth: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = auth.get("scopes")
    return tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else ()


def _registration(
    record: ServerFacts,
    *,
    context: CredentialContext,
    discovery: AuthDiscovery | None,
    confidential: bool,
) -> ClientRegistration:
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
        issuer=_issuer(discovery, fallback=registration_url, context=context),
        registration_url=registration_url,
        confidential=confidential,
        advertised_methods=discovery.token_endpoint_auth_methods_supported if discovery else (),
        grant_types=AUTHORIZATION_CODE_GRANTS if code_flow else CLIENT_CREDENTIALS_GRANTS,
        redirect_uris=context.settings.redirect_uris if code_flow else (),
        scopes=_scopes(auth) or (discovery.scopes_supported if discovery else ()),
        client_name=context.settings.client_name,
        preferred_method=None if code_flow else _declared_secret_method(auth),
    )


def _issuer(discovery: AuthDiscovery | None, *, fallback: str, context: CredentialContext) -> str:
    """The issuer a client is bound to: the one discovery named, else the origin of the endpoint it talks to."""
    if discovery is not None and discovery.authorization_servers:
        return discovery.authorization_servers[0]
    return context.authserver.origin(fallback)


async def _rediscover(record: ServerFacts, *, access: AuthServerAccess, stored: AuthDiscovery) -> AuthDiscovery:
    """Discovery asked again before a client is used: a client is bound to the issuer the resource names now
    (SEP-2352), and a stored discovery may predate a move to another authorization server. When the resource
    cannot be asked right now, the stored discovery stands and the check waits for the next pass."""
    try:
        return await discover_server(record, access=access)
    except AuthServerUnavailable as err:
        logger.info("rediscovering %s/%s failed, keeping the stored discovery: %s", record.tenant, record.name, err)
        return stored


def _bind_preset(
    record: ServerFacts, *, client_id: str, discovery: AuthDiscovery | None, context: CredentialContext
) -> None:
    """Hold the spec's client id to the issuer discovery names (nothing to hold it to when discovery named none)."""
    if discovery is not None and discovery.authorization_servers:
        bind_preset_client(
            tenant=record.tenant,
            server=record.name,
            client_id=client_id,
            issuer=discovery.authorization_servers[0],
            stores=context.stores,
        )


def _declared_secret_method(auth: Mapping[str, Any]) -> TokenAuthMethod | None:
    declared = auth.get("tokenEndpointAuthMethod")
    methods: dict[str, TokenAuthMethod] = {
        "client_secret_basic": "client_secret_basic",
        "client_secret_post": "client_secret_post",
    }
    return methods.get(declared) if isinstance(declared, str) else None


def _rotation_due(client: RegisteredClient | None, *, context: CredentialContext, now: dt.datetime) -> str | None:
    if client is None or client.is_metadata_document:  # a CIMD client has no secret and no registration to renew
        return None
    return client_rotation_due(
        client, now=now, max_age=context.settings.client_max_age, renew_before=context.settings.renew_client_before
    )


async def _prepare_authorization_code(
    record: ServerFacts, *, context: CredentialContext, discovery: AuthDiscovery | None, now: dt.datetime
) -> PreparedCredentials:
    auth = record.auth
    access = context.access(allow_private=record.allow_private)
    client_id = _client_id(record, context=context)
    confidential = auth.get("pkce") == "confidential"
    discovered = None
    needs_registration = client_id is None and not auth.get("registerUrl")
    if discovery is None and (not auth.get("authUrl") or needs_registration):
        discovery = discovered = await discover_server(record, access=access)
    elif discovery is not None and discovery.authorization_servers:
        discovery = discovered = await _rediscover(record, access=access, stored=discovery)
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
            issuer=_issuer(discovery, fallback=discovery.auth_url or record.url, context=context),
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
        _bind_preset(record, client_id=client_id, discovery=discovery, context=context)
    auth_url = auth.get("authUrl") or (discovery.auth_url if discovery else None)
    template = None
    if auth_url:
        template = authorization_url_template(
            auth_url=auth_url,
            client_id=client_id,
            scopes=_scopes(auth) or (discovery.scopes_supported if discovery else ()),
            resource=auth.get("resource") or (discovery.resource if discovery else None),
        )
    return PreparedCredentials(
        list_tools=False,
        client=client,
        client_rotation_due=_rotation_due(client, context=context, now=now),
        authorization_url_template=template,
        connected_members=connected_members(context.stores.registry, record.tenant, record.name),
        discovery=discovered,
        identity=identity,
    )


# -- discovery -----------------------------------------------------------------------------------------------


async def discover_server(record: ServerFacts, *, access: AuthServerAccess) -> AuthDiscovery:
    """The probe's auth discovery for one server (challenge, RFC 9728, RFC 8414), errors as credential errors."""
    return await access.discover(server_url=record.url, transport=record.transport)


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


# -- rotating a registered client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerClientRotation:
    """`rotate_server_client`'s outcome; `probe` is the verification probe (client credentials), if one ran."""

    rotation: ClientRotation
    probe: ProbeOutcome | None = None


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
        record,
        context=context,
        discovery=discovery,
        confidential=(record.auth.get("pkce") == "confidential") if code_flow else True,
    )
    probes: list[ProbeOutcome] = []

    async def verify(candidate: RegisteredClient) -> bool:
        if code_flow:
            return await client_still_registered(candidate, access=access)
        token_url = record.auth.get("tokenUrl") or (discovery.token_url if discovery else None)
        if not token_url:
            raise IncompleteAuthSpec(f"server {record.tenant}/{record.name}: no token endpoint to verify with")
        try:
            token = await client_credentials_token(
                client=_client_for(candidate, token_url=token_url),
                scopes=_scopes(record.auth) or (discovery.scopes_supported if discovery else ()),
                resource=record.auth.get("resource") or (discovery.resource if discovery else None),
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


# -- deleting ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleasedCredentials:
    """What deleting a server's credentials did: each client's deregistration and how many values went."""

    clients: Mapping[str, DeregistrationResult]
    deleted_values: int


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
    deleted = context.stores.minted.delete(tenant, server)
    return ReleasedCredentials(clients=clients, deleted_values=deleted)
