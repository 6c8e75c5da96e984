"""A member token's refresh as pure steps: what it asks for, in which order, what the caches spare, and what the
answers make of it. Driven by hand here, with the answers a caller would send; `AuthServerAccess.run` drives them
against a port at our own seam. The real authorization servers are in tests/integration (runtime, engine,
credentials)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import anyio
import pytest

from reconciler.credentials import AuthServerAccess, AuthServerUnavailable, OAuthRejected, is_invalid_grant
from reconciler.credentials.authserver import AuthServerRequest
from reconciler.credentials.issuers import IssuerTokenEndpoint
from reconciler.credentials.member_tokens import (
    ClientsWanted,
    MemberRefreshStep,
    ValueWanted,
    member_refresh_steps,
    token_endpoint_steps,
)
from reconciler.credentials.tokens import MintedToken, TokenClient, refresh_grant_steps
from reconciler.records import AuthDiscovery, AuthServerAnswer, AuthServerFailure, IssuedClient, OAuthClientRecord
from reconciler.registry.records import UserTokenRecord

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ISSUER = "https://as.example.com"
METADATA = "https://as.example.com/.well-known/oauth-authorization-server"
OIDC = "https://as.example.com/.well-known/openid-configuration"
TOKEN_URL = "https://as.example.com/token"
SERVER_URL = "https://mcp.example.com/mcp"
KEY = b"k" * 32
SECRET_REF = "local:acme/crm#dcr-client-secret"

TOKEN = UserTokenRecord(
    tenant="acme",
    server="crm",
    user_id="alice",
    secret_ref="local:acme/member_x#oauth-access-token",
    row_id=1,
    expires_at=NOW,
    refresh_token_ref="local:acme/member_x#oauth-refresh-token",
    issued_at=NOW - dt.timedelta(hours=1),
    client_id="crm-c",
    issuer=ISSUER,
    scopes=("read",),
)
CONFIDENTIAL = OAuthClientRecord(
    tenant="acme",
    server="crm",
    issuer=ISSUER,
    client_id="crm-c",
    client_secret_ref=SECRET_REF,
    token_endpoint_auth_method="client_secret_post",
)


def metadata(**extra: Any) -> AuthServerAnswer:
    return AuthServerAnswer(200, {"issuer": ISSUER, "token_endpoint": TOKEN_URL, **extra}, endpoint=METADATA)


def granted(**extra: Any) -> AuthServerAnswer:
    return AuthServerAnswer(
        200, {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600, **extra}, endpoint=TOKEN_URL
    )


def drive(
    steps: Generator[MemberRefreshStep, object, MintedToken], answers: Sequence[object]
) -> tuple[list[MemberRefreshStep], MintedToken]:
    """Send `answers` in turn; the steps taken and what they returned."""
    taken: list[MemberRefreshStep] = []
    pending = list(answers)
    sent: object = None
    try:
        while True:
            taken.append(steps.send(sent))
            sent = pending.pop(0)
    except StopIteration as done:
        assert not pending, "the steps ended before every answer was used"
        return taken, done.value


def refresh(
    *,
    refresh_token: str | None = "rt-1",
    server_auth: Mapping[str, Any] | None = None,
    token_endpoints: dict[str, IssuerTokenEndpoint] | None = None,
    oauth_clients: dict[tuple[str, str], Sequence[OAuthClientRecord]] | None = None,
) -> Generator[MemberRefreshStep, object, MintedToken]:
    return member_refresh_steps(
        TOKEN,
        refresh_token,
        server_url=SERVER_URL,
        server_auth=server_auth or {},
        fingerprint_key=KEY,
        now=NOW,
        token_endpoints={} if token_endpoints is None else token_endpoints,
        oauth_clients={} if oauth_clients is None else oauth_clients,
    )


def test_a_cold_refresh_asks_for_the_clients_the_metadata_and_the_secret_in_that_order() -> None:
    endpoints: dict[str, IssuerTokenEndpoint] = {}
    clients: dict[tuple[str, str], Sequence[OAuthClientRecord]] = {}

    taken, token = drive(
        refresh(token_endpoints=endpoints, oauth_clients=clients),
        [[CONFIDENTIAL], metadata(), "s3cret", granted()],
    )

    asked_clients, metadata_request, secret, grant = taken
    assert asked_clients == ClientsWanted(tenant="acme", server="crm")
    assert isinstance(metadata_request, AuthServerRequest) and metadata_request.url == METADATA
    assert secret == ValueWanted(SECRET_REF)
    assert isinstance(grant, AuthServerRequest) and (grant.method, grant.url) == ("POST", TOKEN_URL)
    assert grant.form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "scope": "read",
        "resource": SERVER_URL,
        "client_id": "crm-c",
        "client_secret": "s3cret",
    }
    assert {"s3cret", "rt-1"} <= set(grant.secrets)
    assert (token.access_token, token.refresh_token, token.issued_at) == ("at-2", "rt-1", NOW)
    assert endpoints == {ISSUER: IssuerTokenEndpoint(url=TOKEN_URL)}
    assert clients == {("acme", "crm"): [CONFIDENTIAL]}


def test_warm_caches_spare_the_registry_read_and_the_metadata_requests() -> None:
    taken, token = drive(
        refresh(
            token_endpoints={ISSUER: IssuerTokenEndpoint(url=TOKEN_URL)},
            oauth_clients={("acme", "crm"): []},
        ),
        [granted(refresh_token="rt-2")],
    )

    (grant,) = taken
    assert isinstance(grant, AuthServerRequest) and grant.form is not None and grant.form["client_id"] == "crm-c"
    assert token.refresh_token == "rt-2", "a rotated refresh token replaces the spent one"


def test_a_preset_client_in_a_secret_asks_for_its_id_then_its_secret() -> None:
    auth = {
        "clientIdRef": "acme/crm-client#id",
        "clientSecretRef": "acme/crm-client#secret",
        "pkce": "confidential",
    }

    taken, _ = drive(
        refresh(server_auth=auth, oauth_clients={("acme", "crm"): []}),
        [metadata(token_endpoint_auth_methods_supported=["client_secret_post"]), "crm-c", "preset", granted()],
    )

    _, asked_id, asked_secret, grant = taken
    assert (asked_id, asked_secret) == (ValueWanted("acme/crm-client#id"), ValueWanted("acme/crm-client#secret"))
    assert isinstance(grant, AuthServerRequest) and grant.form is not None
    assert grant.form["client_secret"] == "preset", "presented as the issuer advertises"


def test_a_gone_refresh_token_is_refused_before_anything_is_asked() -> None:
    with pytest.raises(OAuthRejected) as refused:
        next(refresh(refresh_token=None))

    assert is_invalid_grant(refused.value)


def test_the_openid_document_is_asked_when_the_rfc_8414_one_is_missing() -> None:
    known: dict[str, IssuerTokenEndpoint] = {}
    steps = token_endpoint_steps(ISSUER, known=known)

    first = next(steps)
    second = steps.send(AuthServerAnswer(404, None, endpoint=METADATA))
    with pytest.raises(StopIteration) as done:
        steps.send(metadata())

    assert (first.url, second.url) == (METADATA, OIDC)
    assert done.value.value == known[ISSUER] == IssuerTokenEndpoint(url=TOKEN_URL)


def test_server_trouble_at_the_metadata_is_retryable_and_learns_nothing() -> None:
    known: dict[str, IssuerTokenEndpoint] = {}
    steps = token_endpoint_steps(ISSUER, known=known)
    next(steps)

    with pytest.raises(AuthServerUnavailable):
        steps.send(AuthServerAnswer(503, None, endpoint=METADATA))
    assert known == {}


def test_a_refused_refresh_names_the_client_and_never_the_refresh_token() -> None:
    client = TokenClient(token_url=TOKEN_URL, client_id="crm-c", method="none")
    steps = refresh_grant_steps(client, "rt-secret", fingerprint_key=KEY, now=NOW)
    next(steps)

    with pytest.raises(OAuthRejected) as refused:
        steps.send(
            AuthServerAnswer(
                400, {"error": "invalid_grant", "error_description": "rt-secret expired"}, endpoint=TOKEN_URL
            )
        )

    assert is_invalid_grant(refused.value) and "rt-secret" not in str(refused.value)


class CannedAuthServer:
    """The authorization-server port (our own seam) answering from a table by URL."""

    def __init__(self, answers: Mapping[str, AuthServerAnswer]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    async def send(self, method: str, url: str, **_: Any) -> AuthServerAnswer | AuthServerFailure:
        self.sent.append(url)
        return self.answers[url]

    async def discover(self, *, server_url: str, transport: str, allow_private: bool) -> AuthDiscovery:
        raise NotImplementedError

    def origin(self, url: str) -> str:
        raise NotImplementedError

    def read_issued_client(self, document: Mapping[str, Any] | None) -> IssuedClient | None:
        raise NotImplementedError


def test_run_sends_the_requests_through_the_port_and_hands_the_rest_to_the_caller() -> None:
    port = CannedAuthServer({METADATA: metadata(), TOKEN_URL: granted()})
    asked: list[object] = []

    def answer(wanted: object) -> object:
        asked.append(wanted)
        return [CONFIDENTIAL] if isinstance(wanted, ClientsWanted) else "s3cret"

    token = anyio.run(lambda: AuthServerAccess(client=port).run(refresh(), answer=answer))

    assert port.sent == [METADATA, TOKEN_URL]
    assert asked == [ClientsWanted(tenant="acme", server="crm"), ValueWanted(SECRET_REF)]
    assert token.access_token == "at-2"


def test_run_refuses_a_step_no_one_answers() -> None:
    port = CannedAuthServer({})

    with pytest.raises(TypeError, match="ClientsWanted"):
        anyio.run(lambda: AuthServerAccess(client=port).run(refresh()))
