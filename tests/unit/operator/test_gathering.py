"""What one pass hands the engine: the target plus exactly what it references, parsed strictly."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest

from reconciler.api import MCPServer
from reconciler.engine.desired import build_desired
from reconciler.engine.inputs import DesiredInput, StaticSecrets, Tenant
from reconciler.errors import InvalidInput
from reconciler.operator.gathering import (
    build_input,
    index_entry,
    parse_resource,
    secret_names,
    secret_users,
    select,
    slim_body,
)

V = "mcp.reconciler.dev/v1alpha1"


def body(kind: str, name: str, spec: dict[str, Any], *, namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": V,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "generation": 2, "uid": f"uid-{name}", "managedFields": []},
        "spec": spec,
        "status": {"observedGeneration": 1},
    }


SERVER = body(
    "MCPServer",
    "crm",
    {
        "url": "https://crm.example.com/mcp",
        "auth": {"type": "bearer", "secretKeyRef": {"name": "crm-token", "key": "token"}},
        "headers": [{"name": "x-key", "valueFrom": {"secretKeyRef": {"name": "crm-headers", "key": "k"}}}],
        "discovery": {"connectionRef": "crm-platform"},
    },
)
CONNECTION = body(
    "MCPConnection",
    "crm-platform",
    {"serverRef": "crm", "scope": "platform", "auth": {"secretKeyRef": {"name": "conn-token", "key": "t"}}},
)
GRANT = body(
    "MCPAccessGrant", "everyone", {"target": {"connectionRef": "crm-platform"}, "subjects": [{"kind": "Organization"}]}
)
BINDING = body("MCPTemplateBinding", "assistant", {"template": "assistant", "servers": [{"serverRef": "docs"}]})
OTHER = body("MCPServer", "unrelated", {"url": "https://other.example.com/mcp"})
BROKEN = body("MCPServer", "docs", {"url": "not a url"})


def names(resources: tuple[Any, ...]) -> set[tuple[str, str]]:
    return {(r.kind, r.metadata.name) for r in resources}


def test_the_closure_is_transitive_and_nothing_more() -> None:
    peers = [SERVER, CONNECTION, GRANT, BINDING, OTHER]
    selection = select([parse_resource(GRANT)], peers)
    assert names(selection.resources) == {
        ("MCPAccessGrant", "everyone"),
        ("MCPConnection", "crm-platform"),
        ("MCPServer", "crm"),
    }
    assert names(selection.targets) == {("MCPAccessGrant", "everyone")}


def test_missing_or_unparsable_references_are_left_for_the_engine_to_report() -> None:
    selection = select([parse_resource(BINDING)], [BINDING, BROKEN, OTHER])
    assert names(selection.resources) == {("MCPTemplateBinding", "assistant")}


def test_references_never_leave_the_namespace() -> None:
    elsewhere = body("MCPServer", "crm", {"url": "https://crm.example.com/mcp"}, namespace="other")
    connection = body("MCPConnection", "c", {"serverRef": "crm", "scope": "platform"})
    selection = select([parse_resource(connection)], [connection, elsewhere])
    assert names(selection.resources) == {("MCPConnection", "c")}


def test_secret_names_cover_auth_headers_and_connections() -> None:
    resources = [parse_resource(SERVER), parse_resource(CONNECTION), parse_resource(GRANT)]
    assert secret_names(resources) == {"crm-token", "crm-headers", "conn-token"}


def test_parse_errors_name_fields_not_values() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_resource(body("MCPServer", "bad", {"url": "ftp://secret-host/", "transport": "carrier-pigeon"}))
    text = str(caught.value)
    assert [problem.render() for problem in caught.value.problems] == [
        "MCPServer ns/bad: field spec.url: must be an http:// or https:// URL",
        "MCPServer ns/bad: field spec.transport: must be one of 'streamable-http', 'sse' or 'websocket'",
    ]
    assert "secret-host" not in text and "carrier-pigeon" not in text


def test_parsing_ignores_status_and_system_metadata() -> None:
    resource = parse_resource(SERVER)
    assert isinstance(resource, MCPServer)
    assert resource.status is None and resource.metadata.generation == 2


def test_index_entries_are_slim() -> None:
    entry = index_entry(SERVER)
    assert "managedFields" not in entry["metadata"] and entry["status"] == {"observedGeneration": 1}
    assert "status" not in slim_body(SERVER)


def test_index_entries_leave_kopf_bookkeeping_out_and_keep_what_users_annotate() -> None:
    annotated = copy.deepcopy(SERVER)
    annotated["metadata"]["annotations"] = {
        "kopf.mcp.reconciler.dev/last-handled-configuration": json.dumps({"spec": SERVER["spec"]}),
        "kopf.mcp.reconciler.dev/reconcile": '{"started": "now"}',
        "mcp.reconciler.dev/paused": "true",
        "example.com/owner": "team-a",
    }
    entry = index_entry(annotated)
    assert entry["metadata"]["annotations"] == {"mcp.reconciler.dev/paused": "true", "example.com/owner": "team-a"}
    assert len(annotated["metadata"]["annotations"]) == 4, "the watch's body is left as it is"
    assert parse_resource(entry).spec == parse_resource(annotated).spec


def test_secret_users() -> None:
    assert secret_users(SERVER) == {
        ("ns", "crm-token"): ("MCPServer", "crm"),
        ("ns", "crm-headers"): ("MCPServer", "crm"),
    }
    assert secret_users(BROKEN) == {}


def test_build_input() -> None:
    tenant = Tenant(namespace="ns", slug="acme", vars={"region": "eu"})
    desired = build_input([parse_resource(SERVER)], tenants=[tenant], secrets={("ns", "crm-token"): {"token": "v"}})
    assert desired.tenant_for("ns").slug == "acme"
    assert desired.secrets.read("ns", "crm-token", "token") == "v"
    assert desired.secrets.read("other", "crm-token", "token") is None


def test_a_server_pass_includes_the_connections_marked_for_its_discovery() -> None:
    server = body("MCPServer", "drive", {"url": "https://drive.example.com/mcp"})
    marked = body(
        "MCPConnection", "drive-platform", {"serverRef": "drive", "scope": "platform", "useForDiscovery": True}
    )
    unmarked = body("MCPConnection", "drive-agent", {"serverRef": "drive", "scope": "agent", "subject": "a1"})
    elsewhere = body(
        "MCPConnection", "drive-platform", {"serverRef": "drive", "scope": "platform", "useForDiscovery": True}
    )
    elsewhere["metadata"]["namespace"] = "other"
    selection = select([parse_resource(server)], [server, marked, unmarked, elsewhere])
    assert names(selection.resources) == {("MCPServer", "drive"), ("MCPConnection", "drive-platform")}
    assert {r.metadata.namespace for r in selection.resources} == {"ns"}


class RecordingSecrets(StaticSecrets):
    """Every Secret the desired builder reads, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.read_names: set[str] = set()

    def read(self, namespace: str, name: str, key: str) -> str | None:
        self.read_names.add(name)
        return None


SECRET = {"secretKeyRef": {"name": "client-secret", "key": "v"}}
CLIENT_ID = {"secretKeyRef": {"name": "client-id", "key": "v"}}
AUTH_SHAPES = {
    "bearer": {"type": "bearer", "secretKeyRef": {"name": "token", "key": "t"}},
    "apiKey": {"type": "apiKey", "secretKeyRef": {"name": "api-key", "key": "k"}},
    "clientCredentials": {"type": "oauthClientCredentials", "clientId": CLIENT_ID, "clientSecret": SECRET},
    "clientAssertion": {
        "type": "oauthClientCredentials",
        "clientId": CLIENT_ID,
        "clientAssertion": {"privateKey": {"name": "signing-key", "key": "pem"}},
    },
    "cimdAssertion": {
        "type": "oauthClientCredentials",
        "clientAssertion": {"privateKey": {"name": "cimd-key", "key": "pem"}},
    },
    "confidentialCode": {
        "type": "oauthAuthorizationCode",
        "pkce": "confidential",
        "clientId": CLIENT_ID,
        "clientSecret": SECRET,
    },
}


@pytest.mark.parametrize("auth", AUTH_SHAPES.values(), ids=AUTH_SHAPES.keys())
def test_secret_names_are_every_secret_the_engine_reads(auth: dict[str, Any]) -> None:
    """The operator hands the engine (and watches) only the Secrets `secret_names` lists: one the engine reads but the
    list lacks is never found (a `clientAssertion` key was missing: every such server was SecretNotFound)."""
    headers = [{"name": "x-extra", "valueFrom": {"secretKeyRef": {"name": "extra-header", "key": "h"}}}]
    server = parse_resource(
        body("MCPServer", "crm", {"url": "https://crm.example.com/mcp", "auth": auth, "headers": headers})
    )
    secrets = RecordingSecrets()
    desired = DesiredInput(resources=[server], secrets=secrets)
    with contextlib.suppress(InvalidInput):
        build_desired(desired, fingerprint_key=b"k" * 32, manager="mcp-reconciler")
    assert secrets.read_names and secret_names([server]) == secrets.read_names
