"""Filling a spec's OAuth fields from discovery: only empty fields, only fields the type has (pure)."""

from __future__ import annotations

import pytest

from reconciler.api.server import DiscoveryStatus
from reconciler.probe import AuthDiscovery, fill_auth_fields

DISCOVERED = AuthDiscovery(
    requires_auth=True,
    recommended_auth_mode="oauthAuthorizationCode",
    resource="https://mcp.example.com/mcp",
    resource_metadata_url="https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
    authorization_servers=("https://auth.example.com",),
    auth_url="https://auth.example.com/authorize",
    token_url="https://auth.example.com/token",
    register_url="https://auth.example.com/register",
    scopes_supported=("mcp:tools", "mcp:read"),
    token_endpoint_auth_methods_supported=("client_secret_basic",),
    grant_types_supported=("authorization_code", "client_credentials"),
)


@pytest.mark.parametrize(
    ("auth", "expected_filled", "expected_names"),
    [
        ({"type": "none"}, {"type": "none"}, []),
        ({"type": "bearer", "secretKeyRef": {"name": "s", "key": "k"}}, None, []),
        (
            {"type": "oauthClientCredentials", "clientId": {"value": "c"}},
            {
                "type": "oauthClientCredentials",
                "clientId": {"value": "c"},
                "tokenUrl": "https://auth.example.com/token",
                "scopes": ["mcp:tools", "mcp:read"],
                "resource": "https://mcp.example.com/mcp",
            },
            ["tokenUrl", "scopes", "resource"],
        ),
        (
            {"type": "oauthAuthorizationCode", "pkce": "public", "scopes": [], "tokenUrl": None},
            {
                "type": "oauthAuthorizationCode",
                "pkce": "public",
                "authUrl": "https://auth.example.com/authorize",
                "tokenUrl": "https://auth.example.com/token",
                "registerUrl": "https://auth.example.com/register",
                "scopes": ["mcp:tools", "mcp:read"],
                "resource": "https://mcp.example.com/mcp",
            },
            ["authUrl", "tokenUrl", "registerUrl", "scopes", "resource"],
        ),
        (
            {
                "type": "oauthAuthorizationCode",
                "pkce": "confidential",
                "tokenUrl": "https://other.example.com/token",
                "scopes": ["custom"],
            },
            {
                "type": "oauthAuthorizationCode",
                "pkce": "confidential",
                "authUrl": "https://auth.example.com/authorize",
                "tokenUrl": "https://other.example.com/token",
                "registerUrl": "https://auth.example.com/register",
                "scopes": ["custom"],
                "resource": "https://mcp.example.com/mcp",
            },
            ["authUrl", "registerUrl", "resource"],
        ),
    ],
)
def test_fill_auth_fields(
    auth: dict[str, object], expected_filled: dict[str, object] | None, expected_names: list[str]
) -> None:
    filled, names = fill_auth_fields(auth, DISCOVERED)
    assert filled == (expected_filled if expected_filled is not None else auth)
    assert names == expected_names
    assert filled is not auth, "the input is never modified"


def test_nothing_discovered_fills_nothing() -> None:
    nothing = AuthDiscovery(requires_auth=True, recommended_auth_mode="bearer")
    auth = {"type": "oauthClientCredentials", "dynamicRegistration": True}
    assert fill_auth_fields(auth, nothing) == (auth, [])


def test_as_status_is_camel_case_and_valid() -> None:
    status = DISCOVERED.as_status()
    assert status["recommendedAuthMode"] == "oauthAuthorizationCode"
    assert status["tokenEndpointAuthMethodsSupported"] == ["client_secret_basic"]
    model = DiscoveryStatus.model_validate(status)
    assert model.token_url == "https://auth.example.com/token"
    assert model.authorization_servers == ["https://auth.example.com"]
