"""Auth discovery against real protected servers: the 401 challenge, RFC 9728 and RFC 8414 metadata."""

from __future__ import annotations

from reconciler.api.server import DiscoveryStatus
from reconciler.demo import DEMO_SCOPE
from reconciler.probe import AuthDiscovery
from tests.fixtures.mcp_servers import LocalServers
from tests.integration.probe.support import fake_resolver, probe, target


def _origin(url: str) -> str:
    return url.split("/mcp")[0]


def test_protected_server_field_by_field(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.protected))
    issuer = mcp_servers.authorization_server
    assert result.discovery == AuthDiscovery(
        requires_auth=True,
        recommended_auth_mode="oauthAuthorizationCode",
        resource=mcp_servers.protected,
        resource_metadata_url=_origin(mcp_servers.protected) + "/.well-known/oauth-protected-resource/mcp",
        authorization_servers=(issuer,),
        auth_url=issuer + "/authorize",
        token_url=issuer + "/token",
        register_url=issuer + "/register",
        scopes_supported=(DEMO_SCOPE,),
        token_endpoint_auth_methods_supported=("client_secret_basic", "client_secret_post", "none"),
        grant_types_supported=("authorization_code", "client_credentials", "refresh_token"),
    )


def test_discovery_status_matches_the_api_model(mcp_servers: LocalServers) -> None:
    discovery = probe(target(mcp_servers.protected)).discovery
    assert discovery is not None
    status = discovery.as_status()
    parsed = DiscoveryStatus.model_validate(status)
    assert parsed.model_dump(by_alias=True, exclude={"filled_fields", "discovered_at"}) == status


def test_discovery_runs_unauthenticated_even_when_credentials_work(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.protected, headers={"Authorization": f"Bearer {mcp_servers.bearer_token}"}))
    assert result.ok, result.message
    assert result.discovery is not None and result.discovery.requires_auth
    assert result.discovery.token_url == mcp_servers.authorization_server + "/token"
    assert result.tools is not None and {tool.name for tool in result.tools} == {"whoami", "fortune"}


def test_open_server_needs_no_auth(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.tools))
    assert result.discovery == AuthDiscovery(requires_auth=False, recommended_auth_mode="none")


def test_open_server_with_headers_uses_a_separate_discovery_request(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.tools, headers={"X-Tenant": "acme"}))
    assert result.ok
    assert result.discovery is not None and result.discovery.recommended_auth_mode == "none"


def test_client_credentials_only_authorization_server(mcp_servers: LocalServers) -> None:
    discovery = probe(target(mcp_servers.client_credentials_only)).discovery
    assert discovery is not None
    assert discovery.recommended_auth_mode == "oauthClientCredentials"
    assert discovery.grant_types_supported == ("client_credentials",)
    assert discovery.token_endpoint_auth_methods_supported == ("client_secret_post",)


def test_401_without_metadata_recommends_bearer(mcp_servers: LocalServers) -> None:
    discovery = probe(target(mcp_servers.bearer_without_metadata)).discovery
    assert discovery == AuthDiscovery(requires_auth=True, recommended_auth_mode="bearer")


def test_issuer_mismatch_is_an_auth_error(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.issuer_mismatch))
    assert result.error_class == "auth"
    assert "names issuer 'https://issuer.example'" in result.message
    assert "exact match" in result.message


def test_issuer_mismatch_fails_even_with_valid_credentials(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.issuer_mismatch, headers={"Authorization": f"Bearer {mcp_servers.bearer_token}"}))
    assert result.error_class == "auth"
    assert "issuer" in result.message


def test_websocket_server_discovery(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.websocket_protected, transport="websocket"))
    assert result.discovery == AuthDiscovery(requires_auth=True, recommended_auth_mode="bearer")


def test_metadata_url_pointing_at_cloud_metadata_is_blocked(mcp_servers: LocalServers) -> None:
    resolver = fake_resolver({"metadata.test": ["169.254.169.254"]})
    result = probe(target(mcp_servers.metadata_elsewhere), resolver=resolver)
    assert result.error_class == "blocked"
    assert "metadata.test resolves to 169.254.169.254" in result.message


def test_discovery_only_probe_skips_listing(mcp_servers: LocalServers) -> None:
    result = probe(target(mcp_servers.protected, list_tools=False))
    assert result.ok
    assert result.tools is None and result.snapshot_hash is None
    assert result.discovery is not None and result.discovery.requires_auth
