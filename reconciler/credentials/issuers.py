"""An issuer's own metadata: where it is (RFC 8414, else OpenID Connect Discovery) and what a member token's
refresh, a login and a disconnect read from it.

Pure. The engine sends the requests `metadata_requests` builds through the authorization-server port
(`engine/revoking.py` for a login's and a disconnect's `IssuerFacts`, the members' token renewal for the token
endpoint) and reads each answer back with `issuer_token_endpoint` or `issuer_facts_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.credentials.authserver import AuthServerAnswer, AuthServerRequest
from reconciler.credentials.errors import OAuthRejected

METADATA_PATH = "/.well-known/oauth-authorization-server"
OIDC_METADATA_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class IssuerTokenEndpoint:
    """What a refresh needs from its issuer's own metadata: where to send it, and how clients may authenticate."""

    url: str
    auth_methods: tuple[str, ...] = ()
    """`token_endpoint_auth_methods_supported` (empty when the metadata names none)."""


@dataclass(frozen=True)
class IssuerFacts:
    """What RFC 8414 metadata says that a login and a disconnect need."""

    issuer: str | None = None
    revocation_endpoint: str | None = None
    iss_parameter_supported: bool = False
    token_endpoint_auth_methods: tuple[str, ...] = ()
    """How the issuer lets clients authenticate (`token_endpoint_auth_methods_supported`): a pre-registered
    client's secret is presented the way it asks."""


def metadata_request(issuer: str) -> AuthServerRequest:
    """The issuer's RFC 8414 metadata request (the well-known segment goes before the issuer's path). Pure."""
    parts = urlsplit(issuer)
    path = METADATA_PATH + (parts.path.rstrip("/") if parts.path not in ("", "/") else "")
    url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return AuthServerRequest(method="GET", url=url, purpose="the authorization server metadata request")


def metadata_requests(issuer: str) -> tuple[AuthServerRequest, ...]:
    """Where the issuer's metadata may be, in order: RFC 8414, then OpenID Connect Discovery (the well-known
    segment after the issuer's path), which OpenID providers serve instead. Pure."""
    oidc = issuer.rstrip("/") + OIDC_METADATA_PATH
    return (
        metadata_request(issuer),
        AuthServerRequest(method="GET", url=oidc, purpose="the OpenID provider metadata request"),
    )


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known path goes between the host and the issuer's path."""
    return metadata_request(issuer).url


def token_endpoint_of(answer: AuthServerAnswer, *, issuer: str) -> str:
    """The token endpoint the issuer's own metadata names (see `issuer_token_endpoint`). Pure."""
    return issuer_token_endpoint(answer, issuer=issuer).url


def issuer_token_endpoint(answer: AuthServerAnswer, *, issuer: str) -> IssuerTokenEndpoint:
    """The token endpoint the issuer's own metadata names, and the client authentication methods it advertises;
    `OAuthRejected` when the metadata is for another issuer or names no endpoint (a member token is never sent
    anywhere else). Pure."""
    document: Mapping[str, Any] = answer.document or {}
    if not answer.ok or document.get("issuer") != issuer:
        raise OAuthRejected(
            f"{answer.endpoint} is not the metadata of issuer {issuer} (HTTP {answer.status}); "
            "the member's token is bound to that issuer",
            endpoint=answer.endpoint,
        )
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise OAuthRejected(f"issuer {issuer} advertises no token_endpoint", endpoint=answer.endpoint)
    methods = document.get("token_endpoint_auth_methods_supported")
    advertised = tuple(str(method) for method in methods) if isinstance(methods, list) else ()
    return IssuerTokenEndpoint(url=endpoint, auth_methods=advertised)


def metadata_found(answer: AuthServerAnswer) -> bool:
    """Whether a metadata answer carries a document: the first such one in `metadata_requests`' order is the
    issuer's facts. Pure."""
    return answer.ok and bool(answer.document)


def issuer_facts_of(answer: AuthServerAnswer | None) -> IssuerFacts:
    """What a login and a disconnect read from the issuer's metadata (empty facts when it served none). Pure."""
    document: Mapping[str, Any] = (answer.document or {}) if answer is not None else {}
    revocation = document.get("revocation_endpoint")
    named = document.get("issuer")
    methods = document.get("token_endpoint_auth_methods_supported")
    return IssuerFacts(
        issuer=named if isinstance(named, str) else None,
        revocation_endpoint=revocation if isinstance(revocation, str) else None,
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        token_endpoint_auth_methods=tuple(str(m) for m in methods) if isinstance(methods, list) else (),
    )
