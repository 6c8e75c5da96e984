"""Auth discovery: what an unauthenticated client is told (401 + `WWW-Authenticate`), then RFC 9728 protected-
resource metadata, then RFC 8414 / OpenID authorization-server metadata, summed up as an `AuthDiscovery`.

`probing.py` calls `fetch_challenge` and `discover_auth` during a probe; the engine stores `AuthDiscovery.as_status()`
in the server's status and calls `fill_auth_fields` (pure) to complete an OAuth spec from what was discovered.
Discovery requests never carry the target's credentials (metadata may live on another origin) and go through the
same SSRF-guarded pool as everything else; each document is size-capped and the issuer must match exactly.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx2
import pydantic
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
)
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata

from reconciler.probe.challenges import MalformedChallenge, parse_challenges
from reconciler.probe.classification import ProbeFailure
from reconciler.probe.settings import Transport
from reconciler.probe.ssrf import BlockedDestination, url_problem
from reconciler.probe.tracing import display_url
from reconciler.records import AuthDiscovery as AuthDiscovery  # re-exported: its home before it moved down

logger = logging.getLogger(__name__)

INITIALIZE_REQUEST = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mcp-reconciler-probe", "version": "0.1"},
    },
}
# RFC 8414 section 2: when the metadata omits grant_types_supported, these are the defaults.
DEFAULT_GRANT_TYPES = ("authorization_code", "implicit")

# Which spec fields discovery may fill, per OAuth auth type (camelCase, as in the YAML).
FILLABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "oauthClientCredentials": ("tokenUrl", "scopes", "resource"),
    "oauthAuthorizationCode": ("authUrl", "tokenUrl", "registerUrl", "scopes", "resource"),
}


NO_AUTH = AuthDiscovery(requires_auth=False, recommended_auth_mode="none")


@dataclass(frozen=True)
class Challenge:
    """What an unauthenticated request to the MCP endpoint was answered with."""

    status: int
    www_authenticate: str | None = None

    @property
    def requires_auth(self) -> bool:
        return self.status == 401 or (self.status == 403 and bool(self.www_authenticate))

    def parameter(self, name: str) -> str | None:
        """A `WWW-Authenticate` parameter (`resource_metadata`, `scope`) of the Bearer challenge (of any, when none
        is Bearer), read by the auth-param grammar; a header that does not parse is searched loosely."""
        if not self.www_authenticate:
            return None
        try:
            challenges = parse_challenges(self.www_authenticate)
        except MalformedChallenge:
            return self._loose_parameter(name)
        bearer = [challenge for challenge in challenges if challenge.is_scheme("Bearer")]
        return next((value for c in bearer or challenges if (value := c.param(name)) is not None), None)

    def _loose_parameter(self, name: str) -> str | None:
        assert self.www_authenticate is not None
        match = re.search(rf'(?:^|[\s,]){name}=(?:"([^"]*)"|([^\s,]+))', self.www_authenticate)
        return (match.group(1) if match.group(1) is not None else match.group(2)) if match else None


def fill_auth_fields(auth: Mapping[str, Any], discovery: AuthDiscovery) -> tuple[dict[str, Any], list[str]]:
    """The spec's auth dict with OAuth endpoints, scopes and resource filled from discovery where the spec left
    them empty, and the names filled. Only the OAuth types, only fields that type has, never overriding. Pure."""
    filled = dict(auth)
    names: list[str] = []
    discovered: dict[str, Any] = {
        "authUrl": discovery.auth_url,
        "tokenUrl": discovery.token_url,
        "registerUrl": discovery.register_url,
        "scopes": list(discovery.scopes_supported),
        "resource": discovery.resource,
    }
    for name in FILLABLE_FIELDS.get(str(auth.get("type")), ()):
        if filled.get(name) in (None, "", []) and discovered[name] not in (None, "", []):
            filled[name] = discovered[name]
            names.append(name)
    return filled, names


async def fetch_challenge(client: httpx2.AsyncClient, *, url: str, transport: Transport) -> Challenge:
    """Ask the endpoint without credentials the way its transport would (POST initialize, or GET the stream)."""
    if transport == "streamable-http":
        request = client.build_request(
            "POST",
            url,
            json=INITIALIZE_REQUEST,
            headers={"accept": "application/json, text/event-stream", "content-type": "application/json"},
        )
    elif transport == "sse":
        request = client.build_request("GET", url, headers={"accept": "text/event-stream"})
    else:
        request = client.build_request("GET", url)
    # Headers only: the body may be an endless event stream.
    response = await client.send(request, stream=True)
    await response.aclose()
    session_id = response.headers.get("mcp-session-id")
    if session_id and response.is_success:
        await _end_session(client, url=url, session_id=session_id)
    return Challenge(status=response.status_code, www_authenticate=response.headers.get("www-authenticate"))


async def _end_session(client: httpx2.AsyncClient, *, url: str, session_id: str) -> None:
    """Our unauthenticated initialize opened a session on an open server; close it rather than leave it idle."""
    try:
        response = await client.delete(url, headers={"mcp-session-id": session_id})
        await response.aclose()
    except httpx2.HTTPError:
        logger.debug("closing the discovery session at %s failed", display_url(url))


async def discover_auth(
    challenge: Challenge, *, server_url: str, client: httpx2.AsyncClient, max_bytes: int
) -> AuthDiscovery:
    """Follow the challenge through protected-resource and authorization-server metadata.

    No 401 means no auth; a 401 without metadata means a plain bearer token; otherwise the authorization
    server's grant types decide between client credentials and authorization code.
    """
    if not challenge.requires_auth:
        return NO_AUTH
    challenge_scope = tuple((challenge.parameter("scope") or "").split())
    resource_doc, resource_doc_url = await _first_document(
        client,
        build_protected_resource_metadata_discovery_urls(challenge.parameter("resource_metadata"), server_url),
        max_bytes=max_bytes,
        model=ProtectedResourceMetadata,
    )
    if resource_doc is not None:
        servers = tuple(str(item) for item in resource_doc.get("authorization_servers", ()))
        issuer: str | None = servers[0]
        candidates = build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url)
    else:
        # Pre-RFC 9728 servers (MCP 2025-03-26) publish authorization-server metadata at their own origin.
        servers = ()
        parsed = httpx2.URL(server_url)
        issuer = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
        candidates = build_oauth_authorization_server_metadata_discovery_urls(None, server_url)
    server_doc, server_doc_url = await _first_document(client, candidates, max_bytes=max_bytes, model=OAuthMetadata)
    if server_doc is not None and server_doc.get("issuer") != issuer:
        raise ProbeFailure(
            "auth",
            f"authorization server metadata at {server_doc_url} names issuer {server_doc.get('issuer')!r}, "
            f"expected {issuer!r} (RFC 8414 requires an exact match)",
        )

    found = AuthDiscovery(
        requires_auth=True,
        recommended_auth_mode="bearer",
        resource=_text(resource_doc, "resource"),
        resource_metadata_url=resource_doc_url,
        authorization_servers=servers,
        scopes_supported=_texts(resource_doc, "scopes_supported") or challenge_scope,
    )
    if server_doc is None:
        # Metadata that names an authorization server we cannot read does not say which flow to use.
        return replace(found, recommended_auth_mode=None) if resource_doc is not None else found
    grants = _texts(server_doc, "grant_types_supported")
    effective_grants = grants or DEFAULT_GRANT_TYPES
    if "authorization_code" in effective_grants:
        mode: str | None = "oauthAuthorizationCode"
    elif "client_credentials" in effective_grants:
        mode = "oauthClientCredentials"
    else:
        mode = None
    return replace(
        found,
        recommended_auth_mode=mode,
        authorization_servers=servers or (str(issuer),),
        auth_url=_text(server_doc, "authorization_endpoint"),
        token_url=_text(server_doc, "token_endpoint"),
        register_url=_text(server_doc, "registration_endpoint"),
        scopes_supported=found.scopes_supported or _texts(server_doc, "scopes_supported"),
        token_endpoint_auth_methods_supported=_texts(server_doc, "token_endpoint_auth_methods_supported"),
        token_endpoint_auth_signing_alg_values_supported=_texts(
            server_doc, "token_endpoint_auth_signing_alg_values_supported"
        ),
        grant_types_supported=grants,
        client_id_metadata_document_supported=server_doc.get("client_id_metadata_document_supported") is True,
    )


async def _first_document(
    client: httpx2.AsyncClient, urls: list[str], *, max_bytes: int, model: type[pydantic.BaseModel]
) -> tuple[dict[str, Any] | None, str | None]:
    """The first URL that serves a valid metadata document, as raw JSON (exact strings, no URL normalising)."""
    for url in urls:
        problem = url_problem(url)
        if problem is not None:
            raise BlockedDestination(f"metadata URL {display_url(url)} refused: {problem}")
        document = await _fetch_json(client, url, max_bytes=max_bytes)
        if document is None:
            continue
        try:
            model.model_validate(document)
        except pydantic.ValidationError:
            logger.debug("ignoring invalid %s at %s", model.__name__, display_url(url))
            continue
        return document, url
    return None, None


async def _fetch_json(client: httpx2.AsyncClient, url: str, *, max_bytes: int) -> dict[str, Any] | None:
    """GET a JSON document; None when it is not there. Blocked destinations and oversize documents propagate."""
    try:
        async with client.stream("GET", url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise ProbeFailure("protocol", f"metadata at {display_url(url)} is larger than {max_bytes} bytes")
    except httpx2.HTTPError as exc:
        if _is_blocked(exc):
            raise
        logger.debug("metadata fetch from %s failed: %s", display_url(url), type(exc).__name__)
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _is_blocked(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, BlockedDestination):
            return True
        current = current.__cause__
    return False


def _text(document: Mapping[str, Any] | None, key: str) -> str | None:
    value = document.get(key) if document else None
    return value if isinstance(value, str) else None


def _texts(document: Mapping[str, Any] | None, key: str) -> tuple[str, ...]:
    value = document.get(key) if document else None
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()
