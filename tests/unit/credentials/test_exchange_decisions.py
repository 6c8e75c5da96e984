"""The decisions between the engine's exchanges with an authorization server and the registry, table-driven: whether
to discover first, which kept client to go on with and which to forget, what a registration, deregistration or
RFC 7592 read answered, whether a token is reused, refreshed or minted, what keeping a token or a pending client
seals, and whether a pre-registered client's issuer binding holds. The engine (`engine/authorizing.py`,
`engine/minting.py`) performs them; the integration tests run the same flows against real authorization servers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.credentials import (
    AuthServerChanged,
    AuthServerUnavailable,
    ClientRegistration,
    CredentialSettings,
    LocalSecret,
    MintedToken,
    RegisteredClient,
    RegistrationRefused,
)
from reconciler.credentials.planning import (
    client_rotation_reason,
    discovery_step,
    rotation_confidential,
)
from reconciler.credentials.registration import (
    PENDING_PURPOSES,
    choose_client,
    choose_metadata_client,
    deregistration_result,
    needs_new_pending,
    owned_purposes,
    pending_from,
    pending_secrets,
    preset_binding_secret,
    read_registration,
    registration_request,
    rotation_abandoned,
    rotation_promoted,
    still_registered,
)
from reconciler.credentials.stores import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    PRESET_CLIENT_BINDING,
    REFRESH_TOKEN,
    REGISTRATION_TOKEN,
    local_reference,
)
from reconciler.credentials.tokens import stored_token, token_rows, token_step
from reconciler.records import AuthDiscovery, AuthServerAnswer, IssuedClient
from reconciler.registry.records import ServerRecord

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC)
ISSUER = "https://as.example"
OTHER_ISSUER = "https://moved.example"
SECRET = "s3cret-Value-42"
REGISTER_URL = "https://as.example/register"


def server(auth_type: str, **auth: Any) -> ServerRecord:
    return ServerRecord(tenant="acme", name="crm", url="https://mcp.example/mcp", auth_type=auth_type, auth=auth)


def discovery(*issuers: str) -> AuthDiscovery:
    return AuthDiscovery(
        requires_auth=True,
        recommended_auth_mode="oauth",
        authorization_servers=issuers,
        token_url="https://as.example/token",
    )


def client(
    client_id: str = "c1", *, issuer: str = ISSUER, method: str = "client_secret_basic", **facts: Any
) -> RegisteredClient:
    secret = facts.pop("client_secret", None if method == "none" else SECRET)
    return RegisteredClient(issuer, client_id, method, client_secret=secret, **facts)


def registration(**facts: Any) -> ClientRegistration:
    values: dict[str, Any] = {
        "tenant": "acme",
        "server": "crm",
        "issuer": ISSUER,
        "registration_url": REGISTER_URL,
        "confidential": True,
    }
    return ClientRegistration(**{**values, **facts})


# -- discovering first ----------------------------------------------------------------------------------------

DISCOVERY_STEPS: list[tuple[str, ServerRecord, AuthDiscovery | None, str | None, str | None]] = [
    ("client credentials, no token URL, nothing stored", server("oauthClientCredentials"), None, None, "discover"),
    (
        "client credentials, token URL in the spec, nothing stored",
        server("oauthClientCredentials", tokenUrl="https://as.example/token"),
        None,
        None,
        None,
    ),
    (
        "client credentials, dynamic registration needs the registration endpoint",
        server("oauthClientCredentials", tokenUrl="https://as.example/token", dynamicRegistration=True),
        None,
        None,
        "discover",
    ),
    (
        "client credentials, a stored discovery naming an issuer is asked again",
        server("oauthClientCredentials"),
        discovery(ISSUER),
        None,
        "rediscover",
    ),
    (
        "client credentials, a stored discovery naming no issuer stands",
        server("oauthClientCredentials"),
        discovery(),
        None,
        None,
    ),
    ("authorization code, no auth URL", server("oauthAuthorizationCode"), None, "preset", "discover"),
    (
        "authorization code, auth URL and a preset client",
        server("oauthAuthorizationCode", authUrl="https://as.example/authorize"),
        None,
        "preset",
        None,
    ),
    (
        "authorization code, auth URL but a client to register and no registration URL",
        server("oauthAuthorizationCode", authUrl="https://as.example/authorize"),
        None,
        None,
        "discover",
    ),
    (
        "authorization code, auth and registration URLs in the spec",
        server("oauthAuthorizationCode", authUrl="https://as.example/authorize", registerUrl=REGISTER_URL),
        None,
        None,
        None,
    ),
    (
        "authorization code, a stored discovery naming an issuer",
        server("oauthAuthorizationCode"),
        discovery(ISSUER),
        None,
        "rediscover",
    ),
]


@pytest.mark.parametrize(
    ("record", "stored", "client_id", "expected"),
    [case[1:] for case in DISCOVERY_STEPS],
    ids=[case[0] for case in DISCOVERY_STEPS],
)
def test_discovery_step(
    record: ServerRecord, stored: AuthDiscovery | None, client_id: str | None, expected: str | None
) -> None:
    assert discovery_step(record, stored, client_id=client_id) == expected


@pytest.mark.parametrize(
    ("record", "confidential"),
    [
        (server("oauthClientCredentials"), True),
        (server("oauthAuthorizationCode", pkce="confidential"), True),
        (server("oauthAuthorizationCode", pkce="public"), False),
        (server("oauthAuthorizationCode"), False),
    ],
)
def test_a_rotated_client_registers_as_the_spec_says(record: ServerRecord, confidential: bool) -> None:
    assert rotation_confidential(record) is confidential


# -- which kept client --------------------------------------------------------------------------------------

CHOICES: list[tuple[str, list[RegisteredClient], ClientRegistration, str | None, list[str], str | None]] = [
    ("nothing kept: register", [], registration(), None, [], None),
    ("the kept client fits", [client("c1")], registration(), "c1", [], None),
    (
        "a client of another issuer is forgotten and named",
        [client("old", issuer=OTHER_ISSUER)],
        registration(),
        None,
        ["old"],
        OTHER_ISSUER,
    ),
    (
        "the first fitting client stays, later ones go",
        [client("c1"), client("c2")],
        registration(),
        "c1",
        ["c2"],
        None,
    ),
    (
        "a public client where a confidential one is asked for",
        [client("pub", method="none")],
        registration(),
        None,
        ["pub"],
        None,
    ),
    (
        "a method the server no longer advertises",
        [client("c1", method="client_secret_post")],
        registration(advertised_methods=("client_secret_basic",)),
        None,
        ["c1"],
        None,
    ),
    (
        "a confidential client whose secret cannot be read",
        [client("c1", client_secret=None)],
        registration(),
        None,
        ["c1"],
        None,
    ),
    (
        "a CIMD client is never a registered one",
        [client("https://reconciler.example/oauth/client-metadata.json", method="none")],
        registration(confidential=False),
        None,
        ["https://reconciler.example/oauth/client-metadata.json"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("stored", "wanted", "keep", "forget", "replaced"),
    [case[1:] for case in CHOICES],
    ids=[case[0] for case in CHOICES],
)
def test_choose_client(
    stored: list[RegisteredClient],
    wanted: ClientRegistration,
    keep: str | None,
    forget: list[str],
    replaced: str | None,
) -> None:
    choice = choose_client(stored, wanted)
    assert (choice.keep.client_id if choice.keep else None) == keep
    assert [forgotten.client_id for forgotten in choice.forget] == forget
    assert choice.replaced_issuer == replaced


def test_choose_client_refuses_when_no_method_fits() -> None:
    wanted = registration(confidential=False, advertised_methods=("client_secret_basic",))
    with pytest.raises(RegistrationRefused, match="accepts no public clients"):
        choose_client([client("c1")], wanted)


CIMD = "https://reconciler.example/oauth/client-metadata.json"


@pytest.mark.parametrize(
    ("stored", "keep", "forget", "replaced"),
    [
        ([], None, [], None),
        ([client(CIMD, method="none")], CIMD, [], None),
        ([client("dcr-1"), client(CIMD, method="none")], CIMD, ["dcr-1"], None),
        ([client(CIMD, issuer=OTHER_ISSUER, method="none")], None, [CIMD], OTHER_ISSUER),
    ],
    ids=["nothing kept", "kept", "an earlier DCR client goes", "bound to another issuer"],
)
def test_choose_metadata_client(
    stored: list[RegisteredClient], keep: str | None, forget: list[str], replaced: str | None
) -> None:
    choice = choose_metadata_client(stored, issuer=ISSUER, client_id=CIMD)
    assert (choice.keep.client_id if choice.keep else None) == keep
    assert [forgotten.client_id for forgotten in choice.forget] == forget
    assert choice.replaced_issuer == replaced


# -- what a registration answered -----------------------------------------------------------------------------


def answer(status: int, document: Mapping[str, Any] | None = None) -> AuthServerAnswer:
    return AuthServerAnswer(status=status, document=document, endpoint=REGISTER_URL)


def test_a_registration_answer_becomes_the_client() -> None:
    wanted = registration()
    document = {
        "client_id": "new",
        "client_secret": SECRET,
        "registration_client_uri": "https://as.example/register/new",
        "registration_access_token": "rat-1",
    }
    issued = IssuedClient("new", SECRET, "client_secret_basic", int(NOW.timestamp()) + 3600)
    got = read_registration(
        answer(201, document), request=registration_request(wanted), registration=wanted, issued=issued, now=NOW
    )
    assert got == RegisteredClient(
        ISSUER,
        "new",
        "client_secret_basic",
        client_secret=SECRET,
        registration_client_uri="https://as.example/register/new",
        registration_access_token="rat-1",
        client_secret_expires_at=NOW + dt.timedelta(hours=1),
        registered_at=NOW,
    )


REFUSED_REGISTRATIONS: list[tuple[str, AuthServerAnswer, IssuedClient | None, type[Exception], str]] = [
    ("no client in the answer", answer(201, {}), None, RegistrationRefused, "without a valid client"),
    (
        "an auth method the reconciler cannot use",
        answer(201, {"client_id": "x"}),
        IssuedClient("x", SECRET, "tls_client_auth"),
        RegistrationRefused,
        "tls_client_auth",
    ),
    (
        "a confidential method without a secret",
        answer(201, {"client_id": "x"}),
        IssuedClient("x", None, "client_secret_post"),
        RegistrationRefused,
        "without a secret",
    ),
    (
        "an OAuth error",
        answer(400, {"error": "invalid_client_metadata"}),
        None,
        RegistrationRefused,
        "invalid_client_metadata",
    ),
    ("the server failing", answer(503), None, AuthServerUnavailable, "HTTP 503"),
]


@pytest.mark.parametrize(
    ("got", "issued", "error", "words"),
    [case[1:] for case in REFUSED_REGISTRATIONS],
    ids=[case[0] for case in REFUSED_REGISTRATIONS],
)
def test_a_refused_registration(
    got: AuthServerAnswer, issued: IssuedClient | None, error: type[Exception], words: str
) -> None:
    wanted = registration()
    with pytest.raises(error, match=words) as raised:
        read_registration(got, request=registration_request(wanted), registration=wanted, issued=issued, now=NOW)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "deregistered"),
        (204, "deregistered"),
        (401, "already-gone"),
        (403, "already-gone"),
        (404, "already-gone"),
        (400, "failed"),
        (500, "failed"),
    ],
)
def test_deregistration_result(status: int, expected: str) -> None:
    assert deregistration_result(answer(status)) == expected


@pytest.mark.parametrize(
    ("got", "expected"),
    [(answer(200, {"client_id": "c1"}), True), (answer(200, {"client_id": "other"}), False), (answer(401), False)],
    ids=["the same client", "another client", "refused"],
)
def test_still_registered(got: AuthServerAnswer, expected: bool) -> None:
    assert still_registered(got, client("c1")) is expected


def sealed(purpose: str, value: str, **meta: Any) -> LocalSecret:
    return LocalSecret(local_reference("acme", "crm", purpose), value, meta)


def test_only_a_clients_own_sealed_values_are_forgotten_with_it() -> None:
    stored = {CLIENT_SECRET: sealed(CLIENT_SECRET, SECRET, clientId="c1"), REGISTRATION_TOKEN: None}
    assert owned_purposes(client("c1"), stored) == [CLIENT_SECRET]
    assert owned_purposes(client("c2"), stored) == []


# -- rotating -------------------------------------------------------------------------------------------------


def test_a_pending_client_survives_being_sealed_and_read_back() -> None:
    pending = client(
        "next",
        registration_client_uri="https://as.example/register/next",
        registration_access_token="rat-2",
        client_secret_expires_at=NOW + dt.timedelta(days=1),
        registered_at=NOW,
    )
    values = {secret.purpose: secret for secret in pending_secrets(pending, tenant="acme", server="crm")}
    assert sorted(values) == sorted(PENDING_PURPOSES)
    read = pending_from(
        *(sealed(purpose, values[purpose].value, **values[purpose].meta) for purpose in PENDING_PURPOSES)
    )
    assert read == pending
    assert pending_from(None, None) is None
    assert pending_from(sealed(PENDING_PURPOSES[0], "x"), None) is None  # a value without the pending facts


@pytest.mark.parametrize(
    ("pending", "expected"),
    [(None, True), (client("p", issuer=ISSUER), False), (client("p", issuer=OTHER_ISSUER), True)],
    ids=["none pending", "pending for this issuer: resume", "pending for another issuer"],
)
def test_needs_new_pending(pending: RegisteredClient | None, expected: bool) -> None:
    assert needs_new_pending(pending, registration()) is expected


def test_rotation_outcomes() -> None:
    old, new = client("old"), dataclasses.replace(client("new"), reused=True)
    promoted = rotation_promoted(old, new, "deregistered")
    assert (promoted.promoted, promoted.current.client_id, promoted.current.reused) == (True, "new", False)
    assert promoted.message == "client old replaced by new"
    kept = rotation_abandoned(old, new, "failed")
    assert (kept.promoted, kept.current, kept.retired_result) == (False, old, "failed")
    assert kept.message == "the new client new failed verification; keeping old"


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        (None, None),
        (client("c1", client_secret_expires_at=NOW + dt.timedelta(minutes=30)), "its client secret expires"),
        (client("c1", client_secret_expires_at=NOW + dt.timedelta(days=2)), None),
        (client(CIMD, method="none", client_secret_expires_at=NOW), None),
    ],
    ids=["no client", "secret expires within the hour", "secret good for days", "a CIMD client never rotates"],
)
def test_client_rotation_reason(kept: RegisteredClient | None, expected: str | None) -> None:
    reason = client_rotation_reason(kept, settings=CredentialSettings(), now=NOW)
    assert (reason is None) if expected is None else (reason is not None and reason.startswith(expected))


# -- a pre-registered client's issuer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "writes"),
    [
        (None, True),
        (sealed(PRESET_CLIENT_BINDING, "pre", issuer=ISSUER), False),
        (sealed(PRESET_CLIENT_BINDING, "older-id", issuer=OTHER_ISSUER), True),
    ],
    ids=["first use binds", "the same issuer keeps", "a new client id binds afresh"],
)
def test_preset_binding_secret(stored: LocalSecret | None, writes: bool) -> None:
    binding = preset_binding_secret(stored, tenant="acme", server="crm", client_id="pre", issuer=ISSUER)
    assert (binding is not None) is writes
    if binding is not None:
        assert (binding.purpose, binding.value, dict(binding.meta)) == (
            PRESET_CLIENT_BINDING,
            "pre",
            {"issuer": ISSUER},
        )


def test_a_preset_client_moved_to_another_issuer_is_refused() -> None:
    stored = sealed(PRESET_CLIENT_BINDING, "pre", issuer=OTHER_ISSUER)
    with pytest.raises(AuthServerChanged):
        preset_binding_secret(stored, tenant="acme", server="crm", client_id="pre", issuer=ISSUER)


# -- client-credentials tokens --------------------------------------------------------------------------------


def token(*, lifetime: dt.timedelta | None = dt.timedelta(hours=1), refresh: str | None = None) -> MintedToken:
    return MintedToken(
        access_token="at-1",
        issued_at=NOW,
        expires_at=NOW + lifetime if lifetime else None,
        fingerprint="fp",
        refresh_token=refresh,
    )


TOKEN_STEPS: list[tuple[str, MintedToken | None, dt.timedelta, str]] = [
    ("nothing kept", None, dt.timedelta(0), "mint"),
    ("kept and young", token(), dt.timedelta(minutes=10), "reuse"),
    ("kept, past the refresh fraction, no refresh token", token(), dt.timedelta(minutes=50), "mint"),
    ("kept, past the refresh fraction, a refresh token", token(refresh="rt"), dt.timedelta(minutes=50), "refresh"),
    ("kept and expired, a refresh token", token(refresh="rt"), dt.timedelta(hours=2), "refresh"),
    ("kept without expiry", token(lifetime=None), dt.timedelta(days=30), "reuse"),
]


@pytest.mark.parametrize(
    ("cached", "later", "expected"),
    [case[1:] for case in TOKEN_STEPS],
    ids=[case[0] for case in TOKEN_STEPS],
)
def test_token_step(cached: MintedToken | None, later: dt.timedelta, expected: str) -> None:
    assert token_step(cached, now=NOW + later, refresh_at=0.8) == expected


def test_token_step_refuses_a_refresh_fraction_outside_the_lifetime() -> None:
    with pytest.raises(ValueError, match="refresh_at"):
        token_step(None, now=NOW, refresh_at=0)


@pytest.mark.parametrize("refresh", [None, "rt-1"], ids=["without refresh token", "with refresh token"])
def test_a_kept_token_is_sealed_and_read_back_for_the_same_inputs_only(refresh: str | None) -> None:
    minted = token(refresh=refresh)
    rows = token_rows(minted, inputs="inputs-1", tenant="acme", server="crm")
    assert rows.reference == local_reference("acme", "crm", ACCESS_TOKEN)
    assert rows.unseal == (() if refresh else (REFRESH_TOKEN,))
    by_purpose = {secret.purpose: secret for secret in rows.seal}
    assert sorted(by_purpose) == sorted([ACCESS_TOKEN, *([REFRESH_TOKEN] if refresh else [])])
    access = LocalSecret(
        rows.reference, by_purpose[ACCESS_TOKEN].value, by_purpose[ACCESS_TOKEN].meta, minted.expires_at
    )
    kept = by_purpose.get(REFRESH_TOKEN)
    refreshed = None if kept is None else sealed(REFRESH_TOKEN, kept.value, **kept.meta)
    read = stored_token(access, refreshed, inputs="inputs-1", now=NOW)
    assert read == dataclasses.replace(minted, reference=rows.reference, fresh=False)
    assert stored_token(access, refreshed, inputs="other-inputs", now=NOW) is None
    assert stored_token(None, None, inputs="inputs-1", now=NOW) is None
