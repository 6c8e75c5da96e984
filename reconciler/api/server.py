"""The `MCPServer` kind: an MCP endpoint a tenant's agents may call, with its auth, policies and status.

Read by the manifests loader and the operator (parsing), the engine (desired rows) and the CRD generator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from reconciler.api.common import (
    GROUP_VERSION,
    CredentialValue,
    Header,
    HeaderName,
    Model,
    ObjectMeta,
    ObjectName,
    SecretKeyRef,
    StatusBase,
    ToolFilter,
    reject_duplicate_headers,
)
from reconciler.api.durations import DURATION_PATTERN, MAX_DURATION, MAX_DURATION_SECONDS, parse_duration
from reconciler.api.hosts import url_host_problem
from reconciler.api.times import Timestamp

URL_PATTERN = r"^https?://\S.*\S$"


def _valid_host(url: str) -> str:
    problem = url_host_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


HTTP_URL = Annotated[str, Field(min_length=8, max_length=2048, pattern=URL_PATTERN), AfterValidator(_valid_host)]
Scope = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]
Duration = Annotated[str, Field(max_length=32, pattern=DURATION_PATTERN)]
SNAPSHOT_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"

Transport = Literal["streamable-http", "sse", "websocket"]
AUTH_TYPES = ("none", "bearer", "apiKey", "oauthClientCredentials", "oauthAuthorizationCode")


class NoAuth(Model):
    """No credential is sent."""

    type: Literal["none"]
    """Auth type discriminator."""


class BearerAuth(Model):
    """`Authorization: <scheme> <secret>`; the scheme defaults to `Bearer` (ibl.ai uses `Token`)."""

    type: Literal["bearer"]
    """Auth type discriminator."""
    secret_key_ref: SecretKeyRef
    """Secret key holding the token."""
    scheme: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~+/-]+$")] = "Bearer"
    """Authorization scheme written before the token (default `Bearer`)."""


class ApiKeyAuth(Model):
    """The secret sent verbatim in a named header (ThinkWork's tenant API key)."""

    type: Literal["apiKey"]
    """Auth type discriminator."""
    secret_key_ref: SecretKeyRef
    """Secret key holding the API key."""
    header_name: HeaderName = "X-API-Key"
    """Header that carries the key (default `X-API-Key`)."""


SigningAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class ClientAssertion(Model):
    """`private_key_jwt` (RFC 7523): the client proves itself with a short-lived JWT signed by its private key, so
    no shared secret travels (what the MCP "OAuth Client Credentials" extension recommends)."""

    private_key: SecretKeyRef
    """The Secret key holding the client's private key (PEM: RSA, EC P-256/384/521 or Ed25519)."""
    key_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """`kid` of the key as the authorization server knows it (its registered JWKS)."""
    algorithm: SigningAlgorithm | None = None
    """JWS algorithm; default: the first one the server advertises that fits the key, else the key's usual one."""


class OAuthClientCredentialsAuth(Model):
    """OAuth 2.0 client-credentials grant; the reconciler mints and refreshes the access token."""

    type: Literal["oauthClientCredentials"]
    """Auth type discriminator."""
    client_id: CredentialValue | None = None
    """Client id (a literal value or a Secret key); omit with `dynamicRegistration: true`, and with
    `clientAssertion` to be a Client ID Metadata Document client (the authorization server must advertise CIMD, and
    the reconciler needs a public URL, where `serve` publishes the document and the key's public half)."""
    client_secret: CredentialValue | None = None
    """Client secret (use `secretKeyRef`)."""
    dynamic_registration: bool = False
    """Register a client with RFC 7591 dynamic registration instead of a preset client id."""
    token_url: HTTP_URL | None = None
    """Token endpoint; discovered from the server's metadata when omitted."""
    scopes: list[Scope] = Field(default_factory=list, max_length=64)
    """Scopes to request."""
    resource: HTTP_URL | None = None
    """RFC 8707 resource indicator; defaults to the discovered protected resource."""
    audience: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """`audience` parameter for authorization servers that want one."""
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] | None = None
    """How the client authenticates at the token endpoint (default: what the server prefers; `private_key_jwt`
    with `clientAssertion`)."""
    client_assertion: ClientAssertion | None = None
    """Authenticate with a signed JWT (`private_key_jwt`, RFC 7523) instead of `clientSecret`. Without `clientId`
    the client is the tenant's CIMD client, `{public URL}/oauth/tenants/{tenant}/client-credentials-metadata.json`."""

    @model_validator(mode="after")
    def _client(self) -> OAuthClientCredentialsAuth:
        if self.client_assertion is not None:
            if self.client_secret is not None or self.dynamic_registration:
                raise ValueError("clientAssertion replaces clientSecret and dynamicRegistration")
            if self.token_endpoint_auth_method not in (None, "private_key_jwt"):
                raise ValueError("clientAssertion authenticates with private_key_jwt: remove tokenEndpointAuthMethod")
        elif self.token_endpoint_auth_method == "private_key_jwt":
            raise ValueError("tokenEndpointAuthMethod private_key_jwt needs clientAssertion (the private key)")
        if self.dynamic_registration:
            if self.client_id is not None or self.client_secret is not None:
                raise ValueError("dynamicRegistration registers its own client: remove clientId and clientSecret")
        elif self.client_assertion is None and (self.client_id is None or self.client_secret is None):
            raise ValueError(
                "set clientId and clientSecret, or clientAssertion (clientId optional), or dynamicRegistration: true"
            )
        if self.client_secret is not None and self.client_secret.secret_key_ref is None:
            raise ValueError("clientSecret must come from secretKeyRef, not a literal value")
        return self


class OAuthAuthorizationCodeAuth(Model):
    """OAuth 2.0 authorization code with PKCE; each member authorizes, the reconciler prepares the client."""

    type: Literal["oauthAuthorizationCode"]
    """Auth type discriminator."""
    pkce: Literal["public", "confidential"]
    """`public` (no client secret) or `confidential` (client secret + PKCE)."""
    client_id: CredentialValue | None = None
    """Client id; omit to register one dynamically (RFC 7591)."""
    client_secret: CredentialValue | None = None
    """Client secret for `pkce: confidential` (use `secretKeyRef`)."""
    auth_url: HTTP_URL | None = None
    """Authorization endpoint; discovered when omitted."""
    token_url: HTTP_URL | None = None
    """Token endpoint; discovered when omitted."""
    register_url: HTTP_URL | None = None
    """Registration endpoint for dynamic registration; discovered when omitted."""
    scopes: list[Scope] = Field(default_factory=list, max_length=64)
    """Scopes to request."""
    resource: HTTP_URL | None = None
    """RFC 8707 resource indicator."""
    dynamic_registration: bool | None = None
    """Register the client dynamically; implied when `clientId` is omitted."""

    @model_validator(mode="after")
    def _client(self) -> OAuthAuthorizationCodeAuth:
        if self.client_id is None and self.dynamic_registration is False:
            raise ValueError("set clientId, or allow dynamicRegistration")
        if self.client_id is not None and self.dynamic_registration:
            raise ValueError("dynamicRegistration registers its own client: remove clientId")
        if self.pkce == "public" and self.client_secret is not None:
            raise ValueError("pkce: public clients have no clientSecret")
        if self.pkce == "confidential" and self.client_id is not None and self.client_secret is None:
            raise ValueError("pkce: confidential with a clientId needs clientSecret")
        if self.client_secret is not None and self.client_secret.secret_key_ref is None:
            raise ValueError("clientSecret must come from secretKeyRef, not a literal value")
        return self


ServerAuth = Annotated[
    NoAuth | BearerAuth | ApiKeyAuth | OAuthClientCredentialsAuth | OAuthAuthorizationCodeAuth,
    Field(discriminator="type"),
]


class Owner(Model):
    """A managed app or plugin that owns this registration (ThinkWork's Twenty CRM, Plane)."""

    kind: Literal["App", "Plugin"]
    """`App` or `Plugin`."""
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the owning app or plugin."""


class Discovery(Model):
    """Auth discovery and tool listing against the live server."""

    enabled: bool = True
    """Probe the server (discovery, tool snapshot)."""
    interval: Duration = "1h"
    """Re-probe when the last probe is older than this (Kubernetes duration, e.g. `30m`); a server's longer `ttlMs`
    for its tool list (MCP 2026-07-28) postpones it, up to 24h."""
    connection_ref: ObjectName | None = None
    """`MCPConnection` whose credential is used to list tools (default: the one connection marked `useForDiscovery`,
    else the server's own auth)."""

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        seconds = parse_duration(value, bounded=False)
        if seconds < 10:
            raise ValueError("interval must be at least 10s")
        if seconds > MAX_DURATION_SECONDS:
            raise ValueError(f"interval must be at most {MAX_DURATION} (one year)")
        return value


class ToolPolicy(ToolFilter):
    """How tool-list changes are handled, plus which tools are exposed."""

    policy: Literal["Track", "Pin"] = "Track"
    """`Track` reports changes; `Pin` disables the server for runtimes until `approvedHash` matches."""
    approved_hash: Annotated[str, Field(pattern=SNAPSHOT_HASH_PATTERN)] | None = None
    """With `Pin`: the approved tool-snapshot hash (`sha256:…`, shown in status)."""

    @model_validator(mode="after")
    def _pin(self) -> ToolPolicy:
        if self.approved_hash is not None and self.policy != "Pin":
            raise ValueError("approvedHash is only used with policy: Pin")
        return self


class Network(Model):
    """Network safety settings."""

    allow_private: bool = False
    """Allow loopback/private targets; also needs the reconciler's `--allow-private-networks`."""


IMMUTABLE_SERVER_FIELDS: tuple[str, ...] = ("transport", "auth.type")
"""Spec paths that cannot change in place: the CRD's CEL rules and the planner both refuse a change."""


def immutable_message(path: str) -> str:
    """The one wording for a refused change of an immutable field, shared by the CRD rule and the planner."""
    return f"{path} is immutable: recreate to switch type"


class MCPServerSpec(Model):
    """Desired state of one MCP server registration."""

    display_name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """Name shown in admin UIs (defaults to the object name)."""
    description: Annotated[str, Field(max_length=4096)] | None = None
    """Free text."""
    url: HTTP_URL
    """Endpoint URL (http or https); may use `{{ tenant.slug }}` and `{{ tenant.vars.NAME }}`."""
    transport: Transport = "streamable-http"
    """`streamable-http`, `sse` or `websocket`; immutable (recreate to switch)."""
    enabled: bool = True
    """Disabled servers stay registered but are not offered to agents."""
    featured: bool = False
    """Featured servers are offered as a fallback credential source (ibl.ai)."""
    headers: list[Header] = Field(default_factory=list, max_length=64)
    """Static headers sent on every request."""
    auth: ServerAuth = Field(default_factory=lambda: NoAuth(type="none"))
    """How the reconciler and runtimes authenticate; `auth.type` is immutable."""
    owner: Owner | None = None
    """Managed app or plugin owning this row."""
    discovery: Discovery = Field(default_factory=Discovery)
    """Auth discovery and tool snapshot settings."""
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    """Tool change policy and allow/deny filters."""
    network: Network = Field(default_factory=Network)
    """Network safety settings."""
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"
    """`Delete` removes the registry rows with the object; `Orphan` leaves them unmanaged."""
    management_policy: Literal["Full", "ObserveOnly"] = "Full"
    """`ObserveOnly` never writes the registry, it only reports drift."""

    @field_validator("headers")
    @classmethod
    def _unique_headers(cls, headers: list[Header]) -> list[Header]:
        return reject_duplicate_headers(headers)


class DiscoveryStatus(Model):
    """What auth discovery found (RFC 9728 / RFC 8414)."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    requires_auth: bool | None = None
    """Whether the server refuses requests without a credential."""
    recommended_auth_mode: str | None = None
    """The auth type discovery recommends for this server."""
    resource: str | None = None
    """Protected resource identifier from the RFC 9728 metadata."""
    resource_metadata_url: str | None = None
    """URL of the RFC 9728 protected-resource metadata."""
    authorization_servers: list[str] = Field(default_factory=list)
    """Authorization servers the protected-resource metadata names."""
    auth_url: str | None = None
    """Authorization endpoint from the authorization server metadata."""
    token_url: str | None = None
    """Token endpoint from the authorization server metadata."""
    register_url: str | None = None
    """Dynamic client registration endpoint (RFC 7591), when offered."""
    scopes_supported: list[str] = Field(default_factory=list)
    """Scopes the server advertises."""
    token_endpoint_auth_methods_supported: list[str] = Field(default_factory=list)
    """Client authentication methods the token endpoint accepts."""
    token_endpoint_auth_signing_alg_values_supported: list[str] = Field(default_factory=list)
    """JWS algorithms the token endpoint takes for `private_key_jwt` client assertions (RFC 8414)."""
    grant_types_supported: list[str] = Field(default_factory=list)
    """OAuth grant types the authorization server supports."""
    client_id_metadata_document_supported: bool | None = None
    """The authorization server accepts a Client ID Metadata Document URL as client id (CIMD)."""
    filled_fields: list[str] = Field(default_factory=list)
    """Auth fields the spec left empty and discovery filled."""
    discovered_at: Timestamp | None = None
    """When discovery last ran."""


class ServerInfo(Model):
    """The server's self-description from the MCP handshake."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    name: str | None = None
    """Server name from the handshake."""
    version: str | None = None
    """Server version from the handshake."""


class ToolChanges(Model):
    """Difference between the last two tool snapshots."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    added: list[str] = Field(default_factory=list)
    """Tools new in the last snapshot."""
    removed: list[str] = Field(default_factory=list)
    """Tools gone since the previous snapshot."""
    changed: list[str] = Field(default_factory=list)
    """Tools whose definition changed."""
    risk: list[str] = Field(default_factory=list)
    """High-severity changes under every tool policy (condition reason `ToolRiskChanged`): a flipped
    `readOnlyHint` or `destructiveHint`, a tool renamed with an identical description and input schema."""


class ToolSnapshotStatus(Model):
    """Summary of the last tool snapshot; the full list lives in the registry."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    count: int | None = None
    """Number of tools the server lists."""
    exposed: int | None = None
    """Tools left after allow/deny filters."""
    hash: str | None = None
    """Hash of the tool snapshot (`sha256:…`)."""
    names: list[str] = Field(default_factory=list)
    """The first tool names (at most 20)."""
    snapshot_at: Timestamp | None = None
    """When the snapshot was taken."""
    server_info: ServerInfo | None = None
    protocol_version: str | None = None
    """MCP protocol version negotiated in the handshake."""
    capabilities: list[str] = Field(default_factory=list)
    """Capabilities the server declared in the handshake."""
    cache_scope: Literal["public", "private"] | None = None
    """The server's `cacheScope` for its tool list (MCP 2026-07-28): `public` is the same list for everyone;
    `private` is the list the probe's credential sees (`viewOf`), and others may see other tools."""
    ttl_ms: int | None = None
    """The server's `ttlMs` for its tool list: how long it stays fresh. A longer one than `spec.discovery.interval`
    postpones the next probe (at most 24h); a shorter one does not hasten it."""
    view_of: str | None = None
    """With `cacheScope: private`: whose view the snapshot is (`MCPConnection/<name>`, `spec.auth (<type>)` or
    `anonymous`)."""
    next_probe_at: Timestamp | None = None
    """When the next probe falls due: the last probe plus `spec.discovery.interval`, or plus `ttlMs` when longer
    (sooner when the spec changes, a pass is forced or a minted token nears expiry)."""
    changes: ToolChanges | None = None
    hash_to_approve: str | None = None
    """With policy Pin: the hash to copy into `spec.tools.approvedHash`."""


class LastTest(Model):
    """Result of the last Test Connection / probe."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    ok: bool
    """Whether the test succeeded."""
    error_class: (
        Literal[
            "transport", "auth", "insufficient_scope", "downstream", "timeout", "protocol", "tls", "blocked", "internal"
        ]
        | None
    ) = None
    """What failed: transport, auth, insufficient_scope (the token lacks a scope the server names), downstream,
    timeout, protocol, tls, blocked or internal (a reconciler fault)."""
    message: str = ""
    """Detail of the failure; never contains a credential."""
    hint: str | None = None
    """What to check next, when the failure suggests it (for example the other `transport`)."""
    challenged_scopes: list[str] = Field(default_factory=list)
    """With `insufficient_scope`: the scopes the server's `WWW-Authenticate` challenge names, for a step-up
    re-authorization (SEP-835) with their union with the configured scopes."""
    latency_ms: int | None = None
    """Round-trip time of the test in milliseconds."""
    at: Timestamp | None = None
    """When the test ran."""


class CredentialStatus(Model):
    """Facts about the credential in use; never the value."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    secret_ref: str | None = None
    """Reference to the credential in use, `<namespace>/<secret>#<key>`."""
    fingerprint: str | None = None
    """Keyed fingerprint of the credential in use (never the value)."""
    revision: int | None = None
    """Number of credential rotations applied."""
    rotated_at: Timestamp | None = None
    """When the credential was last rotated in place."""
    expires_at: Timestamp | None = None
    """When the current token expires."""
    failed_rotation_attempts: int | None = None
    """Rotations that failed verification; the last good one stays."""
    connected_members: int | None = None
    """With `perMember`: how many members have authorized their account."""
    authorization_url_template: str | None = None
    """Authorization URL a member opens to connect their account."""
    client_identity: Literal["cimd", "dynamic", "preregistered"] | None = None
    """How the reconciler identifies itself to the authorization server: a Client ID Metadata Document URL,
    a dynamically registered client (RFC 7591), or the spec's pre-registered `clientId`."""
    issuer: str | None = None
    """The authorization server the client in use is bound to (its issuer)."""


class OAuthHealth(Model):
    """With `oauthAuthorizationCode`: how the members' own tokens for this server stand (counts only, never a value
    or a member id), so a token that is about to lapse or needs a person shows before an agent resolves it."""

    model_config = Model.model_config | {"extra": "ignore", "strict": False}

    connected: int = 0
    """Member tokens stored for this server (one per member, and per per-member connection)."""
    expiring_within24h: int = Field(default=0, alias="expiringWithin24h")
    """Tokens not yet expired that expire within 24 hours."""
    needs_reauthorization: int = 0
    """Tokens expired with no refresh token: the member must authorize again (`needs_reauthorization`)."""
    without_refresh_token: int = 0
    """Tokens stored without a refresh token: they cannot be renewed and lapse at their expiry."""
    members_expected: bool = False
    """The server is offered to members who must each connect their own account (no connection of its own, or an
    active `perMember` connection), so zero `connected` means every agent gets `needs_connection`."""
    summary: str = ""
    """The counts in a compact form, as the `OAuth` column of `get -o wide` / `kubectl get -o wide` prints them:
    `3 connected, 1 expiring, 1 reauth`, or `not connected` when members are expected and nobody connected."""


class MCPServerStatus(StatusBase):
    """Observed state of an `MCPServer`."""

    model_config = StatusBase.model_config | {"extra": "ignore"}

    transport: Transport | None = None
    """The effective transport: the spec's, or its default when the spec leaves it out (the CRDs carry no
    defaults, so `kubectl get` reads this rather than `spec.transport`)."""
    auth_type: str | None = None
    """The effective `auth.type` (`none` when the spec has no `auth`)."""
    enabled: bool | None = None
    """The effective `enabled` (true when the spec leaves it out)."""
    discovery: DiscoveryStatus | None = None
    tools: ToolSnapshotStatus | None = None
    last_test: LastTest | None = None
    credentials: CredentialStatus | None = None
    oauth: OAuthHealth | None = None
    """With `oauthAuthorizationCode`: the members' tokens rolled up (connected, expiring, needing re-authorization)."""


class MCPServer(Model):
    """An MCP server registration."""

    api_version: Literal["mcp.reconciler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["MCPServer"] = "MCPServer"
    metadata: ObjectMeta
    spec: MCPServerSpec
    status: MCPServerStatus | None = None


def auth_secret_refs(spec: MCPServerSpec) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key a server spec references, with the field path that references it: the operator reads (and
    watches) exactly these Secrets for the object, so one missing here is a Secret the engine never sees."""
    found: list[tuple[str, SecretKeyRef]] = []
    for index, header in enumerate(spec.headers):
        if header.value_from is not None:
            found.append((f"spec.headers[{index}].valueFrom.secretKeyRef", header.value_from.secret_key_ref))
    auth: Any = spec.auth
    if isinstance(auth, BearerAuth | ApiKeyAuth):
        found.append(("spec.auth.secretKeyRef", auth.secret_key_ref))
    if isinstance(auth, OAuthClientCredentialsAuth | OAuthAuthorizationCodeAuth):
        for field in ("client_id", "client_secret"):
            value: CredentialValue | None = getattr(auth, field)
            if value is not None and value.secret_key_ref is not None:
                camel = "clientId" if field == "client_id" else "clientSecret"
                found.append((f"spec.auth.{camel}.secretKeyRef", value.secret_key_ref))
    if isinstance(auth, OAuthClientCredentialsAuth) and auth.client_assertion is not None:
        found.append(("spec.auth.clientAssertion.privateKey", auth.client_assertion.private_key))
    return found
