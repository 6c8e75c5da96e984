"""How the reconciler identifies itself, against the real authorization server fixture: CIMD where the server
advertises it and a public URL is set (no registration; the server fetches the published document, and a member
logs in with it), DCR with the public redirect URI otherwise, the preset clientId first; and issuer binding
(SEP-2352): when the resource moves to another authorization server the old client is forgotten and never
presented to the new one. SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from reconciler.credentials import (
    AuthServerChanged,
    CredentialContext,
    CredentialSettings,
    MintedToken,
    PreparedCredentials,
    TokenClient,
    fill_authorization_url,
    new_pkce,
)
from reconciler.credentials.identity import DEFAULT_REDIRECT_URI, metadata_document_url, redirect_uri
from reconciler.engine.authorizing import (
    prepare_server_credentials,
)
from reconciler.engine.minting import exchange_authorization_code
from reconciler.probe import ProbeAuthServer, ProbeHttp
from reconciler.records import AuthDiscovery
from reconciler.registry.records import ServerRecord
from tests.fixtures.authorization_server import AuthorizationServer, OAuthServers
from tests.integration.credentials.support import LOCAL, TENANT, World, probe, run, server, world


def code_server(url: str, **auth: object) -> ServerRecord:
    return server("crm", url, "oauthAuthorizationCode", **{"pkce": "public", **auth})


def context(w: World, http: ProbeHttp, public_url: str | None) -> CredentialContext:
    return CredentialContext(
        stores=w.stores,
        secrets=w.store,
        authserver=ProbeAuthServer(http, LOCAL),
        fingerprint_key=w.registry.fingerprint_key(),
        settings=CredentialSettings.for_public_url(public_url),
    )


def prepare(w: World, record: ServerRecord, public_url: str | None) -> PreparedCredentials:
    return run(lambda http: prepare_server_credentials(record, context=context(w, http, public_url)))


def member_logs_in(
    w: World, prepared: PreparedCredentials, authorization_server: AuthorizationServer, callback: str
) -> MintedToken:
    """The runtime's half: open the authorization URL, take the code at the callback, exchange it (PKCE)."""
    assert prepared.authorization_url_template is not None and prepared.client is not None
    verifier, challenge = new_pkce()
    state = secrets.token_urlsafe(8)
    url = fill_authorization_url(
        prepared.authorization_url_template, redirect_uri=callback, state=state, code_challenge=challenge
    )
    answer = httpx2.get(url, follow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(callback + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["iss"] == [authorization_server.issuer]
    client = prepared.client
    token_client = TokenClient(
        token_url=f"{authorization_server.issuer}/token", client_id=client.client_id, client_secret=None, method="none"
    )
    return run(
        lambda http: exchange_authorization_code(
            client=token_client,
            code=query["code"][0],
            code_verifier=verifier,
            redirect_uri=callback,
            access=context(w, http, None).access(allow_private=True),
            fingerprint_key=w.registry.fingerprint_key(),
        )
    )


def test_cimd_where_advertised_and_a_public_url_is_set(registry_url: str, oauth_servers: OAuthServers) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    public_url = oauth_servers.client_metadata.public_url
    record = code_server(oauth_servers.movable.url)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, public_url)

        assert prepared.identity == "cimd" and prepared.client is not None
        assert prepared.client.client_id == metadata_document_url(public_url)
        assert cimd.registrations == 0, "CIMD registers nothing"
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="crm")
        assert (stored.issuer, stored.client_id) == (cimd.issuer, metadata_document_url(public_url))
        assert stored.client_secret_ref is None and stored.registration_access_token_ref is None
        status = prepared.credential_status()
        assert status["clientIdentity"] == "cimd" and status["issuer"] == cimd.issuer
        assert "previousIssuer" not in status

        # The authorization server fetches the published document and holds the member to its redirect URI.
        token = member_logs_in(w, prepared, cimd, redirect_uri(public_url))
        assert cimd.metadata_fetches and set(cimd.metadata_fetches) == {metadata_document_url(public_url)}
        assert probe(oauth_servers.movable.url, token.headers()).ok

        again = prepare(w, record, public_url)
        assert again.identity == "cimd" and again.client is not None and again.client.reused
        assert cimd.registrations == 0


def test_the_authorization_server_refuses_a_redirect_uri_the_document_does_not_list(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    public_url = oauth_servers.client_metadata.public_url
    record = code_server(oauth_servers.movable.url)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, public_url)
        assert prepared.authorization_url_template is not None
        url = fill_authorization_url(
            prepared.authorization_url_template,
            redirect_uri="http://127.0.0.1:9/elsewhere",
            state="s",
            code_challenge="c" * 43,
        )
        answer = httpx2.get(url, follow_redirects=False, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
        assert cimd.metadata_fetches == [metadata_document_url(public_url)]


def test_dcr_with_the_public_redirect_uri_where_cimd_is_not_advertised(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    public_url = oauth_servers.client_metadata.public_url
    record = code_server(oauth_servers.protected)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, public_url)

        assert prepared.identity == "dynamic" and prepared.client is not None
        registered = oauth_servers.main.clients[prepared.client.client_id]
        assert registered.redirect_uris == [f"{public_url}/oauth/callback", DEFAULT_REDIRECT_URI]
        assert prepared.credential_status()["clientIdentity"] == "dynamic"
        token = member_logs_in(w, prepared, oauth_servers.main, redirect_uri(public_url))
        assert probe(oauth_servers.protected, token.headers()).ok


def test_without_a_public_url_cimd_is_not_used_and_the_loopback_callback_stays(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    record = code_server(oauth_servers.movable.url)
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, None)
        assert prepared.identity == "dynamic" and prepared.client is not None
        assert cimd.registrations == 1
        assert cimd.clients[prepared.client.client_id].redirect_uris == [DEFAULT_REDIRECT_URI]


def test_a_confidential_client_keeps_dcr_where_cimd_is_advertised(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    record = code_server(oauth_servers.movable.url, pkce="confidential")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, oauth_servers.client_metadata.public_url)
        assert prepared.identity == "dynamic" and prepared.client is not None
        assert prepared.client.client_secret is not None and cimd.registrations == 1


def test_a_preset_client_id_comes_first(registry_url: str, oauth_servers: OAuthServers) -> None:
    cimd = oauth_servers.movable.move_to("cimd")
    record = code_server(oauth_servers.movable.url, clientId="preset-client")
    with world(registry_url) as w:
        w.add_servers(record)
        prepared = prepare(w, record, oauth_servers.client_metadata.public_url)
        assert prepared.identity == "preregistered" and prepared.client is None
        assert "client_id=preset-client" in (prepared.authorization_url_template or "")
        assert cimd.registrations == 0 and w.registry.fetch_oauth_clients(tenant=TENANT, server="crm") == []


def test_a_new_issuer_gets_a_new_client_and_never_the_old_one(registry_url: str, oauth_servers: OAuthServers) -> None:
    movable, main, second = oauth_servers.movable, oauth_servers.main, oauth_servers.second
    public_url = oauth_servers.client_metadata.public_url
    record = code_server(movable.url)
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record, public_url)
        assert first.client is not None and first.client.issuer == main.issuer
        old_id = first.client.client_id

        movable.move_to("second")
        # The stored discovery still names the old issuer: the step asks the resource again before using a client.
        moved = run(
            lambda http: prepare_server_credentials(
                record, context=context(w, http, public_url), discovery=stored_discovery(main)
            )
        )
        assert moved.client is not None and moved.client.client_id != old_id
        assert moved.client.issuer == second.issuer and moved.client.replaced_issuer == main.issuer
        status = moved.credential_status()
        assert (status["issuer"], status["previousIssuer"]) == (second.issuer, main.issuer)
        assert old_id in main.deregistered, "the old client is deregistered at the old issuer"
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="crm")
        assert (stored.issuer, stored.client_id) == (second.issuer, moved.client.client_id)

        token = member_logs_in(w, moved, second, redirect_uri(public_url))
        assert probe(movable.url, token.headers()).ok
        assert old_id not in second.seen_client_ids and old_id not in second.clients

        settled = prepare(w, record, public_url)
        assert settled.client is not None and settled.client.reused and settled.client.replaced_issuer is None


def test_moving_to_a_cimd_issuer_forgets_the_registered_client(registry_url: str, oauth_servers: OAuthServers) -> None:
    movable, main = oauth_servers.movable, oauth_servers.main
    public_url = oauth_servers.client_metadata.public_url
    record = code_server(movable.url)
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record, public_url)
        assert first.identity == "dynamic" and first.client is not None
        cimd = movable.move_to("cimd")
        moved = prepare(w, record, public_url)
        assert moved.identity == "cimd" and moved.client is not None
        assert moved.client.replaced_issuer == main.issuer and first.client.client_id in main.deregistered
        (stored,) = w.registry.fetch_oauth_clients(tenant=TENANT, server="crm")
        assert stored.issuer == cimd.issuer and stored.client_id == metadata_document_url(public_url)


def test_a_preset_client_is_not_sent_to_a_new_issuer(registry_url: str, oauth_servers: OAuthServers) -> None:
    movable, main, second = oauth_servers.movable, oauth_servers.main, oauth_servers.second
    record = code_server(movable.url, clientId="preset-client")
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record, None)
        assert first.identity == "preregistered"
        assert (first.authorization_url_template or "").startswith(f"{main.issuer}/authorize?")

        movable.move_to("second")
        with pytest.raises(AuthServerChanged) as refused:
            run(
                lambda http: prepare_server_credentials(
                    record, context=context(w, http, None), discovery=stored_discovery(main)
                )
            )
        message = str(refused.value)
        assert main.issuer in message and second.issuer in message and "preset-client" not in message
        assert "preset-client" not in second.seen_client_ids

        # The spec names a client of the new issuer: bound afresh, and used.
        renamed = code_server(movable.url, clientId="preset-client-at-second")
        moved = prepare(w, renamed, None)
        assert (moved.authorization_url_template or "").startswith(f"{second.issuer}/authorize?")


def stored_discovery(authorization_server: AuthorizationServer) -> AuthDiscovery:
    """A discovery as an earlier probe stored it: naming `authorization_server`."""
    issuer = authorization_server.issuer
    return AuthDiscovery(
        requires_auth=True,
        recommended_auth_mode="oauthAuthorizationCode",
        authorization_servers=(issuer,),
        auth_url=f"{issuer}/authorize",
        token_url=f"{issuer}/token",
        register_url=f"{issuer}/register",
        token_endpoint_auth_methods_supported=("client_secret_basic", "client_secret_post", "none"),
    )
