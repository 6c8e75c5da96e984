"""The header auth modes end to end against a server that echoes what it received: none, bearer with any scheme,
an API key in a named header, static secret headers, and connection headers merged in.

Precedence (`reconciler.credentials.headers`), later wins by case-insensitive name:
    1. the server's static headers (literal or from a Secret key)
    2. the connection's headers (the discovery connection, or the one a runtime resolved)
    3. the credential header: `Authorization: <scheme> <token>` (bearer, connection token) or `<headerName>: <key>`
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.credentials import (
    ResolvedHeaders,
    add_connection_credential,
    add_server_credential,
    add_stored_headers,
)
from reconciler.registry.records import HeaderRecord
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.credentials.support import NAMESPACE, StaticSecrets, probe

SECRETS = StaticSecrets(
    {
        (NAMESPACE, "crm"): {"token": "tok-Header-Mode-51c2", "key": "key-Header-Mode-83d0", "org": "org-7"},
        (NAMESPACE, "conn"): {"token": "conn-Token-22aa"},
    }
)


def resolve(
    *,
    server_headers: tuple[HeaderRecord, ...] = (),
    auth_type: str = "none",
    auth: dict[str, Any] | None = None,
    connection_headers: tuple[HeaderRecord, ...] = (),
    connection: tuple[str, str] | None = None,
) -> dict[str, str]:
    resolved = ResolvedHeaders()
    add_stored_headers(resolved, server_headers, SECRETS)
    add_server_credential(resolved, auth_type, auth or {}, SECRETS)
    add_stored_headers(resolved, connection_headers, SECRETS)
    if connection is not None:
        add_connection_credential(resolved, connection[0], connection[1], SECRETS)
    assert resolved.missing == []
    return resolved.headers


def test_none_reaches_an_open_server(oauth_servers: OAuthServers) -> None:
    result = probe(oauth_servers.echo.url, resolve())
    assert result.ok and result.discovery is not None and not result.discovery.requires_auth
    assert "authorization" not in oauth_servers.echo.received[-1]


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "Api-Key-V2"])
def test_bearer_with_any_scheme(oauth_servers: OAuthServers, scheme: str) -> None:
    oauth_servers.echo.required = {"Authorization": f"{scheme} tok-Header-Mode-51c2"}
    headers = resolve(auth_type="bearer", auth={"secretRef": f"{NAMESPACE}/crm#token", "scheme": scheme})
    result = probe(oauth_servers.echo.url, headers)
    assert result.ok, result.message
    assert oauth_servers.echo.last_authenticated()["authorization"] == f"{scheme} tok-Header-Mode-51c2"


def test_wrong_scheme_is_an_auth_failure(oauth_servers: OAuthServers) -> None:
    oauth_servers.echo.required = {"Authorization": "Token tok-Header-Mode-51c2"}
    headers = resolve(auth_type="bearer", auth={"secretRef": f"{NAMESPACE}/crm#token"})  # Bearer by default
    result = probe(oauth_servers.echo.url, headers)
    assert result.error_class == "auth" and "tok-Header-Mode-51c2" not in result.message


def test_api_key_in_a_named_header(oauth_servers: OAuthServers) -> None:
    oauth_servers.echo.required = {"X-Tenant-Key": "key-Header-Mode-83d0"}
    headers = resolve(auth_type="apiKey", auth={"secretRef": f"{NAMESPACE}/crm#key", "headerName": "X-Tenant-Key"})
    assert probe(oauth_servers.echo.url, headers).ok
    assert "authorization" not in oauth_servers.echo.last_authenticated()


def test_static_secret_headers_and_connection_headers_merge_by_precedence(oauth_servers: OAuthServers) -> None:
    oauth_servers.echo.required = {"Authorization": "Token conn-Token-22aa", "X-Org": "org-7"}
    headers = resolve(
        server_headers=(
            HeaderRecord(name="X-Org", secret_ref=f"{NAMESPACE}/crm#org"),
            HeaderRecord(name="X-Region", value="eu"),
            HeaderRecord(name="X-Trace", value="server"),
        ),
        auth_type="bearer",
        auth={"secretRef": f"{NAMESPACE}/crm#token"},
        connection_headers=(HeaderRecord(name="x-trace", value="connection"),),
        connection=(f"{NAMESPACE}/conn#token", "Token"),
    )
    assert probe(oauth_servers.echo.url, headers).ok
    seen = oauth_servers.echo.last_authenticated()
    assert seen["authorization"] == "Token conn-Token-22aa"  # the connection's credential wins over the server's
    assert seen["x-org"] == "org-7" and seen["x-region"] == "eu"
    assert seen["x-trace"] == "connection"  # connection headers win over server headers
