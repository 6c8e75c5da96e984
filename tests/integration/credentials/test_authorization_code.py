"""oauthAuthorizationCode end to end: the reconciler registers the client (RFC 7591, method by preference and by
what the server advertises), persists and reuses it, publishes the authorization URL template; a runtime (played
by the test, with the headless consent endpoint) completes PKCE and refresh against the real servers; deleting the
server deregisters the client (RFC 7592). Plus client rotation and per-member counts."""

from __future__ import annotations

import datetime as dt
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from reconciler.credentials import (
    MintedToken,
    OAuthRejected,
    PreparedCredentials,
    RegistrationRefused,
    TokenClient,
    client_rotation_due,
    fill_authorization_url,
    new_pkce,
)
from reconciler.engine.authorizing import (
    connected_members,
    prepare_server_credentials,
    release_server_credentials,
    rotate_server_client,
)
from reconciler.engine.minting import exchange_authorization_code, refresh_access_token
from reconciler.probe import credential_verifier
from reconciler.registry.records import ServerRecord, UserTokenRecord
from tests.fixtures.authorization_server import AuthorizationServer, OAuthServers
from tests.integration.credentials.support import (
    LOCAL,
    NAMESPACE,
    REDIRECT_URI,
    TENANT,
    World,
    probe,
    run,
    server,
    target,
    world,
)


def code_server(name: str, url: str, pkce: str = "public", **auth: object) -> ServerRecord:
    return server(name, url, "oauthAuthorizationCode", pkce=pkce, **auth)


def prepare(w: World, record: ServerRecord, **settings: object) -> PreparedCredentials:
    return run(lambda http: prepare_server_credentials(record, context=w.context(http, **settings)))


def member_logs_in(w: World, prepared: PreparedCredentials, issuer: str) -> MintedToken:
    """The runtime's half: open the URL (headless consent), take the code, exchange it with the PKCE verifier."""
    assert prepared.authorization_url_template is not None and prepared.client is not None
    verifier, challenge = new_pkce()
    state = secrets.token_urlsafe(8)
    url = fill_authorization_url(
        prepared.authorization_url_template, redirect_uri=REDIRECT_URI, state=state, code_challenge=challenge
    )
    answer = httpx2.get(url, follow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == [state] and query["iss"] == [issuer]
    client = prepared.client
    token_client = TokenClient(
        token_url=f"{issuer}/token",
        client_id=client.client_id,
        client_secret=client.client_secret,
        method=client.token_endpoint_auth_method,  # type: ignore[arg-type]
    )
    return run(
        lambda http: exchange_authorization_code(
            client=token_client,
            code=query["code"][0],
            code_verifier=verifier,
            redirect_uri=REDIRECT_URI,
            access=w.context(http).access(allow_private=True),
            fingerprint_key=w.registry.fingerprint_key(),
        )
    )


@pytest.mark.parametrize(
    ("pkce", "which", "method"),
    [
        ("public", "main", "none"),
        ("confidential", "main", "client_secret_basic"),
        ("confidential", "post_only", "client_secret_post"),
    ],
)
def test_registration_login_and_refresh(
    registry_url: str, oauth_servers: OAuthServers, pkce: str, which: str, method: str
) -> None:
    authorization_server: AuthorizationServer = getattr(oauth_servers, which)
    url = oauth_servers.protected if which == "main" else oauth_servers.protected_post_only
    record = code_server("crm", url, pkce)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)

        client = prepared.client
        assert client is not None and client.token_endpoint_auth_method == method
        assert (client.client_secret is None) == (method == "none")
        assert prepared.list_tools is False and prepared.headers == {} and prepared.connected_members == 0
        template = prepared.authorization_url_template or ""
        assert template.startswith(f"{authorization_server.issuer}/authorize?response_type=code&client_id=")
        assert "code_challenge_method=S256" in template and "resource=" in template and "{redirect_uri}" in template
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="crm")
        assert stored.client_id == client.client_id and stored.token_endpoint_auth_method == method
        assert stored.registration_access_token_ref == "local:acme/crm#dcr-registration-token"
        assert stored.client_secret_ref == (None if method == "none" else "local:acme/crm#dcr-client-secret")

        token = member_logs_in(w, prepared, authorization_server.issuer)
        assert probe(url, token.headers()).ok
        assert token.refresh_token is not None

        refreshed = run(
            lambda http: refresh_access_token(
                client=TokenClient(
                    token_url=f"{authorization_server.issuer}/token",
                    client_id=client.client_id,
                    client_secret=client.client_secret,
                    method=method,  # type: ignore[arg-type]
                ),
                refresh_token=token.refresh_token or "",
                access=w.context(http).access(allow_private=True),
                fingerprint_key=w.registry.fingerprint_key(),
            )
        )
        assert refreshed.access_token != token.access_token and probe(url, refreshed.headers()).ok
        with pytest.raises(OAuthRejected, match="invalid_grant"):  # refresh tokens rotate
            run(
                lambda http: refresh_access_token(
                    client=TokenClient(
                        token_url=f"{authorization_server.issuer}/token",
                        client_id=client.client_id,
                        client_secret=client.client_secret,
                        method=method,  # type: ignore[arg-type]
                    ),
                    refresh_token=token.refresh_token or "",
                    access=w.context(http).access(allow_private=True),
                    fingerprint_key=w.registry.fingerprint_key(),
                )
            )


def test_the_registered_client_is_reused_on_the_next_run(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = code_server("crm", oauth_servers.protected, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record)
        second = prepare(w, record)
    assert first.client is not None and second.client is not None
    assert second.client.reused and second.client.client_id == first.client.client_id
    assert second.client.client_secret == first.client.client_secret
    assert oauth_servers.main.registrations == 1


def test_a_spec_change_to_public_replaces_the_confidential_client(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    with world(registry_url) as w:
        w.add_servers(code_server("crm", oauth_servers.protected, "confidential"))
        first = prepare(w, code_server("crm", oauth_servers.protected, "confidential"))
        second = prepare(w, code_server("crm", oauth_servers.protected, "public"))
        assert first.client is not None and second.client is not None
        assert second.client.token_endpoint_auth_method == "none" and not second.client.reused
        assert oauth_servers.main.deregistered == [first.client.client_id]
        assert w.store.minted.get(TENANT, "crm", "dcr-client-secret") is None


def test_preset_client_id_needs_no_registration(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = code_server("crm", oauth_servers.protected, "public", clientId="preset-public")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
    assert prepared.client is None and "client_id=preset-public&" in (prepared.authorization_url_template or "")
    assert oauth_servers.main.registrations == 0


def test_no_registration_endpoint_is_a_clear_refusal(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = code_server("crm", oauth_servers.protected_no_registration, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        with pytest.raises(RegistrationRefused, match=r"no registration endpoint.*set spec\.auth\.clientId") as caught:
            prepare(w, record)
    assert caught.value.error_class == "auth"


def test_deleting_the_server_deregisters_and_forgets_the_client(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = code_server("crm", oauth_servers.protected, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.client is not None
        released = run(
            lambda http: release_server_credentials(TENANT, "crm", context=w.context(http), allow_private=True)
        )
        assert released.clients == {prepared.client.client_id: "deregistered"} and released.deleted_values == 0
        assert oauth_servers.main.deregistered == [prepared.client.client_id]
        assert w.registry.fetch_oauth_clients(tenant=TENANT, server="crm") == []
        assert w.store.minted.all_of(TENANT, "crm") == []
        with w.registry.transaction() as transaction:
            transaction.delete([("servers", TENANT, "crm")])


def test_client_rotation_on_secret_expiry_keeps_the_old_client_until_verified(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.secret_lifetime = 600
    record = code_server("crm", oauth_servers.protected, "confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        old = prepared.client
        assert old is not None and old.client_secret_expires_at is not None
        assert prepared.client_rotation_due is not None and "expires at" in prepared.client_rotation_due

        outcome = run(lambda http: rotate_server_client(record, context=w.context(http), previous=old))
        rotation = outcome.rotation
        assert rotation.promoted and rotation.current.client_id != old.client_id
        assert rotation.retired_result == "deregistered" and oauth_servers.main.deregistered == [old.client_id]
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="crm")
        assert stored.client_id == rotation.current.client_id
        reused = prepare(w, record)
        assert reused.client is not None and reused.client.client_id == rotation.current.client_id
        assert probe(oauth_servers.protected, member_logs_in(w, reused, oauth_servers.main.issuer).headers()).ok


def test_client_credentials_rotation_is_verified_against_the_live_server(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    record = server("dyn", oauth_servers.protected, "oauthClientCredentials", dynamicRegistration=True)
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record, client_max_age=dt.timedelta(seconds=0))
        old = first.client
        assert old is not None and first.client_rotation_due is not None

        # Verified against a server of another authorization server: the new client's token is rejected there.
        wrong = target(oauth_servers.protected_post_only, name="dyn")
        failed = run(
            lambda http: rotate_server_client(
                record,
                context=w.context(http),
                previous=old,
                verify_with=credential_verifier(wrong, settings=LOCAL, http=http),
            )
        )
        assert not failed.rotation.promoted and failed.rotation.retired_result == "deregistered"
        assert failed.probe is not None and failed.probe.error_class == "auth"
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="dyn")
        assert stored.client_id == old.client_id
        assert probe(oauth_servers.protected, dict(prepare(w, record).headers)).ok  # the old client still works

        right = target(oauth_servers.protected, name="dyn")
        done = run(
            lambda http: rotate_server_client(
                record,
                context=w.context(http),
                previous=old,
                verify_with=credential_verifier(right, settings=LOCAL, http=http),
            )
        )
        assert done.rotation.promoted and done.probe is not None and done.probe.ok
        assert oauth_servers.main.deregistered[-1] == old.client_id
        after = prepare(w, record)
        assert after.client is not None and after.client.client_id == done.rotation.current.client_id
        assert after.minted and probe(oauth_servers.protected, dict(after.headers)).ok
        assert client_rotation_due(after.client, now=dt.datetime.now(dt.UTC)) is None


def test_per_member_connected_count(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = code_server("crm", oauth_servers.protected, "public")
    with world(registry_url) as w:
        w.add_servers(record)
        with w.registry.transaction() as transaction:
            for user in ("alice", "bob"):
                transaction.insert_user_token(
                    UserTokenRecord(tenant=TENANT, server="crm", user_id=user, secret_ref=f"{NAMESPACE}/{user}#token")
                )
        assert connected_members(w.registry, TENANT, "crm") == 2
        assert connected_members(w.registry, TENANT, "other") == 0
        prepared = prepare(w, record)
        assert prepared.connected_members == 2
        assert prepared.credential_status()["connectedMembers"] == 2
        assert len(w.registry.fetch_user_tokens(tenant=TENANT, server="crm")) == 2  # never touched
