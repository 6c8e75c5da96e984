"""Credentials through the reconcile loop: OAuth minting and registration before probing, cleanup on delete,
and Secret rotation verified against the live server before any row changes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.engine.probing import ProbeOptions
from reconciler.engine.reconciling import EngineSettings, ReconcileReport, reconcile
from reconciler.manifests import load_folder
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord
from reconciler.runtime import resolve
from tests.fixtures.authorization_server import OAuthServers
from tests.fixtures.mcp_servers import LocalServers

SETTINGS = EngineSettings()
PROBE = ProbeOptions(ProbeSettings(allow_private_networks=True, total_timeout=15))
CLIENT_SECRET = "client-secret-value-for-leak-check"


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def server(name: str, url: str, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"url": url, "auth": auth, "network": {"allowPrivate": True}},
    }


def secret(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "acme"},
        "stringData": data,
    }


def apply(folder: Path, registry: Registry, docs: list[dict[str, Any]], **kwargs: Any) -> ReconcileReport:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    kwargs.setdefault("probe", PROBE)
    return reconcile(load_folder(folder), registry, settings=SETTINGS, **kwargs)


def status_of(registry: Registry, name: str) -> dict[str, Any]:
    (stored,) = registry.fetch_resources(kind="MCPServer", name=name)
    return stored.status


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_client_credentials_token_is_minted_used_and_never_stored_in_clear(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", CLIENT_SECRET)
    auth = {
        "type": "oauthClientCredentials",
        "clientId": {"value": "reconciler"},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": ["mcp:tools"],
    }
    docs = [server("crm", oauth_servers.protected, auth), secret(**{"client-secret": CLIENT_SECRET})]
    apply(tmp_path / "f", registry, docs)
    status = status_of(registry, "crm")
    assert conditions(status)["Ready"]["status"] == "True", status
    assert status["tools"]["count"] == 2 and status["credentials"]["expiresAt"]
    assert oauth_servers.main.grant_counts["client_credentials"] == 1
    apply(tmp_path / "f", registry, docs, probe=ProbeOptions(PROBE.settings, force=True))
    assert oauth_servers.main.grant_counts["client_credentials"] == 1  # the cached token was reused
    everything = json.dumps(registry.dump(), default=str) + json.dumps(status)
    for value in [CLIENT_SECRET, *oauth_servers.issued_values()]:
        assert value not in everything


def test_a_minted_token_is_renewed_at_its_refresh_point_before_the_snapshot_is_due(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", CLIENT_SECRET)
    oauth_servers.main.token_lifetime = 3  # the snapshot (interval 1h) is far from due; the token is not
    auth = {
        "type": "oauthClientCredentials",
        "clientId": {"value": "reconciler"},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": ["mcp:tools"],
    }
    docs = [server("crm", oauth_servers.protected, auth), secret(**{"client-secret": CLIENT_SECRET})]
    apply(tmp_path / "f", registry, docs)
    first = status_of(registry, "crm")["credentials"]["expiresAt"]
    assert oauth_servers.main.grant_counts["client_credentials"] == 1
    apply(tmp_path / "f", registry, docs)
    assert oauth_servers.main.grant_counts["client_credentials"] == 1, "before the refresh point: nothing to do"

    time.sleep(3 * 0.8 + 0.3)
    apply(tmp_path / "f", registry, docs)
    assert oauth_servers.main.grant_counts["client_credentials"] == 2, "renewed without forcing a probe"
    status = status_of(registry, "crm")
    assert status["credentials"]["expiresAt"] >= first and conditions(status)["Ready"]["status"] == "True"


def test_a_rejected_client_secret_is_a_clear_credentials_failure(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.add_client("reconciler", "the-right-secret")
    auth = {
        "type": "oauthClientCredentials",
        "clientId": {"value": "reconciler"},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
    }
    apply(tmp_path / "f", registry, [server("crm", oauth_servers.protected, auth), secret(**{"client-secret": "nope"})])
    found = conditions(status_of(registry, "crm"))
    assert found["CredentialsValid"]["status"] == "False" and "invalid_client" in found["CredentialsValid"]["message"]
    assert found["Ready"]["status"] == "False"
    assert "nope" not in json.dumps(found)


def test_dynamic_registration_prepares_the_runtime_and_is_cleaned_up_on_delete(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    auth = {"type": "oauthAuthorizationCode", "pkce": "public", "scopes": ["mcp:tools"]}
    apply(tmp_path / "f", registry, [server("notion", oauth_servers.protected, auth)])
    status = status_of(registry, "notion")
    (client,) = registry.fetch_oauth_clients(tenant="acme", server="notion")
    assert oauth_servers.main.registrations == 1
    assert f"client_id={client.client_id}" in status["credentials"]["authorizationUrlTemplate"]
    assert conditions(status)["CredentialsValid"]["reason"] == "AwaitingUserAuthorization"
    apply(
        tmp_path / "f",
        registry,
        [server("notion", oauth_servers.protected, auth)],
        probe=ProbeOptions(PROBE.settings, force=True),
    )
    assert oauth_servers.main.registrations == 1  # the registered client is reused
    apply(tmp_path / "f", registry, [])
    assert oauth_servers.main.deregistered == [client.client_id]
    assert registry.fetch_oauth_clients(tenant="acme", server="notion") == []


def test_a_rotated_secret_is_verified_before_the_row_changes(
    tmp_path: Path, registry: Registry, mcp_servers: LocalServers
) -> None:
    auth = {"type": "bearer", "secretKeyRef": {"name": "creds", "key": "token"}}
    folder = tmp_path / "f"
    grant = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": "everyone", "namespace": "acme"},
        "spec": {"target": {"serverRef": "p"}, "subjects": [{"kind": "Organization"}]},
    }
    apply(folder, registry, [server("p", mcp_servers.protected, auth), grant, secret(token="stale-token-value")])
    assert conditions(status_of(registry, "p"))["Ready"]["reason"] == "AuthError"
    row = registry.fetch_state().rows[("servers", "acme", "p")]
    assert isinstance(row, ServerRecord)

    good = apply(
        folder, registry, [server("p", mcp_servers.protected, auth), grant, secret(token=mcp_servers.bearer_token)]
    )
    (rotated,) = [a for a in good.plan.actions if a.writes]
    assert str(rotated.verb) == "update" and "verified against the live server" in rotated.message
    status = status_of(registry, "p")
    assert status["credentials"]["revision"] == 1 and status["credentials"]["rotatedAt"]
    assert conditions(status)["Ready"]["status"] == "True"
    verified = registry.fetch_state().rows[("servers", "acme", "p")]
    assert isinstance(verified, ServerRecord) and verified.row_id == row.row_id

    bad = apply(folder, registry, [server("p", mcp_servers.protected, auth), grant, secret(token="a-wrong-new-token")])
    assert not [a for a in bad.plan.actions if a.writes]
    status = status_of(registry, "p")
    failed = conditions(status)["CredentialsValid"]
    assert (failed["status"], failed["reason"]) == ("False", "RotationFailed") and "acme/creds#token" in failed[
        "message"
    ]
    assert status["credentials"]["failedRotationAttempts"] == 1
    assert registry.fetch_state().rows[("servers", "acme", "p")] == verified  # last good fingerprint kept
    # Status shows the credential in use, not the rejected one.
    assert status["credentials"]["fingerprint"] == verified.auth["secretFingerprint"]
    assert status["credentials"]["fingerprint"] != bad.plan.actions[0].desired.auth["secretFingerprint"]  # type: ignore[union-attr]
    assert "a-wrong-new-token" not in json.dumps(status)
    # Runtimes keep getting the last verified value, never the rejected one.
    (resolved,) = resolve(registry, "acme", secrets=load_folder(folder).secrets, show_secrets=True).servers
    assert resolved.state == "ready" and resolved.headers["Authorization"] == f"Bearer {mcp_servers.bearer_token}"

    fixed = apply(
        folder, registry, [server("p", mcp_servers.protected, auth), grant, secret(token=mcp_servers.bearer_token)]
    )
    assert not [a for a in fixed.plan.actions if a.writes]
    status = status_of(registry, "p")
    assert conditions(status)["CredentialsValid"]["status"] == "True"
    assert "failedRotationAttempts" not in status["credentials"]
    assert status["credentials"]["fingerprint"] == verified.auth["secretFingerprint"]


def test_an_expiring_registered_client_is_replaced_and_the_old_one_deregistered(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    oauth_servers.main.secret_lifetime = 600  # the client secret expires within the renewal window
    auth = {"type": "oauthClientCredentials", "dynamicRegistration": True, "scopes": ["mcp:tools"]}
    apply(tmp_path / "f", registry, [server("billing", oauth_servers.protected, auth)])
    (client,) = registry.fetch_oauth_clients(tenant="acme", server="billing")
    assert oauth_servers.main.registrations >= 1
    oauth_servers.main.secret_lifetime = 0  # the replacement does not expire
    apply(
        tmp_path / "f",
        registry,
        [server("billing", oauth_servers.protected, auth)],
        probe=ProbeOptions(PROBE.settings, force=True),
    )
    (replacement,) = registry.fetch_oauth_clients(tenant="acme", server="billing")
    assert replacement.client_id != client.client_id
    assert client.client_id in oauth_servers.main.deregistered
    status = status_of(registry, "billing")
    assert status["credentials"]["rotatedAt"] and conditions(status)["Ready"]["status"] == "True"


def test_test_connection_mints_the_token_like_apply(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    from reconciler.engine.reconciling import test_server
    from reconciler.registry.records import SourceRef

    oauth_servers.main.add_client("reconciler", CLIENT_SECRET)
    auth = {
        "type": "oauthClientCredentials",
        "clientId": {"value": "reconciler"},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": ["mcp:tools"],
    }
    folder = tmp_path / "f"
    docs = [server("crm", oauth_servers.protected, auth), secret(**{"client-secret": CLIENT_SECRET})]
    apply(folder, registry, docs, probe=None)
    outcome = test_server(
        load_folder(folder), registry, source=SourceRef("MCPServer", "acme", "crm"), settings=SETTINGS, probe=PROBE
    )
    assert outcome.result.ok and outcome.result.tools is not None and len(outcome.result.tools) == 2
    assert outcome.recorded and oauth_servers.main.grant_counts["client_credentials"] == 1
    assert status_of(registry, "crm")["credentials"]["expiresAt"]


def sealed_values(registry: Registry, server_name: str) -> list[dict[str, Any]]:
    return [row for row in registry.dump()["local_secrets"] if row["name"] == server_name]


def test_deleting_a_server_without_probing_still_deregisters_its_client(
    tmp_path: Path, registry: Registry, oauth_servers: OAuthServers
) -> None:
    """`apply --no-probe` and the operator's finalizer: clean-up does not depend on probing."""
    auth = {"type": "oauthAuthorizationCode", "pkce": "confidential", "scopes": ["mcp:tools"]}
    apply(tmp_path / "f", registry, [server("notion", oauth_servers.protected, auth)])
    (client,) = registry.fetch_oauth_clients(tenant="acme", server="notion")
    assert sealed_values(registry, "notion")  # the client secret and the registration token
    no_probe = EngineSettings(network=ProbeSettings(allow_private_networks=True, total_timeout=15))
    folder = tmp_path / "f"
    (folder / "objects.yaml").write_text("")
    report = reconcile(load_folder(folder), registry, settings=no_probe)
    assert [str(a.verb) for a in report.plan.actions] == ["delete"]
    assert oauth_servers.main.deregistered == [client.client_id]
    assert (
        sealed_values(registry, "notion") == [] and registry.fetch_oauth_clients(tenant="acme", server="notion") == []
    )
    assert not any("OAuth client" in warning for warning in report.warnings)


def test_an_unreachable_authorization_server_leaves_a_warning_naming_the_client(
    tmp_path: Path, registry_url: str, oauth_servers: OAuthServers, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses
    import socket

    from reconciler.cli import main
    from reconciler.registry import open_registry

    auth = {"type": "oauthAuthorizationCode", "pkce": "confidential", "scopes": ["mcp:tools"]}
    with open_registry(registry_url) as registry:
        apply(tmp_path / "f", registry, [server("notion", oauth_servers.protected, auth)])
        (client,) = registry.fetch_oauth_clients(tenant="acme", server="notion")
        with socket.socket() as probe:  # a loopback port where nothing listens: the server moved or is down
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        moved = dataclasses.replace(client, registration_client_uri=f"http://127.0.0.1:{closed}/register/x")
        with registry.transaction() as tx:
            tx.put_oauth_client(moved)
        assert sealed_values(registry, "notion")
    (tmp_path / "f" / "objects.yaml").write_text("")
    capsys.readouterr()
    code = main(
        ["apply", "-f", str(tmp_path / "f"), "--no-probe", "--allow-private-networks", "--registry", registry_url]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert f"OAuth client {client.client_id} may still be registered at {client.issuer}" in err
    assert oauth_servers.main.deregistered == []
    with open_registry(registry_url) as registry:
        assert sealed_values(registry, "notion") == []
        assert registry.fetch_oauth_clients(tenant="acme", server="notion") == []
    assert oauth_servers.main.minted and not any(value in err for value in oauth_servers.main.minted)
