"""Pure helpers of the credentials package: references, header precedence, client authentication encoding,
token renewal timing, the authorization URL template, redaction, and the pinned public surface."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

import reconciler.credentials
from reconciler.credentials import (
    MintedToken,
    ResolvedHeaders,
    SecretNotFound,
    TokenClient,
    add_connection_credential,
    add_server_credential,
    add_stored_headers,
    authorization_url_template,
    discovery_from_status,
    fill_authorization_url,
    local_reference,
    new_pkce,
    parse_reference,
    require_reference,
)
from reconciler.credentials.errors import redact
from reconciler.probe import AuthDiscovery
from reconciler.registry.records import HeaderRecord

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC)


class Secrets:
    def __init__(self, values: dict[tuple[str, str, str], str]) -> None:
        self.values = values

    def read(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name, key))


def test_local_references_parse_like_secret_references() -> None:
    reference = local_reference("acme", "crm.v2", "oauth-access-token")
    assert reference == "local:acme/crm.v2#oauth-access-token"
    assert parse_reference(reference) == ("local:acme", "crm.v2", "oauth-access-token")
    with pytest.raises(ValueError):
        local_reference("acme", "a/b", "x")


def test_missing_secret_names_the_reference() -> None:
    with pytest.raises(SecretNotFound, match=r"acme/crm-token#token .*needed for spec.auth.clientSecret") as caught:
        require_reference(Secrets({}), "acme/crm-token#token", purpose="spec.auth.clientSecret")
    assert caught.value.reference == "acme/crm-token#token" and caught.value.reason == "SecretNotFound"


# Header precedence (headers.py): server headers < connection headers < the credential header, by name,
# case-insensitively; the last writer keeps its own spelling of the name.
@pytest.mark.parametrize(
    ("server_headers", "auth_type", "auth", "connection_headers", "connection_secret", "expected"),
    [
        ([("X-Static", "s")], "none", {}, [], None, {"X-Static": "s"}),
        ([], "bearer", {"secretRef": "ns/s#token"}, [], None, {"Authorization": "Bearer T"}),
        ([], "bearer", {"secretRef": "ns/s#token", "scheme": "Token"}, [], None, {"Authorization": "Token T"}),
        ([], "apiKey", {"secretRef": "ns/s#token", "headerName": "X-Tenant-Key"}, [], None, {"X-Tenant-Key": "T"}),
        ([], "apiKey", {"secretRef": "ns/s#token"}, [], None, {"X-API-Key": "T"}),
        (
            [("authorization", "Basic static"), ("X-Org", "server")],
            "bearer",
            {"secretRef": "ns/s#token"},
            [("x-org", "connection")],
            None,
            {"Authorization": "Bearer T", "x-org": "connection"},
        ),
        (
            [("X-Org", "server")],
            "bearer",
            {"secretRef": "ns/s#token"},
            [("Authorization", "from-connection-header")],
            ("ns/c#token", "Token"),
            {"X-Org": "server", "Authorization": "Token C"},
        ),
        ([], "oauthClientCredentials", {"clientSecretRef": "ns/s#token"}, [], None, {}),
    ],
)
def test_header_precedence(
    server_headers: list[tuple[str, str]],
    auth_type: str,
    auth: dict[str, Any],
    connection_headers: list[tuple[str, str]],
    connection_secret: tuple[str, str] | None,
    expected: dict[str, str],
) -> None:
    secrets = Secrets({("ns", "s", "token"): "T", ("ns", "c", "token"): "C"})
    resolved = ResolvedHeaders()
    add_stored_headers(resolved, [HeaderRecord(name=n, value=v) for n, v in server_headers], secrets)
    add_server_credential(resolved, auth_type, auth, secrets)
    add_stored_headers(resolved, [HeaderRecord(name=n, value=v) for n, v in connection_headers], secrets)
    if connection_secret is not None:
        add_connection_credential(resolved, connection_secret[0], connection_secret[1], secrets)
    assert resolved.headers == expected and resolved.missing == []


def test_missing_secret_headers_are_listed_not_sent() -> None:
    resolved = ResolvedHeaders()
    add_stored_headers(resolved, [HeaderRecord(name="X-Key", secret_ref="ns/gone#k")], Secrets({}))
    add_server_credential(resolved, "bearer", {"secretRef": "ns/gone#token"}, Secrets({}))
    assert resolved.headers == {} and resolved.missing == ["ns/gone#k", "ns/gone#token"]


@pytest.mark.parametrize(
    ("method", "header", "form"),
    [
        ("client_secret_basic", "Basic " + base64.b64encode(b"my%20client:p%40ss%2Bw%3Ard").decode(), {}),
        ("client_secret_post", None, {"client_id": "my client", "client_secret": "p@ss+w:rd"}),
        ("none", None, {"client_id": "my client"}),
    ],
)
def test_client_authentication(method: Any, header: str | None, form: dict[str, str]) -> None:
    client = TokenClient(token_url="https://as/token", client_id="my client", client_secret="p@ss+w:rd", method=method)
    headers, fields = client.authentication()
    assert headers.get("Authorization") == header and fields == form
    assert "p@ss" not in repr(client)


def test_renewal_at_a_fraction_of_the_lifetime() -> None:
    token = MintedToken(
        access_token="at-secret", issued_at=NOW, expires_at=NOW + dt.timedelta(seconds=100), fingerprint="f"
    )
    assert not token.renewal_due(NOW + dt.timedelta(seconds=79))
    assert token.renewal_due(NOW + dt.timedelta(seconds=80))
    assert token.renewal_due(NOW + dt.timedelta(seconds=50), refresh_at=0.5)
    assert token.renewal_due(NOW + dt.timedelta(seconds=101), refresh_at=1.0)
    forever = dataclasses.replace(token, expires_at=None)
    assert not forever.renewal_due(NOW + dt.timedelta(days=365))
    assert "at-secret" not in repr(token)
    assert token.headers() == {"Authorization": "Bearer at-secret"}


def test_authorization_url_template() -> None:
    template = authorization_url_template(
        auth_url="https://as.example/authorize?tenant=acme",
        client_id="client 1",
        scopes=["mcp:tools", "offline_access"],
        resource="https://crm.example/mcp",
    )
    assert template.startswith("https://as.example/authorize?tenant=acme&response_type=code&client_id=client%201&")
    assert template.endswith("&redirect_uri={redirect_uri}&state={state}&code_challenge={code_challenge}")
    verifier, challenge = new_pkce()
    assert len(verifier) >= 43 and len(challenge) == 43
    filled = fill_authorization_url(
        template, redirect_uri="https://runtime.example/cb?x=1", state="st/1", code_challenge=challenge
    )
    query = parse_qs(urlsplit(filled).query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["mcp:tools offline_access"] and query["resource"] == ["https://crm.example/mcp"]
    assert query["redirect_uri"] == ["https://runtime.example/cb?x=1"] and query["state"] == ["st/1"]
    assert unquote(query["code_challenge"][0]) == challenge


def test_redact_longest_first_and_ignores_short_values() -> None:
    assert redact("a abcd abcdef", ["abcd", "abcdef", "a", None]) == "a <redacted> <redacted>"


def test_discovery_round_trips_through_status() -> None:
    discovery = AuthDiscovery(
        requires_auth=True,
        recommended_auth_mode="oauthClientCredentials",
        resource="http://x/mcp",
        authorization_servers=("http://as",),
        token_url="http://as/token",
        register_url="http://as/register",
        scopes_supported=("mcp:tools",),
        token_endpoint_auth_methods_supported=("client_secret_post",),
        grant_types_supported=("client_credentials",),
    )
    assert discovery_from_status({**discovery.as_status(), "filledFields": [], "discoveredAt": "x"}) == discovery
    assert discovery_from_status(None) is None


PUBLIC = [
    "public_jwk",
    "DueMemberToken",
    "MemberTokenRenewal",
    "RenewalOutcome",
    "renewal_due",
    "MemberTokenRegistry",
    "MemberTokenTransaction",
    "is_invalid_grant",
    "member_token_name",
    "member_token_secrets",
    "member_refresh_steps",
    "AuthServerAccess",
    "AuthServerBlocked",
    "AuthServerChanged",
    "AuthServerClient",
    "CredentialRegistry",
    "CredentialTransaction",
    "ProbeOutcome",
    "ServerFacts",
    "AuthServerUnavailable",
    "ClientRegistration",
    "ClientRotation",
    "CredentialContext",
    "CredentialFailure",
    "CredentialSettings",
    "CredentialStores",
    "CrossNamespaceReference",
    "IncompleteAuthSpec",
    "InvalidClient",
    "KEY_ENV",
    "KEY_FILE_ENV",
    "KubernetesSecretStore",
    "LocalSecret",
    "LocalSecretStore",
    "MemoryMintedSecrets",
    "MintedSecretStore",
    "MintedSecrets",
    "MintedToken",
    "NamespacedSecrets",
    "NewSecret",
    "OAuthRejected",
    "PreparedCredentials",
    "RegisteredClient",
    "RegistrationRefused",
    "ReleasedCredentials",
    "ResolvedHeaders",
    "RotationAction",
    "RotationDecision",
    "RotationPolicy",
    "SecretKeyProblem",
    "SecretNotFound",
    "SecretNotLoaded",
    "SecretReader",
    "SecretStore",
    "SecretStoreUnavailable",
    "ServerClientRotation",
    "TokenClient",
    "add_connection_credential",
    "add_server_credential",
    "add_stored_headers",
    "arequire_reference",
    "authorization_url_template",
    "choose_auth_method",
    "client_rotation_due",
    "default_key_path",
    "discovery_from_status",
    "fill_authorization_url",
    "fingerprint",
    "is_local_reference",
    "load_store_key",
    "local_reference",
    "new_pkce",
    "parse_reference",
    "plan_rotation",
    "read_reference",
    "require_reference",
    "step_up_scopes",
    "verdict",
    "VerifiedValue",
    "last_good_value",
    "pin_verified",
]


def test_all_is_pinned_and_keeps_the_original_names() -> None:
    assert sorted(reconciler.credentials.__all__) == sorted(PUBLIC)
    for name in (
        "fingerprint",
        "ResolvedHeaders",
        "SecretReader",
        "add_connection_credential",
        "add_server_credential",
        "add_stored_headers",
        "parse_reference",
        "read_reference",
    ):
        assert name in PUBLIC
    for name in PUBLIC:
        assert hasattr(reconciler.credentials, name)
