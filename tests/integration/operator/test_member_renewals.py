"""The operator's sweep renews members' due tokens in the namespaces it serves: the reconcile loop with the API
server faked at our seam, a real SQLite registry and the real fixture authorization server on 127.0.0.1.

Only the active instance sweeps (a paused peer sends nothing), and closing the reconciler ends the sweep."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.credentials import KEY_ENV
from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry, open_registry
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.integration.engine.test_member_renewals import _alice
from tests.integration.runtime.test_token_renewal import SERVER, TENANT
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
