"""The credentials package's decisions as pure functions, table-driven: inputs → the requests it would send, the
errors an answer or a failure stands for, the token an answer carries, the rows and sealed values a client
writes, and the verdict of a verification probe. No port is called here; the integration tests send the same
requests to a real authorization server."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.credentials import (
    AuthServerBlocked,
    AuthServerUnavailable,
    ClientRegistration,
    InvalidClient,
    OAuthRejected,
    RegisteredClient,
    RegistrationRefused,
    TokenClient,
    verdict,
)
from reconciler.credentials.authserver import AuthServerRequest, failure_error, rejection
from reconciler.credentials.registration import client_rows, management_request, registration_request
from reconciler.credentials.tokens import (
    FORM_CONTENT,
    authorization_code_grant,
    client_credentials_grant,
    refresh_grant,
    token_of,
    token_request,
)
from reconciler.records import AuthServerAnswer, AuthServerFailure

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC)
TOKEN_URL = "https://as.example/token"
SECRET = "s3cret-Value-42"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- token requests -------------------------------------------------------------------------------------------

TOKEN_REQUESTS: list[tuple[str, TokenClient, dict[str, Any], dict[str, Any], dict[str, str]]] = [
    (
        "client credentials, basic auth, scope, resource and audience",
        TokenClient(TOKEN_URL, "rc", SECRET, "client_secret_basic"),
        {"scopes": ["a", "b"], "resource": "https://mcp.example/mcp", "audience": "urn:x"},
        {
            "grant_type": "client_credentials",
            "scope": "a b",
            "resource": "https://mcp.example/mcp",
            "audience": "urn:x",
        },
        {"Authorization": basic("rc", SECRET), "content-type": FORM_CONTENT},
    ),
    (
        "client credentials, post auth, nothing optional",
        TokenClient(TOKEN_URL, "rc", SECRET, "client_secret_post"),
        {},
        {"grant_type": "client_credentials", "client_id": "rc", "client_secret": SECRET},
        {"content-type": FORM_CONTENT},
    ),
    (
        "client credentials, public client",
        TokenClient(TOKEN_URL, "pub", None, "none"),
        {"scopes": ["mcp:tools"]},
        {"grant_type": "client_credentials", "scope": "mcp:tools", "client_id": "pub"},
        {"content-type": FORM_CONTENT},
    ),
]


@pytest.mark.parametrize(
    ("client", "grant", "form", "headers"),
    [case[1:] for case in TOKEN_REQUESTS],
    ids=[case[0] for case in TOKEN_REQUESTS],
)
def test_client_credentials_token_requests(
    client: TokenClient, grant: dict[str, Any], form: dict[str, Any], headers: dict[str, str]
) -> None:
    request = token_request(client, client_credentials_grant(**grant))
    assert (request.method, request.url, request.purpose) == ("POST", TOKEN_URL, "the token request")
    assert dict(request.form or {}) == form
    assert dict(request.headers) == headers
    assert request.secrets == (client.client_secret,)
    assert request.json_body is None


GRANTS: list[tuple[str, Mapping[str, Any], dict[str, Any]]] = [
    ("refresh, bare", refresh_grant("rt-1"), {"grant_type": "refresh_token", "refresh_token": "rt-1"}),
    (
        "refresh, scope and resource",
        refresh_grant("rt-1", scopes=("x",), resource="https://r"),
        {"grant_type": "refresh_token", "refresh_token": "rt-1", "scope": "x", "resource": "https://r"},
    ),
    (
        "authorization code with PKCE",
        authorization_code_grant("c-1", code_verifier="v-1", redirect_uri="http://127.0.0.1/cb"),
        {
            "grant_type": "authorization_code",
            "code": "c-1",
            "code_verifier": "v-1",
            "redirect_uri": "http://127.0.0.1/cb",
        },
    ),
    (
        "authorization code with a resource",
        authorization_code_grant("c-1", code_verifier="v-1", redirect_uri="http://h/cb", resource="https://r"),
        {
            "grant_type": "authorization_code",
            "code": "c-1",
            "code_verifier": "v-1",
            "redirect_uri": "http://h/cb",
            "resource": "https://r",
        },
    ),
]


@pytest.mark.parametrize(("grant", "expected"), [case[1:] for case in GRANTS], ids=[case[0] for case in GRANTS])
def test_grants(grant: Mapping[str, Any], expected: dict[str, Any]) -> None:
    assert dict(grant) == expected


def test_a_token_request_carries_every_secret_it_sends_for_redaction_and_shows_none() -> None:
    client = TokenClient(TOKEN_URL, "rc", SECRET, "client_secret_post")
    request = token_request(
        client, refresh_grant("rt-Secret-9"), purpose="the refresh request", extra_secrets=("rt-Secret-9",)
    )
    assert request.secrets == (SECRET, "rt-Secret-9")
    assert SECRET not in repr(request) and "rt-Secret-9" not in repr(request)


# -- reading token answers ----------------------------------------------------------------------------------

TOKEN_ANSWERS: list[tuple[str, dict[str, Any], dict[str, Any] | None, str | None]] = [
    (
        "bearer with lifetime, scope and refresh token",
        {"access_token": "at-1", "token_type": "Bearer", "expires_in": 60, "scope": "a", "refresh_token": "rt"},
        {"expires_at": NOW + dt.timedelta(seconds=60), "scope": "a", "refresh_token": "rt"},
        None,
    ),
    (
        "lowercase bearer, lifetime as a string",
        {"access_token": "at-1", "token_type": "bearer", "expires_in": "30"},
        {"expires_at": NOW + dt.timedelta(seconds=30), "scope": None, "refresh_token": None},
        None,
    ),
    (
        "no lifetime, a zero lifetime is none either",
        {"access_token": "at-1", "token_type": "Bearer", "expires_in": 0},
        {"expires_at": None, "scope": None, "refresh_token": None},
        None,
    ),
    ("no access token", {"token_type": "Bearer"}, None, "answered without an access_token"),
    ("not a bearer token", {"access_token": "at-1", "token_type": "mac"}, None, "only Bearer tokens are supported"),
]


@pytest.mark.parametrize(
    ("document", "facts", "error"),
    [case[1:] for case in TOKEN_ANSWERS],
    ids=[case[0] for case in TOKEN_ANSWERS],
)
def test_token_answers(document: dict[str, Any], facts: dict[str, Any] | None, error: str | None) -> None:
    answer = AuthServerAnswer(status=200, document=document, endpoint=TOKEN_URL)
    if error is not None:
        with pytest.raises(OAuthRejected, match=error) as caught:
            token_of(answer, fingerprint_key=b"k" * 32, now=NOW)
        assert caught.value.endpoint == TOKEN_URL
        return
    token = token_of(answer, fingerprint_key=b"k" * 32, now=NOW)
    assert token.access_token == "at-1" and token.token_type == "Bearer" and token.issued_at == NOW
    assert {key: getattr(token, key) for key in facts or {}} == facts


# -- what an answer or a failure stands for -----------------------------------------------------------------

REJECTIONS: list[tuple[str, int, dict[str, Any] | None, type[Exception], str | None, str]] = [
    ("server error", 503, None, AuthServerUnavailable, None, "failed on the server's side: HTTP 503"),
    ("rate limited", 429, {"error": "slow_down"}, AuthServerUnavailable, None, "HTTP 429"),
    ("invalid_client", 400, {"error": "invalid_client"}, InvalidClient, "invalid_client", "rejected client 'rc'"),
    ("401 without a code", 401, None, InvalidClient, "invalid_client", "with client_secret_basic"),
    ("other OAuth error", 400, {"error": "invalid_scope"}, OAuthRejected, "invalid_scope", "refused the token"),
    ("no OAuth error", 400, {"detail": "?"}, OAuthRejected, None, "HTTP 400 and no OAuth error"),
]


@pytest.mark.parametrize(
    ("status", "document", "kind", "code", "words"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejections(
    status: int, document: dict[str, Any] | None, kind: type[Exception], code: str | None, words: str
) -> None:
    answer = AuthServerAnswer(status=status, document=document, endpoint=TOKEN_URL)
    error = rejection(answer, url=TOKEN_URL, purpose="the token request", client_id="rc", method="client_secret_basic")
    assert type(error) is kind and words in str(error)
    if isinstance(error, OAuthRejected):
        assert error.oauth_error == code and error.endpoint == TOKEN_URL


def test_a_rejection_redacts_what_the_server_echoes_and_names_no_query() -> None:
    answer = AuthServerAnswer(status=400, document={"error": "invalid_grant", "error_description": f"bad {SECRET}"})
    error = rejection(
        answer, url=f"https://as.example/token?key={SECRET}", purpose="the token request", secrets=[SECRET]
    )
    assert SECRET not in str(error) and "<redacted>" in str(error)
    assert isinstance(error, OAuthRejected) and error.endpoint == "https://as.example/token"


FAILURES: list[tuple[str, str, type[Exception], str]] = [
    ("blocked", "blocked", AuthServerBlocked, "blocked"),
    ("auth", "auth", OAuthRejected, "auth"),
    ("transport", "transport", AuthServerUnavailable, "transport"),
    ("timeout", "timeout", AuthServerUnavailable, "timeout"),
    ("tls", "tls", AuthServerUnavailable, "tls"),
]


@pytest.mark.parametrize(
    ("error_class", "kind", "reported_class"), [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES]
)
def test_failures(error_class: Any, kind: type[Exception], reported_class: str) -> None:
    failure = AuthServerFailure(error_class, f"sending the token request:\n  {SECRET} echoed", TOKEN_URL)
    error = failure_error(failure, secrets=[SECRET])
    assert type(error) is kind
    assert error.error_class == reported_class
    assert str(error) == "sending the token request: <redacted> echoed"


# -- registrations ------------------------------------------------------------------------------------------

REGISTRATIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "public authorization-code client",
        {"confidential": False, "redirect_uris": ("http://127.0.0.1/cb",), "scopes": ("mcp:tools",)},
        {
            "client_name": "mcp-reconciler",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "scope": "mcp:tools",
        },
    ),
    (
        "confidential client-credentials client, post only advertised",
        {
            "confidential": True,
            "grant_types": ("client_credentials",),
            "advertised_methods": ("client_secret_post",),
            "client_name": "platform",
        },
        {
            "client_name": "platform",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_post",
        },
    ),
]


@pytest.mark.parametrize(
    ("fields", "metadata"), [case[1:] for case in REGISTRATIONS], ids=[case[0] for case in REGISTRATIONS]
)
def test_registration_requests(fields: dict[str, Any], metadata: dict[str, Any]) -> None:
    registration = ClientRegistration(
        tenant="acme", server="crm", issuer="https://as", registration_url="https://as/register", **fields
    )
    request = registration_request(registration)
    assert (request.method, request.url, request.purpose) == ("POST", "https://as/register", "the client registration")
    assert request.json_body == metadata and request.form is None and request.secrets == ()


def test_a_registration_the_server_cannot_accept_is_refused_before_any_request() -> None:
    registration = ClientRegistration(
        tenant="acme",
        server="crm",
        issuer="https://as",
        registration_url="https://as/register",
        confidential=False,
        advertised_methods=("client_secret_basic",),
    )
    with pytest.raises(RegistrationRefused, match="accepts no public clients"):
        registration_request(registration)


CLIENT = RegisteredClient(
    issuer="https://as",
    client_id="c-1",
    token_endpoint_auth_method="client_secret_basic",
    client_secret=SECRET,
    registration_client_uri="https://as/register/c-1",
    registration_access_token="rat-Secret-7",
    client_secret_expires_at=NOW + dt.timedelta(days=1),
    registered_at=NOW,
)

MANAGEMENT: list[tuple[str, RegisteredClient, str, AuthServerRequest | None]] = [
    (
        "deregistration",
        CLIENT,
        "DELETE",
        AuthServerRequest(
            "DELETE",
            "https://as/register/c-1",
            "the client deregistration",
            headers={"Authorization": "Bearer rat-Secret-7"},
            secrets=(SECRET, "rat-Secret-7"),
        ),
    ),
    (
        "configuration read",
        CLIENT,
        "GET",
        AuthServerRequest(
            "GET",
            "https://as/register/c-1",
            "the client configuration read",
            headers={"Authorization": "Bearer rat-Secret-7"},
            secrets=(SECRET, "rat-Secret-7"),
        ),
    ),
    ("no registration token", dataclasses.replace(CLIENT, registration_access_token=None), "DELETE", None),
    ("no registration URI", dataclasses.replace(CLIENT, registration_client_uri=None), "GET", None),
]


@pytest.mark.parametrize(
    ("client", "method", "expected"), [case[1:] for case in MANAGEMENT], ids=[case[0] for case in MANAGEMENT]
)
def test_management_requests(client: RegisteredClient, method: str, expected: AuthServerRequest | None) -> None:
    assert management_request(client, method) == expected


ROWS: list[tuple[str, RegisteredClient, dict[str, Any], list[str], list[str]]] = [
    (
        "confidential client with a registration token",
        CLIENT,
        {
            "client_secret_ref": "local:acme/crm#dcr-client-secret",
            "registration_access_token_ref": "local:acme/crm#dcr-registration-token",
        },
        ["dcr-client-secret", "dcr-registration-token"],
        [],
    ),
    (
        "public client without a registration token",
        dataclasses.replace(
            CLIENT, token_endpoint_auth_method="none", client_secret=None, registration_access_token=None
        ),
        {"client_secret_ref": None, "registration_access_token_ref": None},
        [],
        ["dcr-client-secret", "dcr-registration-token"],
    ),
]


@pytest.mark.parametrize(
    ("client", "refs", "sealed", "unsealed"), [case[1:] for case in ROWS], ids=[case[0] for case in ROWS]
)
def test_client_rows(client: RegisteredClient, refs: dict[str, Any], sealed: list[str], unsealed: list[str]) -> None:
    rows = client_rows(client, tenant="acme", server="crm")
    record = rows.record
    assert (record.tenant, record.server, record.issuer, record.client_id) == ("acme", "crm", "https://as", "c-1")
    assert {key: getattr(record, key) for key in refs} == refs
    assert record.expires_at == client.client_secret_expires_at and record.created_at == NOW
    assert [secret.purpose for secret in rows.seal] == sealed
    assert all(secret.meta == {"clientId": "c-1"} for secret in rows.seal)
    assert list(rows.unseal) == unsealed
    assert SECRET not in repr(record)


# -- verification verdicts ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    error_class: str | None


VERDICTS = [
    (Outcome(True, None), "verified"),
    (Outcome(False, "downstream"), "verified"),
    (Outcome(False, "auth"), "rejected"),
    (Outcome(False, "insufficient_scope"), "rejected"),
    (Outcome(False, "transport"), "inconclusive"),
    (Outcome(False, "timeout"), "inconclusive"),
    (Outcome(False, "blocked"), "inconclusive"),
    (Outcome(False, "protocol"), "inconclusive"),
]


@pytest.mark.parametrize(("outcome", "expected"), VERDICTS)
def test_verdicts(outcome: Outcome, expected: str) -> None:
    assert verdict(outcome) == expected
