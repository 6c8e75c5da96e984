"""Featured servers of the platform namespace, offered to every tenant as the last fallback, on SQLite and
PostgreSQL, through `resolve` (Python), `resolve -o mcp-config` (CLI), the `spec.export` document, the agent
endpoint and the Registry API (v0.1). Grants still apply (in the platform namespace the Organization means every
tenant's organization; Members and Teams there are the platform's own), and no tenant's credential ever reaches
another tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.runtime import (
    CallerDirectory,
    RegistryCaller,
    UnknownTenant,
    build_mcp_app,
    build_serving_app,
    export_document,
    resolve,
)
from reconciler.runtime.registry_api import member_token_hash
from tests.fixtures.registry_schema import check_list
from tests.integration.cli.test_commands import run
from tests.integration.runtime.test_endpoint import TOKEN, call, structured

PLATFORM = "platform"
SECRETS = {"platform": "platform-search-token-51c2", "acme": "acme-crm-token-8d1e", "beta": "beta-crm-token-3f77"}


def _tenant(namespace: str, crm_token: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {namespace}}}
stringData: {{crm: {crm_token}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: crm, namespace: {namespace}}}
spec:
  url: https://crm.{namespace}.example.com/mcp
  featured: true
  auth: {{type: bearer, secretKeyRef: {{name: creds, key: crm}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: crm-everyone, namespace: {namespace}}}
spec:
  target: {{serverRef: crm}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: assistant, namespace: {namespace}}}
spec:
  template: assistant
  servers: [{{serverRef: crm}}]
  export: {{configMap: {{}}}}
"""


PLATFORM_MANIFESTS = f"""
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {PLATFORM}}}
stringData: {{search: {SECRETS["platform"]}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: search, namespace: {PLATFORM}}}
spec:
  url: https://search.platform.example.com/mcp
  featured: true
  auth: {{type: bearer, secretKeyRef: {{name: creds, key: search}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: search-every-tenant, namespace: {PLATFORM}}}
spec:
  target: {{serverRef: search}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: staff-tools, namespace: {PLATFORM}}}
spec:
  url: https://staff.platform.example.com/mcp
  featured: true
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: staff-only, namespace: {PLATFORM}}}
spec:
  target: {{serverRef: staff-tools}}
  subjects: [{{kind: Team, name: support}}, {{kind: Member, name: alice}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: internal, namespace: {PLATFORM}}}
spec:
  url: https://internal.platform.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: internal-everyone, namespace: {PLATFORM}}}
spec:
  target: {{serverRef: internal}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: crm, namespace: {PLATFORM}}}
spec:
  url: https://crm.platform.example.com/mcp
  featured: true
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: crm-every-tenant, namespace: {PLATFORM}}}
spec:
  target: {{serverRef: crm}}
  subjects: [{{kind: Organization}}]
"""


@pytest.fixture
def tenants(registry: Registry, tmp_path: Path) -> DesiredInput:
    """acme and beta, each with its own featured crm and its own token; the platform with four servers."""
    folder = tmp_path / "all"
    folder.mkdir()
    (folder / "acme.yaml").write_text(_tenant("acme", SECRETS["acme"]))
    (folder / "beta.yaml").write_text(_tenant("beta", SECRETS["beta"]))
    (folder / "platform.yaml").write_text(PLATFORM_MANIFESTS)
    desired = load_folder(folder)
    reconcile(desired, registry, settings=EngineSettings())
    return desired


def test_every_tenant_gets_the_platforms_featured_server_last(registry: Registry, tenants: DesiredInput) -> None:
    for tenant in ("acme", "beta"):
        resolution = resolve(
            registry, tenant, template="assistant", user="alice", teams=["support"], platform_tenant=PLATFORM
        )

        assert [(s.name, s.url, str(s.scope)) for s in resolution.servers] == [
            ("crm", f"https://crm.{tenant}.example.com/mcp", "featured"),
            ("search", "https://search.platform.example.com/mcp", "featured"),
        ], "the tenant's own crm wins over the platform's; staff-tools is not granted; internal is not featured"


def test_without_a_platform_namespace_nothing_crosses_tenants(registry: Registry, tenants: DesiredInput) -> None:
    resolution = resolve(registry, "beta", template="assistant")

    assert [server.url for server in resolution.servers] == ["https://crm.beta.example.com/mcp"]
    with pytest.raises(UnknownTenant, match="platform namespace 'nowhere'"):
        resolve(registry, "beta", template="assistant", platform_tenant="nowhere")


def test_grants_still_apply_and_say_what_the_organization_means(registry: Registry, tenants: DesiredInput) -> None:
    resolution = resolve(
        registry, "acme", template="assistant", user="alice", teams=["support"], platform_tenant=PLATFORM, explain=True
    )

    staff = resolution.server("staff-tools")
    assert str(staff.state) == "forbidden", "Team support and Member alice of the platform are not acme's"
    assert staff.reason == "no grant in the platform namespace platform names the Organization on staff-tools"
    assert resolution.server("search").explain[:2] == (
        "binding: featured by the platform tenant platform (namespace platform), offered to every tenant as the "
        "last fallback",
        "grant: search-every-tenant names Organization on server search (in the platform namespace: every tenant)",
    )
    assert "crm: the platform's featured crm is not offered; tenant acme's own crm wins" in resolution.notes
    assert "internal" not in [server.name for server in resolution.servers]


def test_no_credential_of_one_tenant_reaches_another(registry: Registry, tenants: DesiredInput) -> None:
    for tenant, other in (("acme", "beta"), ("beta", "acme")):
        resolution = resolve(
            registry,
            tenant,
            template="assistant",
            secrets=tenants.secrets,
            show_secrets=True,
            platform_tenant=PLATFORM,
        )
        document = json.dumps(resolution.to_json())

        assert resolution.server("crm").headers == {"Authorization": f"Bearer {SECRETS[tenant]}"}
        assert resolution.server("search").headers == {"Authorization": f"Bearer {SECRETS['platform']}"}
        assert SECRETS[other] not in document and f"{other}/creds" not in document
        exported = export_document(registry, tenant, "assistant", platform_tenant=PLATFORM)
        assert f"{other}/creds" not in exported and SECRETS[other] not in exported
        assert "${secret:platform/creds#search}" in exported


def test_cli_and_export_offer_it(registry: Registry, registry_url: str, tenants: DesiredInput) -> None:
    code, out, err = run(
        "resolve", "-n", "beta", "--template", "assistant", "-o", "mcp-config", "--platform-namespace", PLATFORM,
        "--registry", registry_url,
    )  # fmt: skip

    assert code == 0, err
    assert list(json.loads(out)["mcpServers"]) == ["crm", "search"]
    exported = json.loads(export_document(registry, "beta", "assistant", platform_tenant=PLATFORM))["mcpServers"]
    assert exported["search"]["headers"] == {"Authorization": "Bearer ${secret:platform/creds#search}"}
    assert exported["crm"]["headers"] == {"Authorization": "Bearer ${secret:beta/creds#crm}"}


@pytest.fixture(params=[build_mcp_app, build_serving_app], ids=["mcp-app", "serving-app"])
def endpoint(request: pytest.FixtureRequest, registry: Registry) -> Iterator[str]:
    """The endpoint alone, and as `serve` runs it beside the Registry API."""
    build = request.param
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build(registry, token=TOKEN, platform_tenant=PLATFORM))
        yield f"{base}/mcp"


def test_the_endpoint_offers_it(registry: Registry, tenants: DesiredInput, endpoint: str) -> None:
    _, resolved = call(endpoint, ("resolve_template", {"tenant": "acme", "template": "assistant"}))

    servers = structured(resolved)["servers"]
    assert [(server["name"], server["scope"]) for server in servers] == [("crm", "featured"), ("search", "featured")]
    assert servers[1]["headers"] == {"Authorization": "Bearer ***"}


ALICE, BOB, CAROL = "alice-acme-registry-token", "bob-beta-registry-token", "carol-unscoped-registry-token"


def registry_api(registry: Registry, loop: ServerLoop, *, platform_tenant: str | None) -> str:
    """`serve`'s app with three members: alice of acme (team support), bob of beta, carol of no tenant in
    particular (every tenant); anonymous requests allowed."""
    callers = CallerDirectory(
        platform_token=TOKEN,
        members={
            member_token_hash(ALICE): RegistryCaller(member="alice", teams=("support",), tenants=("acme",)),
            member_token_hash(BOB): RegistryCaller(member="bob", tenants=("beta",)),
            member_token_hash(CAROL): RegistryCaller(member="carol"),
        },
        anonymous=True,
    )
    return loop.serve_asgi(
        lambda _url: build_serving_app(registry, token=TOKEN, callers=callers, platform_tenant=platform_tenant)
    )


def registry_listing(base: str, token: str | None) -> tuple[dict[str, dict[str, Any]], str]:
    """Name → entry of one schema-checked page holding everything the caller sees, and the raw body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx2.Client(timeout=10.0) as http:
        response = http.get(f"{base}/v0.1/servers", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    check_list(response.json())
    assert "nextCursor" not in response.json()["metadata"]
    return {entry["server"]["name"]: entry for entry in response.json()["servers"]}, response.text


def published(tenant: str, server: str) -> str:
    return f"local.mcp-reconciler.{tenant}/{server}"


def test_the_registry_api_lists_the_platforms_featured_servers_to_every_caller_as_resolve_offers_them(
    registry: Registry, tenants: DesiredInput
) -> None:
    with ServerLoop() as loop:
        base = registry_api(registry, loop, platform_tenant=PLATFORM)
        alice, alice_text = registry_listing(base, ALICE)
        bob, bob_text = registry_listing(base, BOB)
        anonymous, _ = registry_listing(base, None)
        carol, _ = registry_listing(base, CAROL)

    search = published(PLATFORM, "search")
    # acme's own crm wins over the platform's; staff-tools is granted to the platform's own team and member only;
    # internal is not featured.
    assert set(alice) == {published("acme", "crm"), search}
    assert set(bob) == {published("beta", "crm"), search}
    assert {published("acme", "crm"), published("beta", "crm"), search} <= set(anonymous)
    assert published(PLATFORM, "staff-tools") not in set(anonymous) | set(carol)
    # Each set is exactly what resolve offers the caller in its tenant, the platform's servers included.
    for caller, seen, tenant in (("alice", alice, "acme"), ("bob", bob, "beta")):
        teams = ["support"] if caller == "alice" else []
        offered = resolve(registry, tenant, user=caller, teams=teams, platform_tenant=PLATFORM).servers
        assert {name.split("/")[1] for name in seen} == {server.name for server in offered}

    # The platform's entry is the platform's: the same for every tenant, nothing of the caller's tenant in it.
    assert alice[search] == bob[search]
    live = alice[search]["_meta"]["dev.reconciler.mcp/live"]
    assert (live["tenant"], live["namespace"]) == (PLATFORM, PLATFORM)
    assert alice[search]["server"]["remotes"][0]["headers"] == [
        {"name": "Authorization", "description": "Bearer token", "isRequired": True, "isSecret": True}
    ]
    for text, other in ((alice_text, "beta"), (bob_text, "acme")):
        assert all(secret not in text for secret in SECRETS.values())
        assert "creds" not in text  # no Secret reference either
        assert f"crm.{other}.example.com" not in text and f'"{other}"' not in text


def test_without_the_platform_namespace_or_before_it_exists_the_api_lists_only_the_tenants_own(
    registry: Registry, tenants: DesiredInput
) -> None:
    with ServerLoop() as loop:
        without, _ = registry_listing(registry_api(registry, loop, platform_tenant=None), ALICE)
        unknown, _ = registry_listing(registry_api(registry, loop, platform_tenant="nowhere"), ALICE)

    assert set(without) == set(unknown) == {published("acme", "crm")}
