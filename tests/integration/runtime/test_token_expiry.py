"""A member token past its expiry, through `resolve` on SQLite and PostgreSQL: never `ready`.

Issue 13 §3: "a member token that expired in 2020 still resolves ready". The world's per-member servers get a
token row for bob with an expiry; the registry, the decision and every output (JSON, text, MCP client
configuration) must agree that bob has to reconnect, and no output may carry the token's value.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from reconciler.engine.inputs import DesiredInput, StaticSecrets
from reconciler.registry import Registry
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime import render_mcp_config, resolution_json, resolve
from reconciler.runtime.presenting import resolution_text
from tests.integration.runtime.world import NAMESPACE, SECRET_VALUES, TEMPLATE, TENANT

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
BOBS_TOKEN = "bob-expired-token-value"
SECRETS = StaticSecrets({(NAMESPACE, "creds"): SECRET_VALUES, (NAMESPACE, "bob"): {"token": BOBS_TOKEN}})


def _bob_token(registry: Registry, *, server: str, connection: str | None, expires_at: dt.datetime) -> None:
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(
                tenant=TENANT,
                server=server,
                user_id="bob",
                secret_ref=f"{NAMESPACE}/bob#token",
                connection=connection,
                expires_at=expires_at,
            )
        )


@pytest.mark.parametrize(("server", "connection"), [("crm", None), ("notion", "notion-members")])
def test_a_token_that_expired_in_2020_needs_reauthorization(
    registry: Registry, world: DesiredInput, server: str, connection: str | None
) -> None:
    _bob_token(registry, server=server, connection=connection, expires_at=LONG_AGO)

    resolution = resolve(
        registry, NAMESPACE, template=TEMPLATE, user="bob", teams=["engineering"], secrets=SECRETS, show_secrets=True
    )

    resolved = resolution.server(server)
    assert str(resolved.state) == "needs_reauthorization"
    assert resolved.headers == {}
    assert resolved.reason is not None and "expired at 2020-01-01T00:00:00+00:00" in resolved.reason
    assert resolved.action is not None and resolved.action.startswith("reconnect your")
    assert server not in json.loads(render_mcp_config(resolution))["mcpServers"]
    document = json.loads(resolution_json(resolution))
    assert {s["name"]: s["state"] for s in document["servers"]}[server] == "needs_reauthorization"
    text = resolution_text(resolution)
    assert "needs_reauthorization" in text and "do:  reconnect your" in text
    for output in (text, resolution_json(resolution), render_mcp_config(resolution), repr(resolution)):
        assert BOBS_TOKEN not in output, "an expired token's value is never handed out"


def test_the_caller_injects_now(registry: Registry, world: DesiredInput) -> None:
    _bob_token(registry, server="crm", connection=None, expires_at=NOW)

    before = resolve(registry, NAMESPACE, template=TEMPLATE, user="bob", now=NOW - dt.timedelta(seconds=1))
    after = resolve(registry, NAMESPACE, template=TEMPLATE, user="bob", now=NOW)

    assert str(before.server("crm").state) == "ready"
    assert str(after.server("crm").state) == "needs_reauthorization"
