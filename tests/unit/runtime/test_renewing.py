"""The pure parts of refreshing a member's token: where the issuer's metadata is, what it must say, when a token is
due, and where a member's token set is sealed."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.credentials import (
    OAuthRejected,
    is_invalid_grant,
    member_token_name,
    member_token_secrets,
    renewal_due,
)
from reconciler.credentials.issuers import (
    IssuerTokenEndpoint,
    issuer_token_endpoint,
    metadata_request,
    metadata_requests,
    token_endpoint_of,
)
from reconciler.credentials.member_tokens import PUBLIC_CLIENT, RefreshClient, refresh_client
from reconciler.credentials.tokens import MintedToken, secret_method
from reconciler.records import AuthServerAnswer, OAuthClientRecord
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime.renewing import tokens_handed_out

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        ("https://as.example.com", "https://as.example.com/.well-known/oauth-authorization-server"),
        ("https://as.example.com/", "https://as.example.com/.well-known/oauth-authorization-server"),
        ("https://as.example.com/tenant/a", "https://as.example.com/.well-known/oauth-authorization-server/tenant/a"),
    ],
)
def test_metadata_comes_from_the_issuers_well_known_url(issuer: str, url: str) -> None:
    request = metadata_request(issuer)

    assert (request.method, request.url) == ("GET", url)


@pytest.mark.parametrize(
    ("issuer", "oidc"),
    [
        ("https://op.example.com", "https://op.example.com/.well-known/openid-configuration"),
        ("https://op.example.com/realms/a/", "https://op.example.com/realms/a/.well-known/openid-configuration"),
    ],
)
def test_an_openid_providers_discovery_document_comes_second(issuer: str, oidc: str) -> None:
    first, second = metadata_requests(issuer)

    assert first == metadata_request(issuer)
    assert (second.method, second.url) == ("GET", oidc)


def test_only_the_issuers_own_metadata_names_the_token_endpoint() -> None:
    issuer = "https://as.example.com"
    good = AuthServerAnswer(status=200, document={"issuer": issuer, "token_endpoint": f"{issuer}/token"})
    other = AuthServerAnswer(status=200, document={"issuer": "https://evil.example", "token_endpoint": "x"})
    none = AuthServerAnswer(status=200, document={"issuer": issuer})

    assert token_endpoint_of(good, issuer=issuer) == f"{issuer}/token"
    with pytest.raises(OAuthRejected, match="bound to that issuer"):
        token_endpoint_of(other, issuer=issuer)
    with pytest.raises(OAuthRejected, match="no token_endpoint"):
        token_endpoint_of(none, issuer=issuer)


def test_the_issuers_metadata_also_says_how_clients_authenticate() -> None:
    issuer = "https://as.example.com"
    document = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
    }

    found = issuer_token_endpoint(AuthServerAnswer(status=200, document=document), issuer=issuer)

    assert found == IssuerTokenEndpoint(url=f"{issuer}/token", auth_methods=("client_secret_post", "none"))


@pytest.mark.parametrize(
    ("declared", "advertised", "method"),
    [
        (None, (), "client_secret_basic"),
        (None, ("client_secret_basic", "client_secret_post"), "client_secret_basic"),
        (None, ("client_secret_post", "none"), "client_secret_post"),
        ("client_secret_post", ("client_secret_basic",), "client_secret_post"),
        ("client_secret_basic", ("client_secret_post",), "client_secret_basic"),
        ("private_key_jwt", (), "client_secret_basic"),
    ],
)
def test_a_client_secret_is_presented_as_declared_else_as_the_issuer_allows(
    declared: str | None, advertised: tuple[str, ...], method: str
) -> None:
    assert secret_method(declared, advertised) == method


ISSUER = "https://as.example.com"
CONFIDENTIAL = {"pkce": "confidential", "clientId": "crm-app", "clientSecretRef": "acme/creds#client-secret"}
REGISTERED = OAuthClientRecord(
    tenant="acme",
    server="crm",
    issuer=ISSUER,
    client_id="dcr-1",
    client_secret_ref="local:acme/crm#client-secret",
    token_endpoint_auth_method="client_secret_post",
)


@pytest.mark.parametrize(
    ("client_id", "registered", "auth", "preset", "advertised", "expected"),
    [
        pytest.param(
            "dcr-1", [REGISTERED], {}, None, (),
            RefreshClient("local:acme/crm#client-secret", "client_secret_post"), id="registered-client",
        ),
        pytest.param(
            "dcr-1", [OAuthClientRecord("acme", "crm", ISSUER, "dcr-1", token_endpoint_auth_method="none")], {},
            None, (), PUBLIC_CLIENT, id="registered-public-client",
        ),
        pytest.param(
            "crm-app", [], CONFIDENTIAL, "crm-app", (),
            RefreshClient("acme/creds#client-secret", "client_secret_basic"), id="pre-registered-confidential",
        ),
        pytest.param(
            "crm-app", [], CONFIDENTIAL, "crm-app", ("client_secret_post",),
            RefreshClient("acme/creds#client-secret", "client_secret_post"), id="pre-registered-post-only-issuer",
        ),
        pytest.param(
            "crm-app", [REGISTERED], CONFIDENTIAL, "crm-app", (),
            RefreshClient("acme/creds#client-secret", "client_secret_basic"), id="pre-registered-beside-another",
        ),
        pytest.param(
            "crm-app", [], {"pkce": "public", "clientId": "crm-app"}, "crm-app", (), PUBLIC_CLIENT,
            id="pre-registered-public",
        ),
        pytest.param(
            "old-app", [], CONFIDENTIAL, "crm-app", (), PUBLIC_CLIENT, id="token-of-another-client",
        ),
        pytest.param(
            "crm-app", [], CONFIDENTIAL, None, (), PUBLIC_CLIENT, id="client-id-secret-unreadable",
        ),
    ],
)  # fmt: skip
def test_the_refresh_authenticates_as_the_client_the_token_was_obtained_with(
    client_id: str,
    registered: list[OAuthClientRecord],
    auth: dict[str, str],
    preset: str | None,
    advertised: tuple[str, ...],
    expected: RefreshClient,
) -> None:
    token = UserTokenRecord(
        tenant="acme", server="crm", user_id="alice", secret_ref="local:x", client_id=client_id, issuer=ISSUER
    )

    chosen = refresh_client(token, registered, server_auth=auth, preset_client_id=preset, advertised=advertised)

    assert chosen == expected


def test_invalid_grant_is_the_member_reconnecting() -> None:
    assert is_invalid_grant(OAuthRejected("refused", oauth_error="invalid_grant"))
    assert not is_invalid_grant(OAuthRejected("refused", oauth_error="invalid_client"))


def _token(**fields: object) -> UserTokenRecord:
    values: dict[str, object] = {
        "tenant": "t",
        "server": "s",
        "user_id": "alice",
        "secret_ref": "local:t/m#a",
        "refresh_token_ref": "local:t/m#r",
        "client_id": "c",
        "issuer": "https://as.example.com",
        "issued_at": T0,
        "expires_at": T0 + HOUR,
    }
    values.update(fields)
    return UserTokenRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "now", "due"),
    [
        (_token(), T0 + HOUR * 0.79, False),
        (_token(), T0 + HOUR * 0.8, True),
        (_token(), T0 + HOUR * 2, True),
        (_token(issued_at=None), T0 + HOUR * 0.9, False),
        (_token(issued_at=None), T0 + HOUR, True),
        (_token(expires_at=None), T0 + HOUR * 9, False),
        (_token(refresh_token_ref=None), T0 + HOUR * 2, False),
        (_token(issuer=None), T0 + HOUR * 2, False),
        (_token(client_id=None), T0 + HOUR * 2, False),
    ],
)
def test_a_token_is_due_past_80_percent_of_its_lifetime_when_it_can_be_refreshed(
    token: UserTokenRecord, now: dt.datetime, due: bool
) -> None:
    assert renewal_due(token, now=now) is due


def test_a_member_token_set_is_sealed_apart_from_the_servers_own_values() -> None:
    name = member_token_name(server="crm", connection=None, user="alice@example.com")
    token = MintedToken(access_token="at-value", issued_at=T0, expires_at=T0 + HOUR, fingerprint="", refresh_token="rt")

    secrets, access_ref, refresh_ref = member_token_secrets(token, tenant="acme", name=name, issuer="i", client_id="c")

    assert name.startswith("member_") and name != member_token_name(
        server="crm", connection="x", user="alice@example.com"
    )
    assert access_ref == f"local:acme/{name}#oauth-access-token"
    assert refresh_ref == f"local:acme/{name}#oauth-refresh-token"
    assert [s.value for s in secrets] == ["at-value", "rt"]
    assert "at-value" not in repr(secrets) and all("rt" not in str(s.meta.values()) for s in secrets)


def _token(user: str, server: str = "crm", connection: str | None = None) -> UserTokenRecord:
    return UserTokenRecord(tenant="acme", server=server, user_id=user, secret_ref="local:x", connection=connection)


@pytest.mark.parametrize(
    ("tokens", "user", "handed_out"),
    [
        ([_token("@organization"), _token("alice")], "alice", [_token("alice")]),
        ([_token("alice"), _token("@organization")], "alice", [_token("alice")]),
        ([_token("@organization")], "bob", [_token("@organization")]),
        ([_token("@organization")], None, [_token("@organization")]),
        ([_token("alice")], None, []),
        (
            [_token("alice", connection="members"), _token("@organization", server="docs")],
            "alice",
            [_token("alice", connection="members"), _token("@organization", server="docs")],
        ),
    ],
    ids=["own-after-org", "own-before-org", "org-fallback", "no-member", "someone-elses", "per-server-and-connection"],
)
def test_a_resolution_renews_only_the_tokens_it_hands_out(
    tokens: list[UserTokenRecord], user: str | None, handed_out: list[UserTokenRecord]
) -> None:
    assert tokens_handed_out(tokens, user=user) == handed_out
