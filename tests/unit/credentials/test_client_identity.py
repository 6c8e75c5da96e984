"""Which client the reconciler presents to an authorization server (pre-registered → CIMD → DCR), what its public
URL makes of the redirect URI and client id, and the Client ID Metadata Document it publishes. Pure, table-driven."""

from __future__ import annotations

import pytest

from reconciler.credentials.identity import (
    DEFAULT_REDIRECT_URI,
    choose_client_identity,
    client_credentials_metadata_document,
    client_credentials_metadata_url,
    client_metadata_document,
    jwks_url,
    metadata_document_url,
    preset_binding,
    public_url_problem,
    redirect_uri,
    tenant_client_path,
)

PUBLIC = "https://reconciler.example.com"


@pytest.mark.parametrize(
    ("preset", "code_flow", "confidential", "public_url", "cimd", "expected"),
    [
        (True, True, False, PUBLIC, True, "preregistered"),
        (True, False, True, None, False, "preregistered"),
        (False, True, False, PUBLIC, True, "cimd"),
        (False, True, False, None, True, "dynamic"),
        (False, True, False, PUBLIC, False, "dynamic"),
        (False, True, True, PUBLIC, True, "dynamic"),
        (False, False, True, PUBLIC, True, "dynamic"),
    ],
    ids=[
        "preset-wins-over-cimd",
        "preset-client-credentials",
        "cimd-advertised-and-public-url",
        "no-public-url-means-dcr",
        "not-advertised-means-dcr",
        "confidential-needs-a-secret-so-dcr",
        "client-credentials-needs-a-secret-so-dcr",
    ],
)
def test_choose_client_identity(
    preset: bool, code_flow: bool, confidential: bool, public_url: str | None, cimd: bool, expected: str
) -> None:
    chosen = choose_client_identity(
        preset_client_id=preset,
        code_flow=code_flow,
        confidential=confidential,
        public_url=public_url,
        cimd_supported=cimd,
    )
    assert chosen == expected


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (None, DEFAULT_REDIRECT_URI),
        (PUBLIC, f"{PUBLIC}/oauth/callback"),
        (f"{PUBLIC}/", f"{PUBLIC}/oauth/callback"),
        (f"{PUBLIC}/acme", f"{PUBLIC}/acme/oauth/callback"),
    ],
)
def test_redirect_uri(public_url: str | None, expected: str) -> None:
    assert redirect_uri(public_url) == expected


def test_the_metadata_document_describes_a_public_client_at_its_own_url() -> None:
    document = client_metadata_document(f"{PUBLIC}/", client_name="acme reconciler")
    assert document == {
        "client_id": f"{PUBLIC}/oauth/client-metadata.json",
        "client_name": "acme reconciler",
        "client_uri": PUBLIC,
        "redirect_uris": [f"{PUBLIC}/oauth/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }
    assert document["client_id"] == metadata_document_url(PUBLIC)
    assert "client_secret" not in document


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (PUBLIC, None),
        ("http://127.0.0.1:8787", None),
        (f"{PUBLIC}/acme/", None),
        ("reconciler.example.com", "not an absolute http(s) URL"),
        ("ftp://reconciler.example.com", "not an absolute http(s) URL"),
        (f"{PUBLIC}/?tenant=acme", "no query"),
        (f"{PUBLIC}/#x", "no query"),
        ("https://user:pw@reconciler.example.com", "no query"),
    ],
)
def test_public_url_problem(url: str, problem: str | None) -> None:
    found = public_url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)
    assert "pw" not in (found or "")


@pytest.mark.parametrize(
    ("bound", "client_id", "issuer", "expected"),
    [
        (None, "crm-app", "https://a.example", "bind"),
        (("crm-app", "https://a.example"), "crm-app", "https://a.example", "keep"),
        (("crm-app", "https://a.example"), "crm-app", "https://b.example", "changed"),
        (("crm-app", "https://a.example"), "crm-app-at-b", "https://b.example", "bind"),
    ],
    ids=["first-use", "same-issuer", "moved", "new-client-id-for-the-new-issuer"],
)
def test_preset_binding(bound: tuple[str, str] | None, client_id: str, issuer: str, expected: str) -> None:
    assert preset_binding(bound, client_id=client_id, issuer=issuer) == expected


@pytest.mark.parametrize(
    ("preset", "public_url", "cimd", "expected"),
    [
        (False, PUBLIC, True, "cimd"),
        (True, PUBLIC, True, "preregistered"),
        (False, None, True, "dynamic"),
        (False, PUBLIC, False, "dynamic"),
    ],
    ids=["key-and-cimd", "preset-wins", "no-public-url", "not-advertised"],
)
def test_a_client_credentials_client_with_a_key_can_be_a_cimd_client(
    preset: bool, public_url: str | None, cimd: bool, expected: str
) -> None:
    chosen = choose_client_identity(
        preset_client_id=preset,
        code_flow=False,
        confidential=True,
        public_url=public_url,
        cimd_supported=cimd,
        signs_assertions=True,
    )
    assert chosen == expected


def test_the_client_credentials_document_names_its_keys_and_no_secret() -> None:
    document = client_credentials_metadata_document(f"{PUBLIC}/", tenant="acme")
    assert document == {
        "client_id": f"{PUBLIC}/oauth/tenants/acme/client-credentials-metadata.json",
        "client_name": "mcp-reconciler (acme)",
        "client_uri": PUBLIC,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{PUBLIC}/oauth/tenants/acme/jwks.json",
    }
    assert document["client_id"] == client_credentials_metadata_url(PUBLIC, tenant="acme")
    assert document["client_id"] != metadata_document_url(PUBLIC)
    assert document["client_id"] != client_credentials_metadata_url(PUBLIC, tenant="globex")
    assert document["jwks_uri"] == jwks_url(PUBLIC, tenant="acme")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/oauth/tenants/acme/jwks.json", ("acme", "jwks.json")),
        ("/oauth/tenants/a-1/client-credentials-metadata.json", ("a-1", "client-credentials-metadata.json")),
        ("/oauth/tenants/Acme/jwks.json", None),
        ("/oauth/tenants/-acme/jwks.json", None),
        ("/oauth/tenants/acme/../globex/jwks.json", None),
        ("/oauth/tenants/acme/keys.json", None),
        ("/oauth/tenants//jwks.json", None),
        ("/oauth/jwks.json", None),
        (f"/oauth/tenants/{'a' * 64}/jwks.json", None),
    ],
)
def test_only_a_tenants_two_documents_are_tenant_paths(path: str, expected: tuple[str, str] | None) -> None:
    assert tenant_client_path(path) == expected
