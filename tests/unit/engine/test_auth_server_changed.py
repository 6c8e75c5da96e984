"""The AuthServerChanged condition from a server's stored probe state: a managed client re-bound to a new issuer
(IssuerChanged, both issuers named, `previousIssuer` kept out of status.credentials), and a pre-registered client
held back (PreregisteredClientNotUsed beside CredentialsValid=False). Pure."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.api import MCPServer
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import Tenant
from reconciler.engine.statuses import probe_sections
from reconciler.registry.records import ProbeStateRecord, ServerRecord

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
OLD, NEW = "https://old-issuer.example", "https://new-issuer.example"


def code_server() -> DesiredObject:
    resource = MCPServer.model_validate(
        {
            "metadata": {"name": "s", "namespace": "acme"},
            "spec": {"url": "https://s.example.com/mcp", "auth": {"type": "oauthAuthorizationCode", "pkce": "public"}},
        }
    )
    record = ServerRecord(tenant="acme", name="s", url="https://s.example.com/mcp", auth_type="oauthAuthorizationCode")
    return DesiredObject(resource, Tenant(slug="acme", namespace="acme"), record)


def sections_for(last_test: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    state = ProbeStateRecord(
        tenant="acme",
        server="s",
        discovery={"requiresAuth": True, "recommendedAuthMode": "oauthAuthorizationCode"},
        last_test={"ok": True, "errorClass": None, "message": "", "at": "2026-01-01T12:00:00Z", **last_test},
        probed_at=T0,
    )
    sections = probe_sections(code_server(), state, [])
    found = {item["type"]: item for item in sections.conditions}
    return found, dict(sections.credentials) if sections.credentials else None


def test_a_managed_client_moved_to_a_new_issuer() -> None:
    credentials = {"clientIdentity": "dynamic", "issuer": NEW, "previousIssuer": OLD}
    found, status_credentials = sections_for({"credentials": credentials})
    changed = found["AuthServerChanged"]
    assert (changed["status"], changed["reason"]) == ("True", "IssuerChanged")
    assert OLD in changed["message"] and NEW in changed["message"]
    assert status_credentials == {"clientIdentity": "dynamic", "issuer": NEW}


def test_no_move_no_condition() -> None:
    found, status_credentials = sections_for({"credentials": {"clientIdentity": "cimd", "issuer": NEW}})
    assert "AuthServerChanged" not in found
    assert status_credentials == {"clientIdentity": "cimd", "issuer": NEW}


def test_a_preset_client_held_back() -> None:
    message = f"the authorization server changed from {OLD} to {NEW}; ..."
    found, _ = sections_for({"ok": False, "credentialFailure": {"reason": "AuthServerChanged", "message": message}})
    assert found["AuthServerChanged"]["reason"] == "PreregisteredClientNotUsed"
    assert found["AuthServerChanged"]["message"] == message
    assert (found["CredentialsValid"]["status"], found["CredentialsValid"]["reason"]) == ("False", "AuthServerChanged")
