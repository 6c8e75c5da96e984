"""The credentials package against a certified OpenID provider (oidc-provider on 127.0.0.1) and an MCP server
that accepts only its JWT access tokens: discovery (RFC 9728 → RFC 8414), dynamic registration (RFC 7591) and
deregistration (RFC 7592), a member's authorization code with PKCE and `resource` after the provider's real login
and consent pages, rotating refresh tokens, client credentials, and tool listing through the probe. The last
tests check what the provider offers that the product does not use yet (private_key_jwt, revocation with
introspection, a short token lifetime), so the OAuth work can build on them.

No code is faked: every code, token and client comes from the provider. Registry-touching tests run on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from reconciler.credentials import (
    AuthServerAccess,
    MintedToken,
    OAuthRejected,
    PreparedCredentials,
    TokenClient,
    authorization_url_template,
    fill_authorization_url,
    new_pkce,
)
from reconciler.credentials.tokens import TokenAuthMethod
from reconciler.demo.serving import ServerLoop
from reconciler.engine.authorizing import (
    discover_server,
    prepare_server_credentials,
    release_server_credentials,
    rotate_server_client,
)
from reconciler.engine.minting import (
    MemoryTokenCache,
    client_credentials_token,
    exchange_authorization_code,
    refresh_access_token,
)
from reconciler.probe import ProbeAuthServer
from reconciler.records import AuthDiscovery
from reconciler.registry.records import ServerRecord
from tests.fixtures.oidc_provider import (
    OIDC_SCOPE,
    OIDCProtectedMCP,
    OIDCProvider,
    host_oidc_protected_mcp,
    start_oidc_provider,
)
from tests.integration.credentials.support import LOCAL, REDIRECT_URI, TENANT, World, probe, run, server, world

pytestmark = pytest.mark.slow


def code_server(name: str, url: str, pkce: str = "public", **auth: object) -> ServerRecord:
    return server(name, url, "oauthAuthorizationCode", pkce=pkce, **auth)


def prepare(w: World, record: ServerRecord) -> PreparedCredentials:
    return run(lambda http: prepare_server_credentials(record, context=w.context(http)))


def token_client(provider: OIDCProvider, client_id: str, secret: str | None, method: str) -> TokenClient:
    chosen: TokenAuthMethod = method  # type: ignore[assignment]
    return TokenClient(token_url=provider.token_url, client_id=client_id, client_secret=secret, method=chosen)


def login_url(prepared: PreparedCredentials, *, state: str, challenge: str) -> str:
    assert prepared.authorization_url_template is not None
    return fill_authorization_url(
        prepared.authorization_url_template, redirect_uri=REDIRECT_URI, state=state, code_challenge=challenge
    )


def member_logs_in(
    w: World, provider: OIDCProvider, prepared: PreparedCredentials, *, resource: str, login: str = "alice"
) -> tuple[MintedToken, dict[str, str]]:
    """The runtime's half, through the provider's real pages: (the exchanged token, the values of the login)."""
    assert prepared.client is not None
    verifier, challenge = new_pkce()
    state = secrets.token_urlsafe(12)
    landed = provider.authorize_member(login_url(prepared, state=state, challenge=challenge), login=login)
    query = {key: values[0] for key, values in parse_qs(urlsplit(landed).query).items()}
    assert "error" not in query, query
    assert query["state"] == state and query["iss"] == provider.issuer  # RFC 9207
    client = prepared.client
    token = run(
        lambda http: exchange_authorization_code(
            client=token_client(provider, client.client_id, client.client_secret, client.token_endpoint_auth_method),
            code=query["code"],
            code_verifier=verifier,
            redirect_uri=REDIRECT_URI,
            resource=resource,
            access=w.context(http).access(allow_private=True),
            fingerprint_key=w.registry.fingerprint_key(),
        )
    )
    return token, {"code": query["code"], "verifier": verifier}


def claims_of(token: str) -> dict[str, object]:
    """The JWT's claims, unverified: the MCP server verifies them; here they only say what was issued."""
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_discovery_finds_the_provider_through_the_protected_resource(
    oidc_protected_mcp: OIDCProtectedMCP,
) -> None:
    provider = oidc_protected_mcp.provider
    found: AuthDiscovery = run(
        lambda http: discover_server(
            server("crm", oidc_protected_mcp.url),
            access=AuthServerAccess(client=ProbeAuthServer(http, LOCAL), allow_private=True),
        )
    )
    assert found.requires_auth and found.resource == oidc_protected_mcp.url
    assert found.authorization_servers == (provider.issuer,)
    assert found.auth_url == provider.metadata["authorization_endpoint"]
    assert found.token_url == provider.token_url and found.register_url == provider.registration_url
    assert OIDC_SCOPE in found.scopes_supported
    assert "private_key_jwt" in found.token_endpoint_auth_methods_supported
    assert found.recommended_auth_mode == "oauthAuthorizationCode"


@pytest.mark.parametrize(("pkce", "method"), [("public", "none"), ("confidential", "client_secret_basic")])
def test_member_login_refresh_rotation_and_tools(
    registry_url: str,
    oidc_protected_mcp: OIDCProtectedMCP,
    caplog: pytest.LogCaptureFixture,
    pkce: str,
    method: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    record = code_server("crm", url, pkce)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)  # discovery, then DCR at the provider
        client = prepared.client
        assert client is not None and not client.reused and client.issuer == provider.issuer
        assert client.token_endpoint_auth_method == method and (client.client_secret is None) == (pkce == "public")
        assert client.can_deregister  # RFC 7592: a registration URI and token came back
        template = prepared.authorization_url_template or ""
        assert template.startswith(str(provider.metadata["authorization_endpoint"]))

        token, login = member_logs_in(w, provider, prepared, resource=url, login="alice")
        claims = claims_of(token.access_token)
        assert claims["aud"] == url and claims["sub"] == "alice" and claims["client_id"] == client.client_id
        assert claims["iss"] == provider.issuer and OIDC_SCOPE in str(claims["scope"]).split()
        assert token.expires_at is not None and token.refresh_token is not None

        listed = probe(url, token.headers())
        assert listed.ok, listed.message
        assert sorted(tool.name for tool in listed.tools or ()) == ["fortune", "whoami"]

        tokens = token_client(provider, client.client_id, client.client_secret, method)
        refreshed = run(
            lambda http: refresh_access_token(
                client=tokens,
                refresh_token=token.refresh_token or "",
                resource=url,
                access=w.context(http).access(allow_private=True),
                fingerprint_key=w.registry.fingerprint_key(),
            )
        )
        assert refreshed.access_token != token.access_token
        assert refreshed.refresh_token not in (None, token.refresh_token)  # rotated
        assert probe(url, refreshed.headers()).ok
        with pytest.raises(OAuthRejected, match="invalid_grant") as refused:  # the old refresh token is spent
            run(
                lambda http: refresh_access_token(
                    client=tokens,
                    refresh_token=token.refresh_token or "",
                    resource=url,
                    access=w.context(http).access(allow_private=True),
                    fingerprint_key=w.registry.fingerprint_key(),
                )
            )

        released = run(
            lambda http: release_server_credentials(TENANT, "crm", context=w.context(http), allow_private=True)
        )
        assert released.clients == {client.client_id: "deregistered"}
        with w.registry.transaction() as transaction:
            transaction.delete([("servers", TENANT, "crm")])

    leaked = [
        token.access_token,
        token.refresh_token,
        refreshed.access_token,
        refreshed.refresh_token,
        login["code"],
        login["verifier"],
        client.client_secret,
        client.registration_access_token,
    ]
    text = caplog.text + str(refused.value)
    assert not [value for value in leaked if value and value in text]


def test_a_preset_confidential_client_needs_no_registration(
    registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    preset = provider.static_confidential
    record = code_server("crm", url, "confidential", clientId=preset.client_id)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.client is None and f"client_id={preset.client_id}&" in (
            prepared.authorization_url_template or ""
        )
        verifier, challenge = new_pkce()
        landed = provider.authorize_member(login_url(prepared, state="st", challenge=challenge), login="carol")
        query = {key: values[0] for key, values in parse_qs(urlsplit(landed).query).items()}
        assert query["iss"] == provider.issuer and query["state"] == "st"
        token = run(
            lambda http: exchange_authorization_code(
                client=token_client(provider, preset.client_id, preset.client_secret, "client_secret_basic"),
                code=query["code"],
                code_verifier=verifier,
                redirect_uri=REDIRECT_URI,
                resource=url,
                access=w.context(http).access(allow_private=True),
                fingerprint_key=w.registry.fingerprint_key(),
            )
        )
    assert claims_of(token.access_token)["sub"] == "carol"
    assert probe(url, token.headers()).ok


def test_a_deregistered_client_is_gone_at_the_provider(registry_url: str, oidc_protected_mcp: OIDCProtectedMCP) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    record = code_server("crm", url, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.client is not None
        again = prepare(w, record)
        assert again.client is not None and again.client.reused
        assert again.client.client_id == prepared.client.client_id
        run(lambda http: release_server_credentials(TENANT, "crm", context=w.context(http), allow_private=True))
        _, challenge = new_pkce()
        answer = httpx2.get(login_url(prepared, state="s", challenge=challenge), timeout=15)
        assert answer.status_code == 400 and "invalid_client" in answer.text  # no redirect for an unknown client
        with pytest.raises(OAuthRejected, match="invalid_client"):
            run(
                lambda http: client_credentials_token(
                    client=token_client(
                        provider, prepared.client.client_id, prepared.client.client_secret, "client_secret_basic"
                    ),
                    access=w.context(http).access(allow_private=True),
                    cache=MemoryTokenCache(),
                    fingerprint_key=w.registry.fingerprint_key(),
                )
            )
        with w.registry.transaction() as transaction:
            transaction.delete([("servers", TENANT, "crm")])


def test_client_credentials_with_the_static_client(registry_url: str, oidc_protected_mcp: OIDCProtectedMCP) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    machine = provider.static_machine
    cache = MemoryTokenCache()
    with world(registry_url) as w:

        def mint() -> MintedToken:
            return run(
                lambda http: client_credentials_token(
                    client=token_client(provider, machine.client_id, machine.client_secret, "client_secret_basic"),
                    scopes=[OIDC_SCOPE],
                    resource=url,
                    access=w.context(http).access(allow_private=True),
                    cache=cache,
                    fingerprint_key=w.registry.fingerprint_key(),
                )
            )

        token = mint()
        assert token.fresh and claims_of(token.access_token)["aud"] == url
        assert claims_of(token.access_token)["client_id"] == machine.client_id
        listed = probe(url, token.headers())
        assert listed.ok and {tool.name for tool in listed.tools or ()} == {"fortune", "whoami"}
        cached = mint()
        assert not cached.fresh and cached.access_token == token.access_token


@pytest.mark.parametrize(
    ("method", "spelled_out"),
    [("client_secret_basic", True), ("client_secret_post", True), ("client_secret_basic", False)],
    ids=["basic", "post", "scope-and-resource-discovered"],
)
def test_client_credentials_through_dynamic_registration(
    registry_url: str, oidc_protected_mcp: OIDCProtectedMCP, method: str, spelled_out: bool
) -> None:
    url = oidc_protected_mcp.url
    explicit = {"scopes": [OIDC_SCOPE], "resource": url} if spelled_out else {}
    record = server(
        "ops", url, "oauthClientCredentials", dynamicRegistration=True, tokenEndpointAuthMethod=method, **explicit
    )
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.client is not None and prepared.minted
        assert prepared.client.token_endpoint_auth_method == method
        claims = claims_of(dict(prepared.headers)["Authorization"].removeprefix("Bearer "))
        assert claims["aud"] == url and claims["scope"] == OIDC_SCOPE
        assert probe(url, dict(prepared.headers)).ok
        assert prepare(w, record).client.reused  # type: ignore[union-attr]


def test_a_token_for_another_resource_is_refused(registry_url: str, oidc_protected_mcp: OIDCProtectedMCP) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    machine = provider.static_machine
    elsewhere = "http://127.0.0.1:9/mcp"
    with world(registry_url) as w:
        token = run(
            lambda http: client_credentials_token(
                client=token_client(provider, machine.client_id, machine.client_secret, "client_secret_basic"),
                scopes=[OIDC_SCOPE],
                resource=elsewhere,
                access=w.context(http).access(allow_private=True),
                cache=MemoryTokenCache(),
                fingerprint_key=w.registry.fingerprint_key(),
            )
        )
    assert claims_of(token.access_token)["aud"] == elsewhere
    refused = probe(url, token.headers())
    assert not refused.ok and refused.error_class == "auth"
    assert "InvalidAudienceError" in oidc_protected_mcp.verifier.refused


def test_rotating_a_code_client_verifies_by_reading_it_back_and_deregisters_both_in_turn(
    registry_url: str, oidc_protected_mcp: OIDCProtectedMCP
) -> None:
    """Rotation of an authorization-code client: the new registration is read back (RFC 7592 GET), the old one
    deregistered at once, the new one at deletion; a member logs in with the new one in between."""
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    record = code_server("crm", url, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        old = prepare(w, record).client
        assert old is not None
        rotated = run(lambda http: rotate_server_client(record, context=w.context(http), previous=old)).rotation
        assert rotated.promoted and rotated.retired_result == "deregistered"
        current = rotated.current
        assert current.client_id != old.client_id
        answer = httpx2.get(provider.issuer + f"/auth?client_id={old.client_id}&response_type=code", timeout=15)
        assert answer.status_code == 400 and "invalid_client" in answer.text  # the old client is gone
        token, _ = member_logs_in(w, provider, prepare(w, record), resource=url)
        assert probe(url, token.headers()).ok

        released = run(
            lambda http: release_server_credentials(TENANT, "crm", context=w.context(http), allow_private=True)
        )
        assert released.clients == {current.client_id: "deregistered"}
        with w.registry.transaction() as transaction:
            transaction.delete([("servers", TENANT, "crm")])


# -- what the provider itself offers: the harness the OAuth work builds on ----------------------------------


def public_member_token(provider: OIDCProvider, resource: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the registered public client, the token answer) after a member's real login; plain HTTP, no product code."""
    client = provider.register_client(redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="none")
    verifier, challenge = new_pkce()
    template = authorization_url_template(
        auth_url=str(provider.metadata["authorization_endpoint"]),
        client_id=client["client_id"],
        scopes=[OIDC_SCOPE],
        resource=resource,
    )
    url = fill_authorization_url(template, redirect_uri=REDIRECT_URI, state="st", code_challenge=challenge)
    code = parse_qs(urlsplit(provider.authorize_member(url, login="bob")).query)["code"][0]
    answer = httpx2.post(
        provider.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": client["client_id"],
            "resource": resource,
        },
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    return client, answer.json()


def test_private_key_jwt_client_credentials(oidc_protected_mcp: OIDCProtectedMCP) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    client = provider.register_client(
        grant_types=["client_credentials"],
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint_auth_signing_alg="ES256",
        jwks={"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]},
    )
    assert "client_secret" not in client
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client["client_id"],
            "sub": client["client_id"],
            "aud": provider.issuer,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + 60,
        },
        key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    answer = httpx2.post(
        provider.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": OIDC_SCOPE,
            "resource": url,
            "client_id": client["client_id"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    assert probe(url, {"Authorization": f"Bearer {answer.json()['access_token']}"}).ok


def test_revocation_and_introspection(oidc_protected_mcp: OIDCProtectedMCP) -> None:
    provider, url = oidc_protected_mcp.provider, oidc_protected_mcp.url
    client, tokens = public_member_token(provider, url)
    assert claims_of(tokens["access_token"])["sub"] == "bob"
    confidential = provider.static_confidential

    def introspect() -> dict[str, Any]:
        answer = httpx2.post(
            str(provider.metadata["introspection_endpoint"]),
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
            auth=(confidential.client_id, confidential.client_secret),
            timeout=15,
        )
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    live = introspect()
    assert live["active"] is True and live["sub"] == "bob" and live["client_id"] == client["client_id"]
    revoked = httpx2.post(
        str(provider.metadata["revocation_endpoint"]),
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": client["client_id"]},
        timeout=15,
    )
    assert revoked.status_code == 200, revoked.text
    assert introspect()["active"] is False
    refused = httpx2.post(
        provider.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
        timeout=15,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_short_lived_token_expires_at_the_mcp_server(registry_url: str) -> None:
    """A provider with a one-second access-token lifetime: the product reads the lifetime, the server enforces it."""
    with start_oidc_provider(access_token_ttl=1) as provider, ServerLoop() as loop, world(registry_url) as w:
        protected = host_oidc_protected_mcp(loop, provider)
        machine = provider.static_machine
        token = run(
            lambda http: client_credentials_token(
                client=token_client(provider, machine.client_id, machine.client_secret, "client_secret_basic"),
                scopes=[OIDC_SCOPE],
                resource=protected.url,
                access=w.context(http).access(allow_private=True),
                cache=MemoryTokenCache(),
                fingerprint_key=w.registry.fingerprint_key(),
            )
        )
        assert token.expires_at is not None and token.expires_at - token.issued_at == dt.timedelta(seconds=1)
        deadline = time.monotonic() + 30
        while "ExpiredSignatureError" not in protected.verifier.refused and time.monotonic() < deadline:
            assert probe(protected.url, token.headers()).error_class in (None, "auth")
            time.sleep(0.5)  # waiting for the clock to pass the token's expiry, not for another task
        assert "ExpiredSignatureError" in protected.verifier.refused
