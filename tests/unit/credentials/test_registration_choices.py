"""Dynamic registration's auth-method choice, as a table: advertised methods by public or confidential → method."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.credentials import RegisteredClient, RegistrationRefused, choose_auth_method, client_rotation_due
from reconciler.registry import OAuthClientRecord

BASIC, POST, NONE = "client_secret_basic", "client_secret_post", "none"
NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("advertised", "confidential", "chosen"),
    [
        # confidential: basic, then post, then none — limited to what the server advertises
        ((BASIC, POST, NONE), True, BASIC),
        ((POST, BASIC), True, BASIC),
        ((POST, NONE), True, POST),
        ((POST,), True, POST),
        ((NONE,), True, NONE),
        ((NONE, "private_key_jwt"), True, NONE),
        ((), True, BASIC),  # RFC 8414: an absent list means client_secret_basic
        # public PKCE registers with none
        ((BASIC, POST, NONE), False, NONE),
        ((NONE,), False, NONE),
        ((), False, NONE),
    ],
)
def test_method_choice(advertised: tuple[str, ...], confidential: bool, chosen: str) -> None:
    assert choose_auth_method(advertised, confidential=confidential) == chosen


@pytest.mark.parametrize(
    ("advertised", "preferred", "chosen"),
    [
        ((BASIC, POST, NONE), POST, POST),  # the spec's tokenEndpointAuthMethod wins over the preference order
        ((BASIC, POST), BASIC, BASIC),
        ((), POST, POST),  # no list advertised: registered as asked, the server answers if it cannot
    ],
)
def test_a_declared_method_is_registered_as_declared(advertised: tuple[str, ...], preferred: Any, chosen: str) -> None:
    assert choose_auth_method(advertised, confidential=True, preferred=preferred) == chosen


def test_a_declared_method_the_server_does_not_offer_is_refused() -> None:
    with pytest.raises(
        RegistrationRefused, match=r"tokenEndpointAuthMethod is client_secret_post.*client_secret_basic"
    ):
        choose_auth_method((BASIC, NONE), confidential=True, preferred="client_secret_post")


@pytest.mark.parametrize(
    ("advertised", "confidential", "message"),
    [
        ((BASIC, POST), False, "accepts no public clients"),
        (("private_key_jwt", "tls_client_auth"), True, "supports none of"),
    ],
)
def test_impossible_choices_are_refused_with_the_advertised_list(
    advertised: tuple[str, ...], confidential: bool, message: str
) -> None:
    with pytest.raises(RegistrationRefused, match=message) as caught:
        choose_auth_method(advertised, confidential=confidential)
    assert all(method in str(caught.value) for method in advertised)
    assert caught.value.error_class == "auth"


def _record(*, expires_at: dt.datetime | None = None, created_at: dt.datetime | None = None) -> OAuthClientRecord:
    return OAuthClientRecord(
        tenant="acme", server="crm", issuer="http://as", client_id="c1", expires_at=expires_at, created_at=created_at
    )


@pytest.mark.parametrize(
    ("client", "max_age", "due"),
    [
        (_record(), None, False),
        (_record(created_at=NOW - dt.timedelta(days=400)), None, False),
        (_record(created_at=NOW - dt.timedelta(days=400)), dt.timedelta(days=365), True),
        (_record(created_at=NOW - dt.timedelta(days=10)), dt.timedelta(days=365), False),
        (_record(expires_at=NOW + dt.timedelta(minutes=30)), None, True),  # within renew_before (1 h)
        (_record(expires_at=NOW + dt.timedelta(days=2)), None, False),
        (_record(expires_at=NOW - dt.timedelta(days=1)), None, True),
        (
            RegisteredClient(
                issuer="http://as",
                client_id="c1",
                token_endpoint_auth_method=BASIC,
                client_secret_expires_at=NOW + dt.timedelta(seconds=5),
            ),
            None,
            True,
        ),
    ],
)
def test_client_rotation_due(
    client: OAuthClientRecord | RegisteredClient, max_age: dt.timedelta | None, due: bool
) -> None:
    reason = client_rotation_due(client, now=NOW, max_age=max_age)
    assert (reason is not None) == due


def test_registered_client_repr_hides_secrets() -> None:
    client = RegisteredClient(
        issuer="http://as",
        client_id="c1",
        token_endpoint_auth_method=BASIC,
        client_secret="s3cret-value-1",
        registration_access_token="reg-token-value-2",
    )
    assert "s3cret" not in repr(client) and "reg-token" not in repr(client)
