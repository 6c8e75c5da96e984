"""oauthClientCredentials end to end: a real authorization server mints, a real MCP server checks the token's
resource (or audience), scope and expiry; the reconciler caches the token encrypted, renews it before expiry and
reports `invalid_client` clearly."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from reconciler.credentials import (
    IncompleteAuthSpec,
    InvalidClient,
    OAuthRejected,
    PreparedCredentials,
    SecretNotFound,
)
from reconciler.engine.authorizing import (
    prepare_server_credentials,
)
from reconciler.registry.records import ServerRecord
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.credentials.support import NAMESPACE, World, probe, run, server, world

CLIENT_ID, CLIENT_SECRET = "crm-reconciler", "cc-Secret-Value-4e1f"
SECRETS = {(NAMESPACE, "crm-oauth"): {"clientSecret": CLIENT_SECRET, "clientId": CLIENT_ID}}


def cc_server(name: str, url: str, **auth: object) -> ServerRecord:
    auth.setdefault("clientId", CLIENT_ID)
    auth.setdefault("clientSecretRef", f"{NAMESPACE}/crm-oauth#clientSecret")
    return server(
        name, url, "oauthClientCredentials", **{key: value for key, value in auth.items() if value is not None}
    )


def prepare(
    w: World, record: ServerRecord, *, now: dt.datetime | None = None, **settings: object
) -> PreparedCredentials:
    return run(lambda http: prepare_server_credentials(record, context=w.context(http, **settings), now=now))


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_token_from_discovery_reaches_the_protected_server(
    registry_url: str, oauth_servers: OAuthServers, method: str
) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET, method=method)
    record = cc_server("crm", oauth_servers.protected, tokenEndpointAuthMethod=method)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        prepared = prepare(w, record)

        assert prepared.list_tools is True and prepared.minted
        assert prepared.token_reference == "local:acme/crm#oauth-access-token"
        assert prepared.fingerprint and prepared.fingerprint.startswith("hmac-sha256:")
        result = probe(oauth_servers.protected, dict(prepared.headers))
        assert result.ok, result.message
        assert result.tools is not None and {tool.name for tool in result.tools} == {"whoami", "fortune"}
        # The server would refuse a token without the RFC 8707 resource: discovery supplied it.
        assert oauth_servers.main.grant_counts["client_credentials"] == 1
        stored = w.store.read("local:acme", "crm", "oauth-access-token")
        assert stored == prepared.headers["Authorization"].removeprefix("Bearer ")
        assert stored not in json.dumps(w.registry.dump(), default=str)


def test_spec_token_url_scopes_and_audience(registry_url: str, oauth_servers: OAuthServers) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    issuer = oauth_servers.main.issuer
    record = cc_server(
        "audience",
        oauth_servers.protected_by_audience,
        clientId=None,
        clientIdRef=f"{NAMESPACE}/crm-oauth#clientId",
        tokenUrl=f"{issuer}/token",
        scopes=["mcp:tools"],
        audience=oauth_servers.audience,
    )
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert prepared.discovery is None  # everything came from the spec: no discovery round trip
        assert probe(oauth_servers.protected_by_audience, dict(prepared.headers)).ok


def test_wrong_audience_is_refused_by_the_server(registry_url: str, oauth_servers: OAuthServers) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    record = cc_server("audience", oauth_servers.protected_by_audience, audience="urn:someone-else")
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        result = probe(oauth_servers.protected_by_audience, dict(prepared.headers))
        assert result.error_class == "auth" and "rejected the credentials" in result.message


def test_unknown_scope_is_an_oauth_error(registry_url: str, oauth_servers: OAuthServers) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    record = cc_server("crm", oauth_servers.protected, scopes=["admin:everything"])
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        with pytest.raises(OAuthRejected, match="invalid_scope") as caught:
            prepare(w, record)
        assert caught.value.error_class == "auth" and caught.value.oauth_error == "invalid_scope"


def test_cached_token_is_reused_then_renewed_at_the_configured_fraction(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    oauth_servers.main.token_lifetime = 100
    record = cc_server("crm", oauth_servers.protected)
    start = dt.datetime.now(dt.UTC)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        first = prepare(w, record, now=start)
        again = prepare(w, record, now=start + dt.timedelta(seconds=79))
        assert not again.minted and again.headers == first.headers and again.fingerprint == first.fingerprint
        assert oauth_servers.main.grant_counts["client_credentials"] == 1

        renewed = prepare(w, record, now=start + dt.timedelta(seconds=80))
        assert renewed.minted and renewed.headers != first.headers
        assert oauth_servers.main.grant_counts["client_credentials"] == 2

        early = prepare(w, record, now=start + dt.timedelta(seconds=130), refresh_at=0.5)
        assert early.minted  # 0.5 of the new token's lifetime has passed since it was minted at +80 s
        assert probe(oauth_servers.protected, dict(early.headers)).ok


def test_short_expiry_end_to_end(registry_url: str, oauth_servers: OAuthServers) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    oauth_servers.main.token_lifetime = 1.5
    record = cc_server("crm", oauth_servers.protected)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        first = prepare(w, record)
        assert first.expires_at is not None
        assert probe(oauth_servers.protected, dict(first.headers)).ok
        time.sleep(1.6)

        expired = probe(oauth_servers.protected, dict(first.headers))
        assert expired.error_class == "auth"  # the live server refuses the expired token
        second = prepare(w, record)
        assert second.minted and second.headers != first.headers
        assert probe(oauth_servers.protected, dict(second.headers)).ok


def test_a_rotated_client_secret_mints_afresh(registry_url: str, oauth_servers: OAuthServers) -> None:
    oauth_servers.main.add_client(CLIENT_ID, CLIENT_SECRET)
    record = cc_server("crm", oauth_servers.protected)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        first = prepare(w, record)
        oauth_servers.main.add_client(CLIENT_ID, "cc-Rotated-Secret-77")
        w.static.values[(NAMESPACE, "crm-oauth")] = {"clientSecret": "cc-Rotated-Secret-77"}
        second = prepare(w, record)
        assert second.minted and second.headers != first.headers


@pytest.mark.parametrize(
    ("registered_secret", "registered_method", "spec_method"),
    [
        ("cc-Other-Secret-0000", "client_secret_basic", "client_secret_basic"),  # wrong secret
        (CLIENT_SECRET, "client_secret_basic", "client_secret_post"),  # method the client may not use
    ],
)
def test_invalid_client_is_an_auth_error_without_the_secret(
    registry_url: str,
    oauth_servers: OAuthServers,
    registered_secret: str,
    registered_method: str,
    spec_method: str,
) -> None:
    oauth_servers.main.add_client(CLIENT_ID, registered_secret, method=registered_method)
    record = cc_server("crm", oauth_servers.protected, tokenEndpointAuthMethod=spec_method)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        with pytest.raises(InvalidClient) as caught:
            prepare(w, record)
    error = caught.value
    assert error.error_class == "auth" and error.oauth_error == "invalid_client"
    message = str(error)
    assert f"rejected client {CLIENT_ID!r} with {spec_method}: invalid_client" in message
    assert CLIENT_SECRET not in message and registered_secret not in message


def test_post_only_server_gets_client_secret_post_from_discovery(
    registry_url: str, oauth_servers: OAuthServers
) -> None:
    oauth_servers.post_only.add_client(CLIENT_ID, CLIENT_SECRET, method="client_secret_post")
    record = cc_server("post", oauth_servers.protected_post_only)
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        prepared = prepare(w, record)
        assert probe(oauth_servers.protected_post_only, dict(prepared.headers)).ok


def test_missing_client_secret_names_the_reference(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = cc_server("crm", oauth_servers.protected, clientSecretRef=f"{NAMESPACE}/deleted-secret#clientSecret")
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        with pytest.raises(SecretNotFound, match=r"acme/deleted-secret#clientSecret .*spec.auth.clientSecret"):
            prepare(w, record)


def test_no_token_endpoint_anywhere(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = cc_server("open", oauth_servers.echo.url)  # an open server: discovery finds no auth at all
    with world(registry_url, SECRETS) as w:
        w.add_servers(record)
        with pytest.raises(IncompleteAuthSpec, match="no token endpoint"):
            prepare(w, record)


def test_dynamically_registered_client_credentials_client(registry_url: str, oauth_servers: OAuthServers) -> None:
    record = server("dyn", oauth_servers.protected, "oauthClientCredentials", dynamicRegistration=True)
    with world(registry_url) as w:
        w.add_servers(record)
        first = prepare(w, record)
        assert first.client is not None and not first.client.reused
        assert first.client.token_endpoint_auth_method == "client_secret_basic"
        assert probe(oauth_servers.protected, dict(first.headers)).ok
        second = prepare(w, record)
        assert second.client is not None and second.client.reused
        assert second.client.client_id == first.client.client_id and not second.minted
        assert oauth_servers.main.registrations == 1
