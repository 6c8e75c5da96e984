"""Whole manifests against the generated openAPIV3Schema with jsonschema: real ones pass, broken ones fail.

Every valid manifest also passes the models and the CEL rules, and every invalid one fails the models too,
so the schema is neither stricter nor looser than what the CLI accepts.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.api.kinds import kind_for
from tests.unit.api.admission import evaluate_cel, open_api_errors, open_api_schema
from tests.unit.api.cases import CLIENT_ID, CLIENT_SECRET, HASH, TOKEN


def manifest(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "acme", "labels": {"team": "platform"}},
        "spec": spec,
    }
    if status is not None:
        document["status"] = status
    return document


READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Reconciled",
    "message": "",
    "observedGeneration": 3,
    "lastTransitionTime": "2025-11-02T10:00:00Z",
}
SYNCED = {**READY, "type": "Synced", "reason": "RegistryUpToDate"}

FULL_SERVER = manifest(
    "MCPServer",
    "crm",
    {
        "displayName": "Twenty CRM",
        "description": "Contacts and deals",
        "url": "https://{{ tenant.slug }}.crm.example.com/mcp",
        "transport": "streamable-http",
        "enabled": True,
        "featured": False,
        "headers": [
            {"name": "x-workspace-slug", "value": "{{ tenant.slug }}"},
            {"name": "x-signing-key", "valueFrom": {"secretKeyRef": TOKEN}},
        ],
        "auth": {"type": "apiKey", "secretKeyRef": TOKEN, "headerName": "X-API-Key"},
        "owner": {"kind": "App", "name": "twenty"},
        "discovery": {"enabled": True, "interval": "30m", "connectionRef": "crm-shared"},
        "tools": {"policy": "Pin", "approvedHash": HASH, "allow": ["contacts.*"], "deny": ["*.delete"]},
        "network": {"allowPrivate": False},
        "deletionPolicy": "Orphan",
        "managementPolicy": "Full",
    },
    {
        "observedGeneration": 3,
        "conditions": [READY, SYNCED],
        "registryId": "srv_01",
        "lastSyncTime": "2025-11-02T10:00:00Z",
        "discovery": {
            "requiresAuth": True,
            "recommendedAuthMode": "apiKey",
            "authorizationServers": ["https://auth.example.com"],
            "scopesSupported": ["tools:read"],
            "filledFields": [],
            "discoveredAt": "2025-11-02T10:00:00Z",
        },
        "tools": {
            "count": 12,
            "exposed": 10,
            "hash": HASH,
            "names": ["contacts.list", "contacts.get"],
            "snapshotAt": "2025-11-02T10:00:00Z",
            "serverInfo": {"name": "twenty", "version": "1.4.0"},
            "protocolVersion": "2025-06-18",
            "capabilities": ["tools"],
            "changes": {"added": ["contacts.get"], "removed": [], "changed": []},
        },
        "lastTest": {"ok": False, "errorClass": "auth", "message": "401 from server", "latencyMs": 41},
        "credentials": {"secretRef": "acme/crm-token#token", "fingerprint": "hmac-sha256:1f2e", "revision": 2},
    },
)

CONNECTION = manifest(
    "MCPConnection",
    "crm-ana",
    {
        "serverRef": "crm",
        "scope": "user",
        "subject": "ana@example.com",
        "auth": {"secretKeyRef": TOKEN, "authorizationScheme": "Token"},
        "headers": [{"name": "x-user", "value": "ana"}],
        "active": True,
    },
    {"conditions": [READY], "fingerprint": "hmac-sha256:99aa"},
)
GRANT = manifest(
    "MCPAccessGrant",
    "crm-sales",
    {
        "target": {"serverRef": "crm"},
        "subjects": [{"kind": "Team", "name": "sales"}, {"kind": "Member", "name": "ana@example.com"}],
    },
    {"conditions": [READY, SYNCED], "registryId": "grant_7"},
)
BINDING = manifest(
    "MCPTemplateBinding",
    "support",
    {
        "template": "support-agent",
        "servers": [{"serverRef": "crm", "connectionRef": "crm-shared", "tools": {"allow": ["contacts.*"]}}],
    },
)

VALID_MANIFESTS = [
    pytest.param(FULL_SERVER, id="server, apiKey, full status"),
    pytest.param(
        manifest("MCPServer", "plain", {"url": "http://tools.example.com/sse", "transport": "sse"}), id="none"
    ),
    pytest.param(
        manifest(
            "MCPServer",
            "ibl",
            {
                "url": "https://ws.example.com/mcp",
                "transport": "websocket",
                "auth": {"type": "bearer", "secretKeyRef": TOKEN, "scheme": "Token"},
            },
        ),
        id="bearer",
    ),
    pytest.param(
        manifest(
            "MCPServer",
            "machine",
            {
                "url": "https://mcp.example.com/mcp",
                "auth": {
                    "type": "oauthClientCredentials",
                    "clientId": CLIENT_ID,
                    "clientSecret": CLIENT_SECRET,
                    "scopes": ["mcp:tools"],
                    "resource": "https://mcp.example.com/mcp",
                    "tokenEndpointAuthMethod": "client_secret_basic",
                },
            },
        ),
        id="oauthClientCredentials",
    ),
    pytest.param(
        manifest(
            "MCPServer",
            "linear",
            {
                "url": "https://mcp.linear.example/mcp",
                "auth": {"type": "oauthAuthorizationCode", "pkce": "public", "scopes": ["read"]},
            },
        ),
        id="oauthAuthorizationCode public",
    ),
    pytest.param(
        manifest(
            "MCPServer",
            "github",
            {
                "url": "https://api.github.example/mcp",
                "auth": {
                    "type": "oauthAuthorizationCode",
                    "pkce": "confidential",
                    "clientId": CLIENT_ID,
                    "clientSecret": CLIENT_SECRET,
                    "authUrl": "https://github.example/login/oauth/authorize",
                    "tokenUrl": "https://github.example/login/oauth/access_token",
                },
            },
        ),
        id="oauthAuthorizationCode confidential",
    ),
    pytest.param(CONNECTION, id="connection"),
    pytest.param(
        manifest(
            "MCPConnection",
            "linear-members",
            {"serverRef": "linear", "scope": "platform", "credentialMode": "perMember"},
        ),
        id="connection perMember",
    ),
    pytest.param(GRANT, id="grant"),
    pytest.param(
        manifest(
            "MCPAccessGrant",
            "everyone",
            {"target": {"connectionRef": "crm-shared"}, "subjects": [{"kind": "Organization"}]},
        ),
        id="grant organization",
    ),
    pytest.param(BINDING, id="binding"),
]


@pytest.mark.parametrize("document", VALID_MANIFESTS)
def test_valid_manifests_pass(document: dict[str, Any]) -> None:
    schema = open_api_schema(document["kind"])
    assert open_api_errors(schema, document) == []
    assert evaluate_cel(schema, document).failed == []
    kind_for(document["kind"]).model.model_validate(document)


def _broken(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with one field set (or removed, for DELETE); path is dotted, `[n]` indexes lists."""
    broken = copy.deepcopy(document)
    *parents, last = path.split(".")
    target: Any = broken
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return broken


DELETE: Any = object()

INVALID = [
    ("wrong transport enum", "spec.transport", "grpc", "'grpc' is not one of"),
    ("wrong auth type enum", "spec.auth.type", "basic", "'basic' is not one of"),
    ("wrong deletion policy", "spec.deletionPolicy", "Keep", "'Keep' is not one of"),
    ("ftp url", "spec.url", "ftp://files.example.com/x", "does not match"),
    ("bad connectionRef name", "spec.discovery.connectionRef", "CRM_Shared", "does not match"),
    ("bad header name", "spec.headers.0.name", "x header", "does not match"),
    ("bad secret key", "spec.auth.secretKeyRef.key", "a/b", "does not match"),
    ("bad interval", "spec.discovery.interval", "1 hour", "does not match"),
    ("bad approved hash", "spec.tools.approvedHash", "sha256:xyz", "does not match"),
    ("bad tool glob", "spec.tools.allow.0", "contacts list", "does not match"),
    ("missing url", "spec.url", DELETE, "'url' is a required property"),
    ("missing secret name", "spec.auth.secretKeyRef.name", DELETE, "'name' is a required property"),
    ("missing spec", "spec", DELETE, "'spec' is a required property"),
    ("enabled as text", "spec.enabled", "maybe", "'maybe' is not of type 'boolean'"),
    ("headers as a map", "spec.headers", {"x-a": "1"}, "is not of type 'array'"),
    ("empty display name", "spec.displayName", "", "should be non-empty"),
    ("too long description", "spec.description", "x" * 4097, "is too long"),
    ("condition status", "status.conditions.0.status", "Maybe", "'Maybe' is not one of"),
    ("condition without reason", "status.conditions.0.reason", DELETE, "'reason' is a required property"),
    ("tool count as text", "status.tools.count", "twelve", "is not of type 'integer'"),
    ("error class enum", "status.lastTest.errorClass", "dns", "'dns' is not one of"),
]


@pytest.mark.parametrize(("path", "value", "error"), [pytest.param(*case[1:], id=case[0]) for case in INVALID])
def test_invalid_server_manifests_fail(path: str, value: Any, error: str) -> None:
    document = _broken(FULL_SERVER, path, value)
    errors = open_api_errors(open_api_schema("MCPServer"), document)
    assert any(error in message for message in errors), errors
    with pytest.raises(ValidationError):
        kind_for("MCPServer").model.model_validate(document)


INVALID_OTHER_KINDS = [
    pytest.param(_broken(CONNECTION, "spec.scope", "team"), "'team' is not one of", id="scope enum"),
    pytest.param(_broken(CONNECTION, "spec.subject", "-ana"), "does not match", id="subject pattern"),
    pytest.param(_broken(GRANT, "spec.subjects", []), "should be non-empty", id="grant without subjects"),
    pytest.param(_broken(GRANT, "spec.subjects.0.kind", "Group"), "'Group' is not one of", id="subject kind"),
    pytest.param(_broken(BINDING, "spec.template", DELETE), "'template' is a required", id="no template"),
    pytest.param(_broken(BINDING, "spec.servers.0.serverRef", "Bad.Name"), "does not match", id="ref name"),
    pytest.param(
        _broken(BINDING, "spec.servers", [{"serverRef": "a"}, {"serverRef": "a"}]),
        "Duplicate value: {'serverRef': 'a'}",
        id="duplicate list-map key",
    ),
]


@pytest.mark.parametrize(("document", "error"), INVALID_OTHER_KINDS)
def test_invalid_manifests_of_other_kinds_fail(document: dict[str, Any], error: str) -> None:
    errors = open_api_errors(open_api_schema(document["kind"]), document)
    assert any(error in message for message in errors), errors
    with pytest.raises(ValidationError):
        kind_for(document["kind"]).model.model_validate(document)


def test_unknown_fields_are_not_schema_errors_but_the_models_reject_them() -> None:
    # Structural schemas prune unknown fields instead of rejecting them; the CLI is stricter on purpose.
    document = _broken(FULL_SERVER, "spec.colour", "blue")
    assert open_api_errors(open_api_schema("MCPServer"), document) == []
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        kind_for("MCPServer").model.model_validate(document)
