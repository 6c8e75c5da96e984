"""Records that the registry, the probe and the credentials package hand one another through the engine.

The three are siblings that never import each other, so the types they share live here, below all three, with no
dependency of their own: the tools a probe lists (`ToolRecord` with its `ToolAnnotationHints`, stored in tool
snapshots), the auth discovery a probe makes and the credentials step reuses (`AuthDiscovery`), a dynamically
registered OAuth client's row (`OAuthClientRecord`), a minted value as stored, still sealed (`SealedSecret`), and
what the authorization-server port answers (`AuthServerAnswer`, `AuthServerFailure`, `IssuedClient`: the probe's
adapter builds them, the credentials package reads them), and a member's token row (`UserTokenRecord`: the runtime
writes it, the credentials package refreshes it). The old homes (`registry.records`, `registry.rows`,
`registry.secret_store`, `probe.discovery`) re-export their types.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ErrorClass


@dataclass(frozen=True)
class ToolAnnotationHints:
    """A tool's behaviour hints (MCP `ToolAnnotations`), each None when the server left it out.

    Kept as sent, without the specification's defaults, so a hint that appears or disappears is visible; readers
    apply the defaults (`ToolRecord.read_only`, `destructive`). Hints are advice from the server: the tool-risk
    policy trusts them only for servers whose tool set is pinned and approved.
    """

    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None

    def as_json(self) -> dict[str, bool]:
        """camelCase keys as in MCP, only the hints that were sent."""
        return {
            key: value
            for key, value in (
                ("readOnlyHint", self.read_only_hint),
                ("destructiveHint", self.destructive_hint),
                ("idempotentHint", self.idempotent_hint),
                ("openWorldHint", self.open_world_hint),
            )
            if value is not None
        }

    @classmethod
    def from_json(cls, stored: Any) -> ToolAnnotationHints:
        """Read `as_json`'s shape back; anything that is not a boolean counts as not sent."""
        items = stored if isinstance(stored, Mapping) else {}

        def hint(key: str) -> bool | None:
            value = items.get(key)
            return value if isinstance(value, bool) else None

        return cls(
            read_only_hint=hint("readOnlyHint"),
            destructive_hint=hint("destructiveHint"),
            idempotent_hint=hint("idempotentHint"),
            open_world_hint=hint("openWorldHint"),
        )


@dataclass(frozen=True)
class ToolRecord:
    """One tool as listed by the server: the full definition is kept so changes can be diffed."""

    name: str
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    annotations: ToolAnnotationHints = field(default_factory=ToolAnnotationHints, compare=False)
    """The four MCP behaviour hints as the server sent them; compared by the tool-risk drift check instead. Not
    part of the fingerprint: hints are advice from the server, and approving a snapshot should not depend on
    them."""

    @property
    def read_only(self) -> bool:
        """The MCP default: a tool is read-only only when it says so."""
        return self.annotations.read_only_hint is True

    @property
    def destructive(self) -> bool:
        """The MCP default: a tool that is not read-only is destructive unless it says otherwise. The one rule
        for `plan`'s impact and the tool-risk policy, so a tool without annotations is flagged by both."""
        hint = self.annotations.destructive_hint
        return not self.read_only and (hint if hint is not None else True)


@dataclass(frozen=True)
class AuthDiscovery:
    """What the server says about authentication. Field names mirror `DiscoveryStatus` (see `as_status`)."""

    requires_auth: bool
    recommended_auth_mode: str | None
    """`none`, `bearer`, `oauthClientCredentials`, `oauthAuthorizationCode`, or None when it cannot be told."""
    resource: str | None = None
    resource_metadata_url: str | None = None
    authorization_servers: tuple[str, ...] = ()
    auth_url: str | None = None
    token_url: str | None = None
    register_url: str | None = None
    scopes_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    """JWS algorithms the token endpoint takes for `private_key_jwt` client assertions (RFC 8414)."""
    grant_types_supported: tuple[str, ...] = ()
    client_id_metadata_document_supported: bool = False
    """The authorization server accepts a Client ID Metadata Document URL as `client_id` (CIMD)."""

    def as_status(self) -> dict[str, Any]:
        """camelCase keys, as in `reconciler.api.server.DiscoveryStatus`."""
        return {
            "requiresAuth": self.requires_auth,
            "recommendedAuthMode": self.recommended_auth_mode,
            "resource": self.resource,
            "resourceMetadataUrl": self.resource_metadata_url,
            "authorizationServers": list(self.authorization_servers),
            "authUrl": self.auth_url,
            "tokenUrl": self.token_url,
            "registerUrl": self.register_url,
            "scopesSupported": list(self.scopes_supported),
            "tokenEndpointAuthMethodsSupported": list(self.token_endpoint_auth_methods_supported),
            "tokenEndpointAuthSigningAlgValuesSupported": list(self.token_endpoint_auth_signing_alg_values_supported),
            "grantTypesSupported": list(self.grant_types_supported),
            "clientIdMetadataDocumentSupported": self.client_id_metadata_document_supported,
        }


@dataclass(frozen=True)
class OAuthClientRecord:
    """A client registered with an authorization server for one MCP server (RFC 7591 result).

    Secret parts are references (`<namespace>/<secret>#<key>`), never values.
    """

    tenant: str
    server: str
    issuer: str
    client_id: str
    client_secret_ref: str | None = None
    registration_client_uri: str | None = None
    registration_access_token_ref: str | None = None
    token_endpoint_auth_method: str | None = None
    expires_at: dt.datetime | None = None
    created_at: dt.datetime | None = field(default=None, compare=False)
    row_id: int | None = field(default=None, compare=False)


SealedKey = tuple[str, str, str]
"""A sealed value's (tenant, name, purpose) in the local secret store."""


@dataclass(frozen=True)
class SealedSecret:
    """One stored value, still encrypted. `meta` holds only non-secret facts (issued at, client id, ...)."""

    tenant: str
    name: str
    purpose: str
    ciphertext: str = field(repr=False)
    key_id: str
    meta: dict[str, Any] = field(default_factory=dict)
    expires_at: dt.datetime | None = None
    updated_at: dt.datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AuthServerAnswer:
    """One answer of an authorization server: status, the JSON object body (if it was one), the
    `WWW-Authenticate` header, and `endpoint`, the URL as messages may show it (no userinfo, query or fragment)."""

    status: int
    document: Mapping[str, Any] | None = field(repr=False)
    www_authenticate: str | None = None
    endpoint: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class AuthServerFailure:
    """A request that got no answer: refused by the SSRF guard (`blocked`), an `auth`-class failure such as an
    issuer mismatch in discovery, or the network (`transport`, `timeout`, `tls`, ...). `message` is classified
    like a probe failure and may still quote what the server echoed: the credentials package redacts it."""

    error_class: ErrorClass
    message: str
    endpoint: str


@dataclass(frozen=True)
class IssuedClient:
    """The client an RFC 7591 registration answer describes, as the MCP SDK's model validated it."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    token_endpoint_auth_method: str | None = None
    client_secret_expires_at: int | None = None


@dataclass(frozen=True)
class UserTokenRecord:
    """A member's own token for a per-member server: written by the runtime, read by the reconciler; the
    credentials package refreshes it (`member_tokens`), so it lives here, below both."""

    tenant: str
    server: str
    user_id: str
    secret_ref: str
    connection: str | None = None
    expires_at: dt.datetime | None = None
    row_id: int | None = None
    value_keys: tuple[str, ...] = ()
    """Keys of the member's other stored values, kept in the same Secret as the token (`secret_ref` with its
    key replaced): what a connection's `memberHeaders` read."""
    refresh_token_ref: str | None = None
    """Where the member's refresh token is sealed (`local:` reference); None when none is stored, so an expired
    token can only be replaced by the member connecting again."""
    issued_at: dt.datetime | None = None
    client_id: str | None = None
    """The OAuth client the token was obtained with; a refresh uses this client and no other."""
    issuer: str | None = None
    """The authorization server that issued the token; a refresh goes to this issuer and no other (SEP-2352)."""
    scopes: tuple[str, ...] = ()
    refresh_lease_until: dt.datetime | None = None
    """While one resolution refreshes the token, when its lease runs out; None when nobody is refreshing."""


ORGANIZATION_MEMBER = "@organization"
"""The `user_tokens.user_id` of an organization-level connection (OpenWork's: an admin connects once, every granted
member uses it unless they connected their own). No member id can take it: member ids start with a letter or digit."""
