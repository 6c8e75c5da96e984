"""The cross-field validation table, shared by the model tests and the CRD rule tests.

Each case is a spec the models accept or reject with a given message; the CRD tests assert the generated
schema plus its CEL rules decide the same way, so the cluster and the CLI can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

SAME = "same as the model's message"


@dataclass(frozen=True)
class SpecCase:
    """A spec of one kind; `model_error` is text the pydantic error must contain (None: valid).

    `cel_error` is the CEL message that must reject it; SAME copies `model_error`, None means the schema
    itself (types, patterns, list-map keys) or nothing at all rejects it.
    """

    id: str
    kind: str
    spec: dict[str, Any]
    model_error: str | None = None
    cel_error: str | None = SAME

    @property
    def valid(self) -> bool:
        return self.model_error is None

    @property
    def expected_cel_error(self) -> str | None:
        if self.model_error is None:
            return None
        return self.model_error if self.cel_error == SAME else self.cel_error


def server(auth: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": "https://mcp.example.com/mcp", **fields}
    if auth is not None:
        spec["auth"] = auth
    return spec


TOKEN = {"name": "crm-token", "key": "token"}
CLIENT_SECRET = {"secretKeyRef": {"name": "crm-oauth", "key": "client-secret"}}
CLIENT_ID = {"value": "reconciler"}
HASH = "sha256:" + "ab" * 32

_NEEDS_SECRET = "secretKeyRef is required with type: bearer or apiKey"
_OAUTH_ONLY = "only allowed with type: oauthClientCredentials or oauthAuthorizationCode"
ASSERTION = {"privateKey": {"name": "oauth", "key": "private-key"}, "keyId": "k1", "algorithm": "ES256"}

SERVER_CASES = [
    SpecCase("no auth", "MCPServer", server()),
    SpecCase("auth none", "MCPServer", server({"type": "none"})),
    SpecCase("bearer", "MCPServer", server({"type": "bearer", "secretKeyRef": TOKEN, "scheme": "Token"})),
    SpecCase("apiKey", "MCPServer", server({"type": "apiKey", "secretKeyRef": TOKEN, "headerName": "X-Key"})),
    SpecCase(
        "client credentials",
        "MCPServer",
        server(
            {
                "type": "oauthClientCredentials",
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "tokenUrl": "https://auth.example.com/token",
                "scopes": ["tools:read"],
                "audience": "mcp",
                "tokenEndpointAuthMethod": "client_secret_post",
            }
        ),
    ),
    SpecCase(
        "client credentials, client id from a secret",
        "MCPServer",
        server(
            {
                "type": "oauthClientCredentials",
                "clientId": {"secretKeyRef": {"name": "crm-oauth", "key": "client-id"}},
                "clientSecret": CLIENT_SECRET,
                "dynamicRegistration": False,
            }
        ),
    ),
    SpecCase(
        "client credentials, dynamic registration",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True}),
    ),
    SpecCase(
        "authorization code, public",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "clientId": CLIENT_ID}),
    ),
    SpecCase(
        "authorization code, public, registered dynamically",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "registerUrl": "https://auth.example.com/reg"}),
    ),
    SpecCase(
        "authorization code, confidential",
        "MCPServer",
        server(
            {
                "type": "oauthAuthorizationCode",
                "pkce": "confidential",
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "authUrl": "https://auth.example.com/authorize",
                "tokenUrl": "https://auth.example.com/token",
                "dynamicRegistration": False,
            }
        ),
    ),
    SpecCase(
        "authorization code, confidential, registered dynamically",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "confidential", "dynamicRegistration": True}),
    ),
    SpecCase(
        "headers, literal and from a secret",
        "MCPServer",
        server(
            headers=[
                {"name": "x-workspace", "value": "{{ tenant.slug }}"},
                {"name": "x-token", "valueFrom": {"secretKeyRef": TOKEN}},
            ]
        ),
    ),
    SpecCase("pinned tools", "MCPServer", server(tools={"policy": "Pin", "approvedHash": HASH})),
    SpecCase("pin without a hash yet", "MCPServer", server(tools={"policy": "Pin"})),
    SpecCase("shortest interval", "MCPServer", server(discovery={"interval": "10s"})),
    SpecCase("compound interval", "MCPServer", server(discovery={"interval": "1h30m"})),
    SpecCase("longest interval", "MCPServer", server(discovery={"interval": "8760h"})),
    SpecCase("a year in minutes", "MCPServer", server(discovery={"interval": "525600m"})),
    # Rejected: which fields each auth type needs or allows.
    SpecCase("bearer without secret", "MCPServer", server({"type": "bearer"}), "Field required", _NEEDS_SECRET),
    SpecCase("apiKey without secret", "MCPServer", server({"type": "apiKey"}), "Field required", _NEEDS_SECRET),
    SpecCase(
        "none with a secret",
        "MCPServer",
        server({"type": "none", "secretKeyRef": TOKEN}),
        "Extra inputs are not permitted",
        "secretKeyRef is only allowed with type: bearer or apiKey",
    ),
    SpecCase(
        "bearer with scopes",
        "MCPServer",
        server({"type": "bearer", "secretKeyRef": TOKEN, "scopes": ["a"]}),
        "Extra inputs are not permitted",
        f"scopes is {_OAUTH_ONLY}",
    ),
    SpecCase(
        "apiKey with tokenUrl",
        "MCPServer",
        server({"type": "apiKey", "secretKeyRef": TOKEN, "tokenUrl": "https://auth.example.com/token"}),
        "Extra inputs are not permitted",
        f"tokenUrl is {_OAUTH_ONLY}",
    ),
    SpecCase(
        "bearer with headerName",
        "MCPServer",
        server({"type": "bearer", "secretKeyRef": TOKEN, "headerName": "X-Key"}),
        "Extra inputs are not permitted",
        "headerName is only allowed with type: apiKey",
    ),
    SpecCase(
        "apiKey with scheme",
        "MCPServer",
        server({"type": "apiKey", "secretKeyRef": TOKEN, "scheme": "Token"}),
        "Extra inputs are not permitted",
        "scheme is only allowed with type: bearer",
    ),
    SpecCase(
        "client credentials with pkce",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "pkce": "public"}),
        "Extra inputs are not permitted",
        "pkce is only allowed with type: oauthAuthorizationCode",
    ),
    SpecCase(
        "client credentials with authUrl",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "authUrl": "https://a.example.com/a"}),
        "Extra inputs are not permitted",
        "authUrl is only allowed with type: oauthAuthorizationCode",
    ),
    SpecCase(
        "client credentials with registerUrl",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "registerUrl": "https://a.example.com"}),
        "Extra inputs are not permitted",
        "registerUrl is only allowed with type: oauthAuthorizationCode",
    ),
    SpecCase(
        "authorization code with audience",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "audience": "mcp"}),
        "Extra inputs are not permitted",
        "audience is only allowed with type: oauthClientCredentials",
    ),
    SpecCase(
        "authorization code with tokenEndpointAuthMethod",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "tokenEndpointAuthMethod": "client_secret_post"}),
        "Extra inputs are not permitted",
        "tokenEndpointAuthMethod is only allowed with type: oauthClientCredentials",
    ),
    SpecCase(
        "authorization code without pkce",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "clientId": CLIENT_ID}),
        "Field required",
        "pkce is required with type: oauthAuthorizationCode",
    ),
    SpecCase(
        "bearer with a client id",
        "MCPServer",
        server({"type": "bearer", "secretKeyRef": TOKEN, "clientId": CLIENT_ID}),
        "Extra inputs are not permitted",
        f"clientId is {_OAUTH_ONLY}",
    ),
    SpecCase(
        "none with a client secret",
        "MCPServer",
        server({"type": "none", "clientSecret": CLIENT_SECRET}),
        "Extra inputs are not permitted",
        f"clientSecret is {_OAUTH_ONLY}",
    ),
    SpecCase(
        "apiKey with dynamic registration",
        "MCPServer",
        server({"type": "apiKey", "secretKeyRef": TOKEN, "dynamicRegistration": True}),
        "Extra inputs are not permitted",
        f"dynamicRegistration is {_OAUTH_ONLY}",
    ),
    SpecCase(
        "bearer with a resource",
        "MCPServer",
        server({"type": "bearer", "secretKeyRef": TOKEN, "resource": "https://mcp.example.com/"}),
        "Extra inputs are not permitted",
        f"resource is {_OAUTH_ONLY}",
    ),
    # Rejected: the OAuth client combinations.
    SpecCase(
        "client credentials, dynamic registration and a client id",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "clientId": CLIENT_ID}),
        "dynamicRegistration registers its own client: remove clientId and clientSecret",
    ),
    SpecCase(
        "client credentials, dynamic registration and a client secret",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "clientSecret": CLIENT_SECRET}),
        "dynamicRegistration registers its own client: remove clientId and clientSecret",
    ),
    SpecCase(
        "client credentials without a client",
        "MCPServer",
        server({"type": "oauthClientCredentials"}),
        "set clientId and clientSecret, or clientAssertion (clientId optional), or dynamicRegistration: true",
    ),
    SpecCase(
        "client credentials without a secret",
        "MCPServer",
        server({"type": "oauthClientCredentials", "clientId": CLIENT_ID}),
        "set clientId and clientSecret, or clientAssertion (clientId optional), or dynamicRegistration: true",
    ),
    SpecCase(
        "client credentials with a client assertion",
        "MCPServer",
        server({"type": "oauthClientCredentials", "clientId": CLIENT_ID, "clientAssertion": ASSERTION}),
    ),
    SpecCase(
        "client credentials with a client assertion and no client id (CIMD)",
        "MCPServer",
        server({"type": "oauthClientCredentials", "clientAssertion": ASSERTION}),
    ),
    SpecCase(
        "client credentials with a client assertion and dynamic registration",
        "MCPServer",
        server({"type": "oauthClientCredentials", "dynamicRegistration": True, "clientAssertion": ASSERTION}),
        "clientAssertion replaces clientSecret and dynamicRegistration",
    ),
    SpecCase(
        "client credentials with a client assertion and a secret",
        "MCPServer",
        server(
            {
                "type": "oauthClientCredentials",
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "clientAssertion": ASSERTION,
            }
        ),
        "clientAssertion replaces clientSecret and dynamicRegistration",
    ),
    SpecCase(
        "client credentials with a client assertion and a secret method",
        "MCPServer",
        server(
            {
                "type": "oauthClientCredentials",
                "clientId": CLIENT_ID,
                "clientAssertion": ASSERTION,
                "tokenEndpointAuthMethod": "client_secret_post",
            }
        ),
        "clientAssertion authenticates with private_key_jwt: remove tokenEndpointAuthMethod",
    ),
    SpecCase(
        "client credentials, private_key_jwt without the key",
        "MCPServer",
        server(
            {
                "type": "oauthClientCredentials",
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "tokenEndpointAuthMethod": "private_key_jwt",
            }
        ),
        "tokenEndpointAuthMethod private_key_jwt needs clientAssertion (the private key)",
    ),
    SpecCase(
        "authorization code with a client assertion",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "clientId": CLIENT_ID, "clientAssertion": ASSERTION}),
        "Extra inputs are not permitted",
        "clientAssertion is only allowed with type: oauthClientCredentials",
    ),
    SpecCase(
        "client credentials with a literal secret",
        "MCPServer",
        server({"type": "oauthClientCredentials", "clientId": CLIENT_ID, "clientSecret": {"value": "s3cr3t"}}),
        "clientSecret must come from secretKeyRef, not a literal value",
    ),
    SpecCase(
        "authorization code, no client and no registration",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "dynamicRegistration": False}),
        "set clientId, or allow dynamicRegistration",
    ),
    SpecCase(
        "authorization code, a client id and dynamic registration",
        "MCPServer",
        server(
            {"type": "oauthAuthorizationCode", "pkce": "public", "clientId": CLIENT_ID, "dynamicRegistration": True}
        ),
        "dynamicRegistration registers its own client: remove clientId",
    ),
    SpecCase(
        "public pkce with a client secret",
        "MCPServer",
        server(
            {"type": "oauthAuthorizationCode", "pkce": "public", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
        ),
        "pkce: public clients have no clientSecret",
    ),
    SpecCase(
        "confidential pkce without a client secret",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "confidential", "clientId": CLIENT_ID}),
        "pkce: confidential with a clientId needs clientSecret",
    ),
    SpecCase(
        "confidential pkce with a literal secret",
        "MCPServer",
        server(
            {
                "type": "oauthAuthorizationCode",
                "pkce": "confidential",
                "clientId": CLIENT_ID,
                "clientSecret": {"value": "s3cr3t"},
            }
        ),
        "clientSecret must come from secretKeyRef, not a literal value",
    ),
    SpecCase(
        "client id with a value and a secret",
        "MCPServer",
        server(
            {
                "type": "oauthAuthorizationCode",
                "pkce": "public",
                "clientId": {"value": "abc", "secretKeyRef": {"name": "crm-oauth", "key": "client-id"}},
            }
        ),
        "set exactly one of value or secretKeyRef",
    ),
    SpecCase(
        "empty client id",
        "MCPServer",
        server({"type": "oauthAuthorizationCode", "pkce": "public", "clientId": {}}),
        "set exactly one of value or secretKeyRef",
    ),
    # Rejected: headers, tool policy, discovery.
    SpecCase(
        "header with a value and a secret",
        "MCPServer",
        server(headers=[{"name": "x-a", "value": "1", "valueFrom": {"secretKeyRef": TOKEN}}]),
        "set exactly one of value or valueFrom",
    ),
    SpecCase(
        "header without a value",
        "MCPServer",
        server(headers=[{"name": "x-a"}]),
        "set exactly one of value or valueFrom",
    ),
    SpecCase(
        "header listed twice in another case",
        "MCPServer",
        server(headers=[{"name": "X-Team", "value": "1"}, {"name": "x-team", "value": "2"}]),
        "header 'x-team' is listed twice",
        "each header name may be listed once (names are case-insensitive)",
    ),
    SpecCase(
        "approved hash with Track",
        "MCPServer",
        server(tools={"policy": "Track", "approvedHash": HASH}),
        "approvedHash is only used with policy: Pin",
    ),
    SpecCase(
        "approved hash with the default policy",
        "MCPServer",
        server(tools={"approvedHash": HASH}),
        "approvedHash is only used with policy: Pin",
    ),
    SpecCase(
        "interval below 10s",
        "MCPServer",
        server(discovery={"interval": "9s"}),
        "interval must be at least 10s",
    ),
    SpecCase(
        "interval in milliseconds",
        "MCPServer",
        server(discovery={"interval": "9500ms"}),
        "interval must be at least 10s",
    ),
    SpecCase(
        "interval above a year",
        "MCPServer",
        server(discovery={"interval": "8760h1s"}),
        "interval must be at most 8760h (one year)",
    ),
    SpecCase(
        "interval a year in minutes and one more",
        "MCPServer",
        server(discovery={"interval": "525601m"}),
        "interval must be at most 8760h (one year)",
    ),
]


def connection(**fields: Any) -> dict[str, Any]:
    return {"serverRef": "crm", **fields}


CONNECTION_CASES = [
    SpecCase("platform", "MCPConnection", connection(scope="platform", auth={"secretKeyRef": TOKEN})),
    SpecCase("agent", "MCPConnection", connection(scope="agent", subject="agent-7", useForDiscovery=True)),
    SpecCase(
        "user",
        "MCPConnection",
        connection(scope="user", subject="ana@example.com", headers=[{"name": "x-user", "value": "ana"}]),
    ),
    SpecCase("per member", "MCPConnection", connection(scope="platform", credentialMode="perMember")),
    SpecCase(
        "per member with member headers",
        "MCPConnection",
        connection(
            scope="platform",
            credentialMode="perMember",
            memberHeaders=[{"name": "x-workspace-slug", "key": "workspace-slug"}],
        ),
    ),
    SpecCase(
        "member headers on a shared connection",
        "MCPConnection",
        connection(scope="platform", memberHeaders=[{"name": "x-workspace-slug", "key": "workspace-slug"}]),
        "memberHeaders need credentialMode: perMember (values are each member's own)",
    ),
    SpecCase(
        "a member header listed twice",
        "MCPConnection",
        connection(
            scope="platform",
            credentialMode="perMember",
            memberHeaders=[{"name": "X-Slug", "key": "a"}, {"name": "x-slug", "key": "b"}],
        ),
        "member header 'x-slug' is listed twice",
        "each member header name may be listed once (names are case-insensitive)",
    ),
    SpecCase(
        "a member value key with a slash",
        "MCPConnection",
        connection(scope="platform", credentialMode="perMember", memberHeaders=[{"name": "x-slug", "key": "a/b"}]),
        "String should match pattern",
        None,
    ),
    SpecCase(
        "per member without discovery",
        "MCPConnection",
        connection(scope="platform", credentialMode="perMember", useForDiscovery=False),
    ),
    SpecCase(
        "platform with a subject",
        "MCPConnection",
        connection(scope="platform", subject="agent-7"),
        "subject is not allowed with scope: platform",
    ),
    SpecCase(
        "agent without a subject",
        "MCPConnection",
        connection(scope="agent"),
        "subject is required with scope: agent",
    ),
    SpecCase(
        "user without a subject",
        "MCPConnection",
        connection(scope="user"),
        "subject is required with scope: user",
    ),
    SpecCase(
        "per member with a shared credential",
        "MCPConnection",
        connection(scope="platform", credentialMode="perMember", auth={"secretKeyRef": TOKEN}),
        "credentialMode: perMember holds no shared credential: remove auth",
    ),
    SpecCase(
        "per member at user scope",
        "MCPConnection",
        connection(scope="user", subject="ana", credentialMode="perMember"),
        "credentialMode: perMember is an organization-level connection: use scope: platform",
    ),
    SpecCase(
        "per member used for discovery",
        "MCPConnection",
        connection(scope="platform", credentialMode="perMember", useForDiscovery=True),
        "credentialMode: perMember has no credential the reconciler can use for discovery",
    ),
    SpecCase(
        "header listed twice",
        "MCPConnection",
        connection(scope="platform", headers=[{"name": "x-a", "value": "1"}, {"name": "x-a", "value": "2"}]),
        "header 'x-a' is listed twice",
        "each header name may be listed once (names are case-insensitive)",
    ),
]


def grant(target: dict[str, Any], *subjects: dict[str, Any]) -> dict[str, Any]:
    return {"target": target, "subjects": list(subjects)}


ORG = {"kind": "Organization"}
ANA = {"kind": "Member", "name": "ana"}
SALES = {"kind": "Team", "name": "sales"}

GRANT_CASES = [
    SpecCase("server to everyone", "MCPAccessGrant", grant({"serverRef": "crm"}, ORG)),
    SpecCase("connection to people", "MCPAccessGrant", grant({"connectionRef": "crm-ana"}, ANA, SALES)),
    SpecCase(
        "same name, different kinds",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, {"kind": "Member", "name": "x"}, {"kind": "Team", "name": "x"}),
    ),
    SpecCase(
        "both targets",
        "MCPAccessGrant",
        grant({"serverRef": "crm", "connectionRef": "crm-ana"}, ORG),
        "set exactly one of serverRef or connectionRef",
    ),
    SpecCase("no target", "MCPAccessGrant", grant({}, ORG), "set exactly one of serverRef or connectionRef"),
    SpecCase(
        "organization with a name",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, {"kind": "Organization", "name": "acme"}),
        "name is not allowed with kind: Organization",
    ),
    SpecCase(
        "member without a name",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, {"kind": "Member"}),
        "name is required with kind: Member",
    ),
    SpecCase(
        "team without a name",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, {"kind": "Team"}),
        "name is required with kind: Team",
    ),
    SpecCase(
        "member listed twice",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, ANA, SALES, ANA),
        "subject Member ana is listed twice",
        "each subject may be listed once",
    ),
    SpecCase(
        "organization listed twice",
        "MCPAccessGrant",
        grant({"serverRef": "crm"}, ORG, ORG),
        "subject Organization is listed twice",
        "each subject may be listed once",
    ),
]


def binding(**fields: Any) -> dict[str, Any]:
    return {"template": "support-agent", "servers": [{"serverRef": "crm"}], **fields}


BINDING_CASES = [
    SpecCase(
        "binding",
        "MCPTemplateBinding",
        {
            "template": "support-agent",
            "servers": [
                {"serverRef": "crm", "connectionRef": "crm-shared", "tools": {"allow": ["contacts.*"]}},
                {"serverRef": "docs", "tools": {"deny": ["delete_*"]}},
            ],
        },
    ),
    SpecCase(
        "server listed twice",
        "MCPTemplateBinding",
        {"template": "support-agent", "servers": [{"serverRef": "crm"}, {"serverRef": "crm"}]},
        "server 'crm' is listed twice",
        None,  # list-type map keyed by serverRef: the API server rejects the duplicate key itself
    ),
    SpecCase("assigned to two agents", "MCPTemplateBinding", binding(agents=["tutor", "grader@acme"])),
    SpecCase(
        "an agent listed twice",
        "MCPTemplateBinding",
        binding(agents=["tutor", "tutor"]),
        "an agent is listed twice in agents",
    ),
    SpecCase(
        "assigned to an agent and exported",
        "MCPTemplateBinding",
        binding(agents=["tutor"], export={"configMap": {}}),
        "export is the template's document for no particular agent: a binding with agents cannot export",
    ),
    SpecCase(
        "an agent id with a space",
        "MCPTemplateBinding",
        binding(agents=["a tutor"]),
        "String should match pattern",
        None,
    ),
    SpecCase("export with defaults", "MCPTemplateBinding", binding(export={"configMap": {}})),
    SpecCase(
        "export to a named key",
        "MCPTemplateBinding",
        binding(export={"configMap": {"name": "support.mcp-config", "key": ".mcp_config-v1.json"}}),
    ),
    SpecCase(
        "export without a target",
        "MCPTemplateBinding",
        binding(export={}),
        "Field required",
        None,  # configMap is required by the schema
    ),
    SpecCase(
        "export to a ConfigMap name that is not DNS-1123",
        "MCPTemplateBinding",
        binding(export={"configMap": {"name": "Support_Agent"}}),
        "String should match pattern",
        None,
    ),
    SpecCase(
        "export to a key with a slash",
        "MCPTemplateBinding",
        binding(export={"configMap": {"key": "config/mcp.json"}}),
        "String should match pattern",
        None,
    ),
    SpecCase(
        "export to the key ..",
        "MCPTemplateBinding",
        binding(export={"configMap": {"key": ".."}}),
        "key must not be '.' or start with '..'",
    ),
    SpecCase(
        "export to a key starting with ..",
        "MCPTemplateBinding",
        binding(export={"configMap": {"key": "..data"}}),
        "key must not be '.' or start with '..'",
    ),
    SpecCase(
        "export to the key .",
        "MCPTemplateBinding",
        binding(export={"configMap": {"key": "."}}),
        "key must not be '.' or start with '..'",
    ),
    SpecCase("read-only tools for every server", "MCPTemplateBinding", binding(tools={"readOnly": True})),
    SpecCase(
        "read-only tools of one server, after its allow/deny",
        "MCPTemplateBinding",
        binding(
            servers=[{"serverRef": "crm", "tools": {"deny": ["admin_*"], "readOnly": True}}, {"serverRef": "docs"}]
        ),
    ),
    SpecCase(
        "readOnly that is not a boolean",
        "MCPTemplateBinding",
        binding(tools={"readOnly": "yes"}),
        "Input should be a valid boolean",
        None,
    ),
]

ALL_CASES = SERVER_CASES + CONNECTION_CASES + GRANT_CASES + BINDING_CASES


def case_params(cases: list[SpecCase]) -> list[Any]:
    return [pytest.param(case, id=f"{case.kind}: {case.id}") for case in cases]
