"""How the reconciler identifies itself to an authorization server: pure decisions, no I/O.

The engine (`engine/authorizing.py`) calls `choose_client_identity` for every OAuth server before it registers or
reuses a client, and the drivers call `public_url_problem` on the configured public URL (`--public-url`,
`$MCP_RECONCILER_PUBLIC_URL`, the chart's `publicUrl`). The order follows MCP 2025-11-25 and later: a pre-registered
client (`spec.auth.clientId`) first; then a Client ID Metadata Document (CIMD, IETF draft "OAuth Client ID Metadata
Document"), where the authorization server advertises `client_id_metadata_document_supported` and the reconciler has
a public URL to publish the document at (`{public URL}/oauth/client-metadata.json` is then the `client_id`, and
nothing is registered); else dynamic client registration (RFC 7591). A metadata document carries no shared secret, so
two kinds of client use CIMD: authorization-code servers with `pkce: public` (`client_metadata_document`, at
`/oauth/client-metadata.json`, `token_endpoint_auth_method: none`), and client-credentials servers that sign
`private_key_jwt` assertions (`spec.auth.clientAssertion` without `clientId`): their document
(`client_credentials_metadata_document`, at `/oauth/tenants/{tenant}/client-credentials-metadata.json`) says
`token_endpoint_auth_method: private_key_jwt` and names `jwks_uri` (`/oauth/tenants/{tenant}/jwks.json`), where
`serve` publishes the public halves of that tenant's keys. That client is one per tenant: a key in its JWKS can sign
for it, and each tenant supplies its own keys, so one shared client would let a tenant's key obtain tokens as every
tenant's client. One document describes one client with one authentication method, so the code-flow and the
client-credentials clients are two documents, two client ids. Confidential code-flow clients and client-secret
clients keep DCR. A serving route publishes the documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

ClientIdentity = Literal["cimd", "dynamic", "preregistered"]
PresetBinding = Literal["bind", "keep", "changed"]

CALLBACK_PATH = "/oauth/callback"
CLIENT_METADATA_PATH = "/oauth/client-metadata.json"
TENANT_CLIENTS_PATH = "/oauth/tenants/"
"""Under it, `{tenant}/client-credentials-metadata.json` and `{tenant}/jwks.json`: a tenant's CIMD
client-credentials client and its keys."""
CLIENT_CREDENTIALS_METADATA_FILE = "client-credentials-metadata.json"
JWKS_FILE = "jwks.json"
_TENANT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DEFAULT_REDIRECT_URI = "http://127.0.0.1/oauth/callback"
"""Without a public URL: the loopback callback every dynamically registered client was pinned to before."""


def public_url_problem(url: str) -> str | None:
    """Why `url` cannot be the reconciler's public URL, or None. Pure.

    An absolute http(s) URL without query, fragment or userinfo: the `client_id` and redirect URI are built from it
    and must compare exactly. The draft asks for https; http is accepted for loopback set-ups and tests.
    """
    parts = urlsplit(url)
    # The URL is not quoted back: user info in it may be a password.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "the public URL is not an absolute http(s) URL"
    if parts.query or parts.fragment or "@" in parts.netloc:
        return "the public URL must have no query, fragment or user info"
    return None


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def redirect_uri(public_url: str | None) -> str:
    """The OAuth callback registered for authorization-code clients. Pure."""
    return f"{_base(public_url)}{CALLBACK_PATH}" if public_url else DEFAULT_REDIRECT_URI


def metadata_document_url(public_url: str) -> str:
    """The CIMD `client_id`: where the client metadata document is published. Pure."""
    return f"{_base(public_url)}{CLIENT_METADATA_PATH}"


def client_metadata_document(
    public_url: str, *, client_name: str = "mcp-reconciler", redirect_uris: Sequence[str] = ()
) -> dict[str, Any]:
    """The Client ID Metadata Document the reconciler publishes at `metadata_document_url`. Pure.

    A public authorization-code client (PKCE, `token_endpoint_auth_method: none`): the draft forbids shared
    secrets in the document. `client_id` must equal the document's own URL, which authorization servers check.
    """
    return {
        "client_id": metadata_document_url(public_url),
        "client_name": client_name,
        "client_uri": _base(public_url),
        "redirect_uris": list(redirect_uris) or [redirect_uri(public_url)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }


def client_credentials_metadata_url(public_url: str, *, tenant: str) -> str:
    """The CIMD `client_id` of `tenant`'s `private_key_jwt` client-credentials client. Pure."""
    return f"{_base(public_url)}{TENANT_CLIENTS_PATH}{tenant}/{CLIENT_CREDENTIALS_METADATA_FILE}"


def jwks_url(public_url: str, *, tenant: str) -> str:
    """Where the public keys of `tenant`'s `private_key_jwt` CIMD client are published (its `jwks_uri`). Pure."""
    return f"{_base(public_url)}{TENANT_CLIENTS_PATH}{tenant}/{JWKS_FILE}"


def client_credentials_metadata_document(
    public_url: str, *, tenant: str, client_name: str = "mcp-reconciler"
) -> dict[str, Any]:
    """The Client ID Metadata Document of `tenant`'s client-credentials client. Pure.

    It authenticates with `private_key_jwt`, the draft's way for a CIMD client to be confidential: no secret in the
    document, the verification keys at `jwks_uri`. No redirect URIs: the client-credentials grant has no redirect.
    """
    return {
        "client_id": client_credentials_metadata_url(public_url, tenant=tenant),
        "client_name": f"{client_name} ({tenant})",
        "client_uri": _base(public_url),
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": jwks_url(public_url, tenant=tenant),
    }


def tenant_client_path(path: str) -> tuple[str, str] | None:
    """(tenant, file) of a request path under `TENANT_CLIENTS_PATH` naming one of a tenant's two documents, else
    None. Pure: the serving route asks it before it reads anything."""
    if not path.startswith(TENANT_CLIENTS_PATH):
        return None
    tenant, _, file = path[len(TENANT_CLIENTS_PATH) :].partition("/")
    if file not in (CLIENT_CREDENTIALS_METADATA_FILE, JWKS_FILE) or not _TENANT.fullmatch(tenant):
        return None
    return tenant, file


def preset_binding(bound: tuple[str, str] | None, *, client_id: str, issuer: str) -> PresetBinding:
    """What a pre-registered client's issuer binding (SEP-2352) says now. Pure.

    `bound` is the (client id, issuer) recorded when the client was first used. A new client id is bound afresh
    (the spec names a client of the new issuer); the same one with another issuer is `changed`: not to be used.
    """
    if bound is None or bound[0] != client_id:
        return "bind"
    return "keep" if bound[1] == issuer else "changed"


def choose_client_identity(
    *,
    preset_client_id: bool,
    code_flow: bool,
    confidential: bool,
    public_url: str | None,
    cimd_supported: bool,
    signs_assertions: bool = False,
) -> ClientIdentity:
    """Which client the reconciler presents to a server's authorization server. Pure.

    `preset_client_id`: the spec names `clientId` (or `clientIdRef`). `cimd_supported`: the authorization server's
    metadata says `client_id_metadata_document_supported: true`. `signs_assertions`: a client-credentials client
    with a private key (`private_key_jwt`), which CIMD can describe, unlike a shared secret.
    """
    if preset_client_id:
        return "preregistered"
    if (signs_assertions if not code_flow else not confidential) and public_url and cimd_supported:
        return "cimd"
    return "dynamic"
