"""`serve --public-url` publishes the reconciler's Client ID Metadata Documents at `/oauth/client-metadata.json` and
each tenant's `/oauth/tenants/{tenant}/client-credentials-metadata.json`, and at `/oauth/tenants/{tenant}/jwks.json`
the public keys the registry records for that tenant's servers (never a private member, never another tenant's
key), without a token (authorization servers fetch them anonymously), while everything
else still needs one; and the fixture authorization server, speaking CIMD, accepts the served document as a client.
uvicorn on 127.0.0.1, SQLite and PostgreSQL registries."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from reconciler.credentials.identity import (
    client_credentials_metadata_document,
    client_credentials_metadata_url,
    client_metadata_document,
    jwks_url,
    metadata_document_url,
    redirect_uri,
)
from reconciler.demo.serving import ServerLoop
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord, TenantRecord
from reconciler.runtime import build_serving_app
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session

__all__ = ["oauth_servers", "oauth_servers_session"]

TOKEN = "client-metadata-route-token"


@pytest.fixture
def served(registry: Registry) -> Iterator[str]:
    """Base URL of `serve`'s app with its public URL set to where it listens."""
    with ServerLoop() as loop:
        yield loop.serve_asgi(lambda url: build_serving_app(registry, token=TOKEN, public_url=url))


def test_the_document_is_public_and_the_rest_still_needs_the_token(served: str) -> None:
    with httpx2.Client(timeout=10.0) as http:
        document = http.get(metadata_document_url(served))
        assert document.status_code == 200, document.text
        assert document.json() == client_metadata_document(served)
        assert document.json()["client_id"] == metadata_document_url(served)
        assert http.post(metadata_document_url(served)).status_code == 405
        assert http.get(f"{served}/v0.1/servers").status_code == 401
        assert http.post(f"{served}/mcp", json={}).status_code == 401


def test_without_a_public_url_there_is_no_document(registry: Registry) -> None:
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN))
        with httpx2.Client(timeout=10.0) as http:
            assert http.get(metadata_document_url(base)).status_code == 401


def test_a_cimd_authorization_server_accepts_the_served_document(served: str, oauth_servers: OAuthServers) -> None:
    cimd = oauth_servers.cimd
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = {
        "response_type": "code",
        "client_id": metadata_document_url(served),
        "redirect_uri": redirect_uri(served),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
    }
    with httpx2.Client(timeout=10.0) as http:
        answer = http.get(f"{cimd.issuer}/authorize?{urlencode(query)}")
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        token = http.post(
            f"{cimd.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri(served),
                "code_verifier": verifier,
                "client_id": metadata_document_url(served),
            },
        )
    assert token.status_code == 200, token.text
    assert cimd.registrations == 0 and cimd.metadata_fetches == [metadata_document_url(served)] * 2


def test_the_jwks_publishes_the_recorded_public_keys_and_never_a_private_member(
    served: str, registry: Registry
) -> None:
    recorded = {"kty": "EC", "crv": "P-256", "x": "eHg", "y": "eXk", "kid": "k1", "alg": "ES256", "use": "sig"}
    # A row carrying more than a public key (written by hand, or by a bug) still publishes only the public members.
    tampered = {"kty": "RSA", "n": "bm4", "e": "AQAB", "d": "ZGQ", "p": "cHA", "q": "cXE", "dp": "ZHA", "dq": "ZHE",
                "qi": "cWk", "kid": "k2", "alg": "RS256"}  # fmt: skip
    other = {"kty": "EC", "crv": "P-256", "x": "b3g", "y": "b3k", "kid": "k3", "alg": "ES256", "use": "sig"}
    with registry.transaction() as tx:
        tx.ensure_tenants([TenantRecord(slug=slug, namespace=slug) for slug in ("acme", "globex")])
        tx.insert(
            [
                ServerRecord(
                    tenant=tenant, name=name, url="https://mcp.example.com/mcp", auth_type=auth_type, auth=auth
                )
                for tenant, name, auth_type, auth in (
                    ("acme", "ec", "oauthClientCredentials", {"clientAssertionPublicKey": recorded}),
                    ("acme", "rsa", "oauthClientCredentials", {"clientAssertionPublicKey": tampered}),
                    ("acme", "again", "oauthClientCredentials", {"clientAssertionPublicKey": recorded}),
                    ("acme", "secret", "oauthClientCredentials", {"clientId": "c"}),
                    ("acme", "bearer", "bearer", {"secretRef": "acme/t#token"}),
                    ("globex", "ec", "oauthClientCredentials", {"clientAssertionPublicKey": other}),
                )
            ]
        )

    with httpx2.Client(timeout=10.0) as http:
        answer = http.get(jwks_url(served, tenant="acme"))
        document = http.get(client_credentials_metadata_url(served, tenant="acme"))
        theirs = http.get(jwks_url(served, tenant="globex"))
        nobody = http.get(jwks_url(served, tenant="initech"))
        bad = [http.get(f"{served}/oauth/tenants/{path}") for path in ("Acme/jwks.json", "acme/other.json", "acme")]
        shared = [http.get(f"{served}/oauth/{path}") for path in ("jwks.json", "client-credentials-metadata.json")]

    assert answer.status_code == 200 and document.status_code == 200
    assert answer.json() == {
        "keys": [recorded, {"kty": "RSA", "n": "bm4", "e": "AQAB", "kid": "k2", "alg": "RS256", "use": "sig"}]
    }
    assert document.json() == client_credentials_metadata_document(served, tenant="acme")
    assert document.json()["jwks_uri"] == jwks_url(served, tenant="acme")
    assert theirs.json() == {"keys": [other]} and nobody.json() == {"keys": []}
    # Not a tenant's document: the request goes on to the token-gated app, which refuses it.
    assert [answer.status_code for answer in (*bad, *shared)] == [401] * 5
