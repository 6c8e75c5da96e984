"""The pure parts of Test Connection before save: which probe a not-yet-applied server gets, and how what discovery
found is shown. Tokens are never sent before save, so tools are listed only for a server configured without any
credential."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from reconciler import presenting
from reconciler.api import MCPServer
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import Tenant
from reconciler.engine.server_testing import discovery_target
from reconciler.presenting import discovery_text
from reconciler.probe import AuthDiscovery, ProbeResult
from reconciler.registry.records import HeaderRecord, ServerRecord

TENANT = Tenant(namespace="acme", slug="acme")
URL = "https://crm.example.com/mcp"


def server(**record: Any) -> DesiredObject:
    resource = MCPServer.model_validate({"metadata": {"name": "crm", "namespace": "acme"}, "spec": {"url": URL}})
    return DesiredObject(resource, TENANT, ServerRecord(tenant="acme", name="crm", url=URL, **record))


@pytest.mark.parametrize(
    ("record", "lists_tools"),
    [
        ({"auth_type": "none"}, True),
        ({"auth_type": "bearer", "auth": {"secretRef": "acme/t#token"}}, False),
        ({"auth_type": "oauthClientCredentials"}, False),
        ({"auth_type": "none", "headers": (HeaderRecord("X-Api-Key", secret_ref="acme/k#key"),)}, False),
        ({"auth_type": "none", "discovery_connection": "crm-platform"}, False),
    ],
    ids=["open", "bearer", "oauth", "secret-header", "discovery-connection"],
)
def test_before_save_nothing_secret_is_sent_and_only_open_servers_are_listed(
    record: dict[str, Any], lists_tools: bool
) -> None:
    target = discovery_target(server(**record))
    assert target.headers == {} and target.discover_auth is True and target.list_tools is lists_tools
    assert (target.tenant, target.server, target.url) == ("acme", "crm", URL)


DISCOVERED = AuthDiscovery(
    requires_auth=True,
    recommended_auth_mode="oauthClientCredentials",
    resource=URL,
    authorization_servers=("https://auth.example.com",),
    token_url="https://auth.example.com/token",
    scopes_supported=("crm:read", "crm:write"),
    token_endpoint_auth_methods_supported=("private_key_jwt",),
    grant_types_supported=("client_credentials",),
    client_id_metadata_document_supported=True,
)


def test_discovery_is_shown_one_fact_a_line() -> None:
    assert discovery_text(DISCOVERED).splitlines() == [
        "requires auth: yes",
        "recommended auth mode: oauthClientCredentials",
        "authorization URL: -",
        "token URL: https://auth.example.com/token",
        "registration URL: -",
        f"resource: {URL}",
        "scopes: crm:read, crm:write",
        "token endpoint auth methods: private_key_jwt",
        "client ID metadata documents (CIMD): supported",
    ]
    open_server = AuthDiscovery(requires_auth=False, recommended_auth_mode="none")
    assert discovery_text(open_server) == "requires auth: no\nrecommended auth mode: none"
    assert discovery_text(None) == "discovery: no answer to learn from"


def test_the_json_document_says_it_was_not_applied() -> None:
    result = ProbeResult(
        ok=True, error_class=None, message="auth discovery done", hint=None, latency_ms=7, at=dt.datetime.now(dt.UTC)
    )
    unsaved = presenting.test_json(dataclasses.replace(result, discovery=DISCOVERED), applied=False)
    assert unsaved["applied"] is False and unsaved["recorded"] is False
    assert unsaved["discovery"]["clientIdMetadataDocumentSupported"] is True
    assert unsaved["discovery"]["tokenEndpointAuthMethodsSupported"] == ["private_key_jwt"]
    assert "applied" not in presenting.test_json(result) and presenting.test_json(result)["discovery"] is None
