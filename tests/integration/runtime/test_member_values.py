"""Per-member header values on SQLite and PostgreSQL, with example 02's Plane connection (ThinkWork: each user's
PAT and workspace slug as user-scoped secrets): through `resolve` (Python, with the values read), `resolve -o
mcp-config` (CLI), the agent endpoint and the export. A member whose stored values are incomplete is
`needs_connection` until every one is there; no member's value reaches another member.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.inputs import StaticSecrets
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime import MASK, build_mcp_app, export_document, resolve
from tests.integration.cli.test_commands import run
from tests.integration.runtime.test_endpoint import TOKEN, call, structured

EXAMPLE = Path(__file__).parents[3] / "examples" / "02-tenant-servers"
NAMESPACE = "acme-prod"
TEMPLATE = "support-agent"
ENGINEERING = ["engineering"]
MEMBER_SECRETS = StaticSecrets(
    {
        (NAMESPACE, "alice-plane"): {"pat": "alice-plane-pat-6a1f", "workspace-slug": "alice-ws"},
        (NAMESPACE, "bob-plane"): {"pat": "bob-plane-pat-0c3d", "workspace-slug": "bob-ws"},
    }
)


@pytest.fixture
def applied(registry: Registry) -> Registry:
    """Example 02 applied; alice stored her PAT and slug, bob only his PAT (his slug key is not listed)."""
    reconcile(load_folder(EXAMPLE), registry, settings=EngineSettings())
    with registry.transaction() as tx:
        for user, keys in (("alice", ("workspace-slug",)), ("bob", ())):
            tx.insert_user_token(
                UserTokenRecord(
                    tenant="acme",
                    server="plane",
                    user_id=user,
                    secret_ref=f"{NAMESPACE}/{user}-plane#pat",
                    connection="plane-members",
                    value_keys=keys,
                )
            )
    return registry


def test_the_members_pat_and_slug_are_sent(applied: Registry) -> None:
    plane = resolve(
        applied,
        NAMESPACE,
        template=TEMPLATE,
        user="alice",
        teams=ENGINEERING,
        secrets=MEMBER_SECRETS,
        show_secrets=True,
    ).server("plane")

    assert str(plane.state) == "ready"
    assert plane.headers == {"Authorization": "Bearer alice-plane-pat-6a1f", "x-workspace-slug": "alice-ws"}
    explained = resolve(applied, NAMESPACE, template=TEMPLATE, user="alice", teams=ENGINEERING, explain=True)
    assert (
        "header x-workspace-slug: member alice's workspace-slug for connection plane-members "
        f"(secret {NAMESPACE}/alice-plane#workspace-slug)"
    ) in explained.server("plane").explain


def test_a_member_without_every_value_needs_connection(applied: Registry) -> None:
    plane = resolve(
        applied, NAMESPACE, template=TEMPLATE, user="bob", teams=ENGINEERING, secrets=MEMBER_SECRETS, show_secrets=True
    ).server("plane")

    assert (str(plane.state), plane.headers) == ("needs_connection", {})
    assert (
        plane.reason
        == "member bob has not stored workspace-slug for connection plane-members (sent as x-workspace-slug)"
    )
    assert plane.action == "store your workspace-slug for Plane with your token"
    assert "bob-ws" not in json.dumps(plane.to_json()) and "bob-plane-pat" not in json.dumps(plane.to_json())


def test_cli_mcp_config_masks_both_values(applied: Registry, registry_url: str) -> None:
    code, out, err = run(
        "resolve", "-n", NAMESPACE, "--template", TEMPLATE, "--user", "alice", "--team", "engineering",
        "-o", "mcp-config", "--registry", registry_url,
    )  # fmt: skip

    assert code == 0, err
    assert json.loads(out)["mcpServers"]["plane"]["headers"] == {
        "Authorization": f"Bearer {MASK}",
        "x-workspace-slug": MASK,
    }
    code, out, _ = run(
        "resolve", "-n", NAMESPACE, "--template", TEMPLATE, "--user", "bob", "--team", "engineering",
        "-o", "mcp-config", "--registry", registry_url,
    )  # fmt: skip
    assert code == 0 and "plane" not in json.loads(out)["mcpServers"]


def test_the_export_has_no_member_so_no_plane(applied: Registry) -> None:
    assert "plane" not in json.loads(export_document(applied, NAMESPACE, TEMPLATE))["mcpServers"]


@pytest.fixture
def endpoint(registry: Registry) -> Iterator[str]:
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_mcp_app(registry, token=TOKEN))
        yield f"{base}/mcp"


def test_the_endpoint_reports_both(applied: Registry, endpoint: str) -> None:
    _, alice, bob = call(
        endpoint,
        ("resolve_template", {"tenant": NAMESPACE, "template": TEMPLATE, "user": "alice", "teams": ENGINEERING}),
        ("resolve_template", {"tenant": NAMESPACE, "template": TEMPLATE, "user": "bob", "teams": ENGINEERING}),
    )

    plane = {server["name"]: server for server in structured(alice)["servers"]}["plane"]
    assert (plane["state"], plane["headers"]) == (
        "ready",
        {"Authorization": f"Bearer {MASK}", "x-workspace-slug": MASK},
    )
    plane = {server["name"]: server for server in structured(bob)["servers"]}["plane"]
    assert plane["state"] == "needs_connection" and "workspace-slug" in plane["reason"]
