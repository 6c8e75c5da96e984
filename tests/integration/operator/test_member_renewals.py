"""The operator's sweep renews members' due tokens in the namespaces it serves: the reconcile loop with the API
server faked at our seam, a real SQLite registry and the real fixture authorization server on 127.0.0.1.

Only the active instance sweeps (a paused peer sends nothing), and closing the reconciler ends the sweep."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.credentials import KEY_ENV, MintedSecretStore
from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry, open_registry
from reconciler.registry.records import ServerRecord, TenantRecord
from reconciler.runtime import store_member_tokens
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.integration.engine.test_member_renewals import _alice
from tests.integration.runtime.test_token_renewal import LIFETIME, SERVER, TENANT
from tests.unit.operator.bodies import NOW, server
from tests.unit.operator.test_reconciling import ClosedGate, StaticObjects, run_resyncs

__all__ = ["oauth_servers", "oauth_servers_session"]

SWEEP_SECONDS = 20


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(value).decode())
    return value


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    opened = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield opened
    opened.close()


def _reconciler(registry: Registry, **kwargs: Any) -> ObjectReconciler:
    config = OperatorConfig(
        resync_interval=3600, jitter=0.1, member_token_interval=0.05, allow_private_networks=True, probe=True
    )
    return ObjectReconciler(
        registry=registry,
        cluster=FakeCluster(),
        events=RecordingSink(),
        metrics=OperatorMetrics(),
        config=config,
        clock=lambda: NOW,
        **kwargs,
    )


def _object_in_the_tenants_namespace() -> dict[str, Any]:
    body = server("notes")
    body["metadata"]["namespace"] = f"{TENANT}-ns"
    return body


def test_the_sweep_renews_a_due_token_once(registry: Registry, oauth_servers: OAuthServers, key: bytes) -> None:
    _alice(registry, oauth_servers, key, age=0.85)
    main = oauth_servers.main

    run_resyncs(
        _reconciler(registry),
        StaticObjects(_object_in_the_tenants_namespace()),
        seconds=SWEEP_SECONDS,
        until=lambda: (
            registry.fetch_user_tokens(tenant=TENANT, server=SERVER)[0].refresh_lease_until is None
            and main.grant_counts["refresh_token"] >= 1
        ),
    )

    assert main.grant_counts["refresh_token"] == 1, "later sweeps find the token renewed"
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.issued_at is not None and row.expires_at is not None
    assert row.refresh_token_ref is not None


def test_a_paused_instance_does_not_sweep(registry: Registry, oauth_servers: OAuthServers, key: bytes) -> None:
    _alice(registry, oauth_servers, key, age=0.85)
    gate = ClosedGate()

    run_resyncs(_reconciler(registry, gate=gate), StaticObjects(_object_in_the_tenants_namespace()), seconds=0.5)

    assert gate.asked, "the sweep asked the gate"
    assert oauth_servers.main.token_requests == 0


def test_the_sweep_reads_a_pre_registered_confidential_clients_secret_from_the_cluster(
    registry: Registry, oauth_servers: OAuthServers, key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The spec's client (clientId + clientSecret, no `oauth_clients` row) authenticates the sweep's refresh with
    the value of its Secret, read through the cluster port on the operator's event loop."""
    secret = "preset-secret-operator-51e2"
    main = oauth_servers.main
    main.add_client("crm-app", secret, grant_types=("authorization_code", "refresh_token"))
    with registry.transaction() as tx:
        tx.ensure_tenants([TenantRecord(slug=TENANT, namespace=f"{TENANT}-ns")])
        tx.insert(
            [
                ServerRecord(
                    tenant=TENANT,
                    name=SERVER,
                    url=oauth_servers.protected,
                    auth_type="oauthAuthorizationCode",
                    auth={
                        "pkce": "confidential",
                        "clientId": "crm-app",
                        "clientSecretRef": f"{TENANT}-ns/crm-app#secret",
                    },
                    allow_private=True,
                )
            ]
        )
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * 0.9
    token = main.member_token_set("crm-app", resource=oauth_servers.protected, issued_at=issued_at, lifetime=LIFETIME)
    store_member_tokens(
        registry, MintedSecretStore(registry, key), token, tenant=TENANT, server=SERVER, user="alice",
        client_id="crm-app", issuer=main.issuer,
    )  # fmt: skip
    cluster = FakeCluster()
    cluster.secrets["crm-app"] = ({"secret": secret}, True)
    config = OperatorConfig(
        resync_interval=3600, jitter=0.1, member_token_interval=0.05, allow_private_networks=True, probe=True
    )
    reconciler = ObjectReconciler(
        registry=registry, cluster=cluster, events=RecordingSink(), metrics=OperatorMetrics(), config=config,
        clock=lambda: NOW,
    )  # fmt: skip

    run_resyncs(
        reconciler,
        StaticObjects(_object_in_the_tenants_namespace()),
        seconds=SWEEP_SECONDS,
        until=lambda: main.grant_counts["refresh_token"] >= 1,
    )

    assert main.grant_counts["refresh_token"] == 1
    (row,) = registry.fetch_user_tokens(tenant=TENANT, server=SERVER)
    assert row.issued_at is not None and row.issued_at > issued_at
    assert secret not in caplog.text
