"""The authorization-server adapter (`reconciler.probe.ProbeAuthServer`) against the real fixture authorization
server: the requests the credentials package decides (registration, token, RFC 7592 read and delete) come back as
answers, HTTP errors included; auth discovery finds the endpoints; what cannot be sent (the SSRF guard, a closed
port) comes back as a classified failure, never an exception; and the port's answers are what the credentials
side reads (`read_issued_client`, `origin`, `endpoint` without the query)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from reconciler.credentials import ClientRegistration, RegisteredClient, TokenClient
from reconciler.credentials.authserver import AuthServerRequest
from reconciler.credentials.registration import management_request, registration_request
from reconciler.credentials.tokens import client_credentials_grant, token_request
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeSettings
from reconciler.records import AuthDiscovery, AuthServerAnswer, AuthServerFailure, IssuedClient
from tests.fixtures.authorization_server import SCOPE, OAuthServers
from tests.integration.credentials.support import LOCAL, run


async def send(
    port: ProbeAuthServer, request: AuthServerRequest | None, *, allow_private: bool = True
) -> AuthServerAnswer | AuthServerFailure:
    """The request as `AuthServerAccess.perform` hands it to the port."""
    assert request is not None
    return await port.send(
        request.method,
        request.url,
        purpose=request.purpose,
        allow_private=allow_private,
        form=request.form,
        json_body=request.json_body,
        headers=request.headers or None,
    )


def registration_of(issuer: str) -> ClientRegistration:
    return ClientRegistration(
        tenant="acme",
        server="crm",
        issuer=issuer,
        registration_url=f"{issuer}/register",
        confidential=True,
        grant_types=("client_credentials",),
        scopes=(SCOPE,),
    )


def test_a_client_registered_through_the_port_mints_a_token_and_is_read_back_and_deleted(
    oauth_servers: OAuthServers,
) -> None:
    main = oauth_servers.main

    async def flow(http: ProbeHttp) -> tuple[object, ...]:
        port = ProbeAuthServer(http, LOCAL)
        registered = await send(port, registration_request(registration_of(main.issuer)))
        assert isinstance(registered, AuthServerAnswer)
        issued = port.read_issued_client(registered.document)
        assert isinstance(issued, IssuedClient) and issued.client_secret is not None
        client = TokenClient(f"{main.issuer}/token", issued.client_id, issued.client_secret, "client_secret_basic")
        token = await send(port, token_request(client, client_credentials_grant(scopes=(SCOPE,))))
        registered_client = RegisteredClient(
            issuer=main.issuer,
            client_id=issued.client_id,
            token_endpoint_auth_method="client_secret_basic",
            client_secret=issued.client_secret,
            registration_client_uri=str((registered.document or {})["registration_client_uri"]),
            registration_access_token=str((registered.document or {})["registration_access_token"]),
        )
        read = await send(port, management_request(registered_client, "GET"))
        deleted = await send(port, management_request(registered_client, "DELETE"))
        return registered, issued, token, read, deleted

    registered, issued, token, read, deleted = run(flow)
    assert isinstance(registered, AuthServerAnswer) and registered.status == 201 and registered.ok
    assert registered.endpoint == f"{main.issuer}/register"
    assert isinstance(issued, IssuedClient) and issued.token_endpoint_auth_method == "client_secret_basic"
    assert isinstance(token, AuthServerAnswer) and token.ok
    assert (token.document or {}).get("token_type") == "Bearer" and (token.document or {}).get("access_token")
    assert isinstance(read, AuthServerAnswer) and (read.document or {}).get("client_id") == issued.client_id
    assert isinstance(deleted, AuthServerAnswer) and deleted.ok
    assert main.deregistered == [issued.client_id] and main.grant_counts["client_credentials"] == 1


def test_an_oauth_error_is_an_answer_and_the_endpoint_shows_no_query(oauth_servers: OAuthServers) -> None:
    main = oauth_servers.main
    client = TokenClient(f"{main.issuer}/token?tenant=acme", "nobody", "wrong-Secret-1", "client_secret_post")

    async def ask(http: ProbeHttp) -> object:
        return await send(ProbeAuthServer(http, LOCAL), token_request(client, client_credentials_grant()))

    answer = run(ask)
    assert isinstance(answer, AuthServerAnswer) and not answer.ok and answer.status in (400, 401)
    assert (answer.document or {}).get("error") == "invalid_client"
    assert answer.endpoint == f"{main.issuer}/token"


def test_discovery_through_the_port_finds_the_authorization_server(oauth_servers: OAuthServers) -> None:
    async def discover(http: ProbeHttp) -> object:
        return await ProbeAuthServer(http, LOCAL).discover(
            server_url=oauth_servers.protected, transport="streamable-http", allow_private=True
        )

    found = run(discover)
    assert isinstance(found, AuthDiscovery) and found.requires_auth
    issuer = oauth_servers.main.issuer
    assert found.token_url == f"{issuer}/token" and found.register_url == f"{issuer}/register"
    assert SCOPE in found.scopes_supported


def test_what_cannot_be_sent_is_a_classified_failure(oauth_servers: OAuthServers) -> None:
    issuer = oauth_servers.main.issuer
    guarded = ProbeSettings(allow_private_networks=False, connect_timeout=2, request_timeout=5, total_timeout=10)
    client = TokenClient(f"{issuer}/token", "rc", "s", "client_secret_post")
    closed = dataclasses.replace(client, token_url="http://127.0.0.1:9/token")
    not_http = dataclasses.replace(client, token_url="ftp://127.0.0.1/token")

    async def attempts(http: ProbeHttp) -> list[object]:
        port, strict = ProbeAuthServer(http, LOCAL), ProbeAuthServer(http, guarded)
        return [
            await send(port, token_request(closed, client_credentials_grant())),
            await send(port, token_request(not_http, client_credentials_grant())),
            await send(strict, token_request(client, client_credentials_grant())),
            await send(port, token_request(client, client_credentials_grant()), allow_private=False),
            await port.discover(server_url="http://127.0.0.1:9/mcp", transport="streamable-http", allow_private=True),
        ]

    refused, scheme, private_everywhere, private_here, undiscovered = run(attempts)
    assert isinstance(refused, AuthServerFailure) and refused.error_class == "transport"
    assert refused.endpoint == "http://127.0.0.1:9/token"
    assert isinstance(scheme, AuthServerFailure) and scheme.error_class == "blocked"
    assert "only http and https" in scheme.message
    for blocked in (private_everywhere, private_here):
        assert isinstance(blocked, AuthServerFailure) and blocked.error_class == "blocked"
    assert isinstance(undiscovered, AuthServerFailure) and undiscovered.error_class == "transport"
    assert oauth_servers.main.grant_counts["client_credentials"] == 0


def test_the_origin_of_a_registration_endpoint_is_its_scheme_host_and_port() -> None:
    port = ProbeAuthServer(ProbeHttp(), LOCAL)
    assert port.origin("http://127.0.0.1:8123/register?x=1") == "http://127.0.0.1:8123"
    assert port.origin("https://As.Example/oauth/register") == "https://as.example"
    assert port.read_issued_client({"client_secret": "no id"}) is None
    assert urlsplit(port.origin("https://as.example:8443/r")).port == 8443
